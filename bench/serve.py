"""Load test of ``pipeline serve`` on localhost: N concurrent clients for T seconds, single texts and batches.

    python -m bench.serve                          # trains a model=tiny run first (~1 min), then 2 x 10 s
    python -m bench.serve --model minilm --max-length 256   # the default model (trains 1 epoch on 200 rows)
    python -m bench.serve outputs/multirun/x --clients 8 --seconds 20 --batch 16 --max-length 512
    python -m bench.serve RUN --device cuda        # the server's device (default auto: CUDA if available)

Bounded by construction: the server listens on 127.0.0.1 only, on a free port, and each phase stops
sending after ``--seconds``. Each client is a thread with its own keep-alive connection that sends the next
request as soon as the last one is answered. Texts are BBC articles from ``$PIPELINE_DATA_DIR`` (the
run's own ``test_predictions.csv`` when the data is not there), truncated by the model to its max_length.

Printed per phase (single: one text per request; batch: ``--batch`` texts per request): requests, errors,
requests/s, texts/s and p50/p99 latency. The clients share the machine with the server, so on a small
machine these are lower bounds; compare phases within one run rather than across machines. A JSON file of
the figures is written under ``outputs/bench/``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def train(tmp: Path, model: str, max_length: int) -> Path:
    """A one-epoch run of ``model`` on a few hundred BBC rows (the speed of serving does not need a good one)."""
    run_dir = tmp / "run"
    lr = "3e-3" if model == "tiny" else "5e-5"
    rows = 300 if model == "tiny" else 200
    argv = [sys.executable, str(ROOT / "run.py"), f"model={model}", f"data.max_rows={rows}", "trainer.epochs=1",
            f"trainer.max_length={max_length}", "trainer.batch_size=8", f"trainer.lr={lr}",
            f"hydra.run.dir={run_dir}"]
    env = {**os.environ, **MALLOC_ENV, "HF_HUB_OFFLINE": "1", "PIPELINE_OUTPUT_ROOT": str(tmp),
           "PIPELINE_PROCESSED_DIR": str(tmp / "processed")}
    print(f"training a model={model} run in {run_dir} ...", flush=True)
    subprocess.run(argv, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return run_dir


def load_texts(path: Path, n: int = 400) -> list[str]:
    data = Path(os.environ.get("PIPELINE_DATA_DIR", ROOT.parent / "shared" / "data")) / "bbc_news.csv.gz"
    import pandas as pd

    if data.is_file():
        frame = pd.read_csv(data, nrows=n)
        return [f"{a}. {b}" for a, b in zip(frame.title, frame.text, strict=True)]
    preds = next(iter(sorted(path.rglob("test_predictions.csv"))), None)
    if preds is None:
        sys.exit(f"error: no texts: {data} is missing and {path} has no test_predictions.csv")
    return pd.read_csv(preds).text.astype(str).tolist()[:n]


def start_server(path: Path, port: int, device: str, max_texts: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", str(path), "--host", HOST, "--port", str(port),
         "--device", device, "--max-texts", str(max_texts)],
        cwd=ROOT, env={**os.environ, **MALLOC_ENV, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: pipeline serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("error: pipeline serve did not answer /health within 180 s")


def phase(port: int, texts: list[str], per_request: int, clients: int, seconds: float) -> dict:
    """``clients`` threads send requests of ``per_request`` texts for ``seconds``; latencies in ms."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        i = k * 7
        while time.monotonic() < stop_at:
            chunk = [texts[(i + j) % len(texts)] for j in range(per_request)]
            i += per_request
            body = json.dumps({"text": chunk[0]} if per_request == 1 else {"texts": chunk})
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=120)
            dt = (time.perf_counter() - t0) * 1000
            with lock:
                if ok:
                    latencies.append(dt)
                else:
                    errors[0] += 1
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    qs = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"texts_per_request": per_request, "clients": clients, "seconds": round(wall, 2),
            "requests": len(latencies), "errors": errors[0], "requests_per_s": round(len(latencies) / wall, 2),
            "texts_per_s": round(len(latencies) * per_request / wall, 2),
            "p50_ms": round(qs[49], 1) if qs else None, "p99_ms": round(qs[98], 1) if qs else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, help="Run, sweep or checkpoint (default: train a run).")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="Per phase (at most 600).")
    ap.add_argument("--batch", type=int, default=16, help="Texts per request in the batch phase.")
    ap.add_argument("--model", default="tiny", help="Model config of the run it trains when no path is given.")
    ap.add_argument("--max-length", type=int, default=128, help="max_length of the run it trains.")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    if not 1 <= args.clients <= 256 or not 0 < args.seconds <= 600 or not 1 <= args.batch <= 256:
        ap.error("--clients 1..256, --seconds 0..600, --batch 1..256")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        path = args.path or train(Path(tmp), args.model, args.max_length)
        texts = load_texts(path)
        port = free_port()
        server = start_server(path, port, args.device, max(args.batch, 1))
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            conn.request("GET", "/model")
            info = json.loads(conn.getresponse().read())
            phase(port, texts, 1, 1, min(2.0, args.seconds))  # warm-up
            rows = [phase(port, texts, 1, args.clients, args.seconds),
                    phase(port, texts, args.batch, args.clients, args.seconds)]
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"\n{info['name']} (max_length {info['max_length']}, {info['device']}), {args.clients} clients, "
          f"{args.seconds:g} s per phase, {os.cpu_count()} CPUs\n")
    print("| texts/request | requests | errors | requests/s | texts/s | p50 ms | p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['texts_per_request']} | {r['requests']} | {r['errors']} | {r['requests_per_s']} | "
              f"{r['texts_per_s']} | {r['p50_ms']} | {r['p99_ms']} |")
    out = ROOT / "outputs" / "bench" / f"serve-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": {k: info[k] for k in ("name", "checkpoint", "max_length", "device")},
                               "args": {k: str(v) for k, v in vars(args).items()}, "phases": rows}, indent=2))
    print(f"\nwrote {out}")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
