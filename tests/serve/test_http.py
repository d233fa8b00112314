"""``pipeline serve`` over real HTTP: a uvicorn server on 127.0.0.1 serving a trained ``model=tiny`` sweep."""

from __future__ import annotations

import csv
import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest

from tests.serve.conftest import MAX_TEXTS, get, pipeline_cli, post


def sample_texts(sweep, n: int = 6) -> list[str]:
    with open(sweep / "0" / "test_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    return [" ".join(r["text"].split()) for r in rows] + ["Shares rose after the bank's results.", "A goal late on."]



def best_run(sweep):
    r = pipeline_cli("best", str(sweep))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_predictions_equal_pipeline_predict(tiny_sweep, server):
    texts = sample_texts(tiny_sweep)
    file = tiny_sweep.parent / "texts.txt"
    file.write_text("".join(t + "\n" for t in texts))
    r = pipeline_cli("predict", str(tiny_sweep), "--file", str(file), "--format", "json")
    assert r.returncode == 0, r.stderr
    expected = json.loads(r.stdout)

    status, body = post(server, {"texts": texts})
    assert status == 200, body
    got = body["predictions"]
    assert [p["label"] for p in got] == [e["label"] for e in expected]
    for p, e in zip(got, expected, strict=True):
        assert p["probs"] == pytest.approx(e["probs"], abs=1e-6)
        assert p["label"] == max(p["probs"], key=p["probs"].get)

    for text, e in zip(texts[:3], expected[:3], strict=True):  # one text at a time: no padding, same answer
        status, body = post(server, {"text": text})
        assert status == 200, body
        assert body["predictions"][0]["label"] == e["label"]
        assert body["predictions"][0]["probs"] == pytest.approx(e["probs"], abs=1e-4)


def test_health_model_and_docs(tiny_sweep, server):
    status, body = get(server + "/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, body = get(server + "/model")
    info = json.loads(body)
    assert status == 200
    assert info["checkpoint"] == best_run(tiny_sweep)
    final = json.loads((tiny_sweep / info["run_dir"].rsplit("/", 1)[-1] / "metrics.json").read_text())
    assert info["val"] == final["val"] and info["test"] == final["test"]
    assert info["labels"] and sorted(info["labels"]) == sorted(set(info["labels"]))
    assert info["config"]["model"]["name"] == "tiny" and info["name"] == "tiny"
    status, body = get(server + "/openapi.json")
    assert status == 200 and "/predict" in json.loads(body)["paths"]
    status, body = get(server + "/docs")
    assert status == 200 and b"swagger" in body.lower()
    status, body = get(server + "/")
    assert status == 200 and b"<textarea" in body


TOO_MANY = {"texts": ["a text"] * (MAX_TEXTS + 1)}
BAD = [
    ("empty text", {"text": ""}, 422, "empty"),
    ("blank text", {"text": "  \n "}, 422, "empty"),
    ("empty list", {"texts": []}, 422, "empty"),
    ("empty item", {"texts": ["fine", ""]}, 422, "texts[1] is empty"),
    ("too many texts", TOO_MANY, 413, f"at most {MAX_TEXTS}"),
    ("number as text", {"text": 5}, 422, "text"),
    ("string as list", {"texts": "one text"}, 422, "texts"),
    ("numbers in list", {"texts": ["a", 2]}, 422, "texts.1"),
    ("both fields", {"text": "a", "texts": ["b"]}, 422, "exactly one"),
    ("neither field", {}, 422, "exactly one"),
    ("unknown field", {"txt": "a"}, 422, "unknown field"),
    ("list body", ["a", "b"], 422, "JSON object"),
    ("null body", None, 422, "JSON object"),
    ("broken JSON", '{"text": "a"', 400, "not valid JSON"),
    ("oversized body", {"text": "x" * (2 << 20)}, 413, "over"),
]


@pytest.mark.parametrize(("body", "status", "says"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gets_its_4xx_with_one_line(server, body, status, says):
    got, answer = post(server, body)
    assert got == status, answer
    assert isinstance(answer["detail"], str) and "\n" not in answer["detail"]
    assert says in answer["detail"]
    assert get(server + "/health")[0] == 200  # still serving


def test_wrong_content_type_and_oversized_bodies_again_and_again(server):
    status, answer = post(server, "some text", content_type="text/plain")
    assert status == 415 and "application/json" in answer["detail"]
    for _ in range(5):  # the client reads the 413, not a reset connection (the server drains the body first)
        status, answer = post(server, {"texts": ["y" * (1 << 20)] * 3})
        assert status == 413 and "over" in answer["detail"]
    url = urlparse(server)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    chunks = (b'{"text": "' if i == 0 else b"x" * 65536 for i in range(40))  # 2.5 MiB, no Content-Length
    conn.request("POST", "/predict", body=chunks, headers={"Content-Type": "application/json"},
                 encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413 and "over" in json.loads(resp.read())["detail"]
    conn.close()
    assert get(server + "/health")[0] == 200


def test_50_concurrent_requests_all_succeed(tiny_sweep, server):
    texts = [f"{t} ({i})" for i, t in enumerate(sample_texts(tiny_sweep) * 7)][:50]
    status, body = post(server, {"texts": texts[:MAX_TEXTS]})
    assert status == 200
    expected = [p["label"] for p in body["predictions"]]

    def one(i: int) -> tuple[int, dict]:
        return post(server, {"text": texts[i]} if i % 2 else {"texts": texts[i : i + 3]}, timeout=180)

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(one, range(50)))
    assert [s for s, _ in answers] == [200] * 50
    for i, (_, body) in enumerate(answers):
        n = 1 if i % 2 else len(texts[i : i + 3])
        assert len(body["predictions"]) == n
        if i < MAX_TEXTS and i % 2:
            assert body["predictions"][0]["label"] == expected[i]


def test_serve_refuses_a_path_without_a_model(tmp_path):
    r = pipeline_cli("serve", str(tmp_path / "nowhere"), "--port", "1")
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_serve_refuses_a_device_it_cannot_use(tiny_sweep):
    r = pipeline_cli("serve", str(tiny_sweep), "--device", "nonsense", "--port", "1")
    assert r.returncode == 2
    assert r.stderr.startswith("error: --device nonsense") and len(r.stderr.strip().splitlines()) == 1
