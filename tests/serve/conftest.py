"""A copy of the shared tiny sweep with a failed job, and a real ``pipeline serve`` on a free localhost port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.results.results import parse_overrides
from tests.conftest import ROOT
from tests.results.make_runs import write_run

MAX_TEXTS = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pipeline_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="session")
def tiny_sweep(shared_sweep, tmp_path_factory) -> Path:
    """A copy of the session's shared sweep (real ``model=tiny`` runs: 2 lr x 2 seeds) plus one failed job
    with a log, aggregated."""
    sweep = tmp_path_factory.mktemp("serve") / "sweep"
    shutil.copytree(shared_sweep, sweep)
    overrides = [o for o in parse_overrides((sweep / "0" / ".hydra" / "overrides.yaml").read_text())
                 if not o.startswith("seed=")]
    failed = write_run(sweep / "4", [*overrides, "seed=2"], state="failed", curve=[],
                       error="RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
    (failed / "run.log").write_text("".join(f"step {i} loss 1.0\n" for i in range(60))
                                    + "Traceback (most recent call last):\nRuntimeError: CUDA out of memory\n")
    r = pipeline_cli("aggregate", str(sweep))
    assert r.returncode == 0, r.stderr
    return sweep


def get(url: str, timeout: float = 30) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="session")
def server(tiny_sweep) -> Iterator[str]:
    """``pipeline serve SWEEP`` in a subprocess on 127.0.0.1; yields its base URL."""
    port = free_port()
    log = tiny_sweep.parent / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "serve", str(tiny_sweep), "--port", str(port),
             "--device", "cpu", "--max-texts", str(MAX_TEXTS)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"pipeline serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if get(base + "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"pipeline serve did not answer /health in 180 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post(base: str, body: bytes | str | object, content_type: str = "application/json",
         timeout: float = 60) -> tuple[int, dict]:
    """POST to /predict; objects are sent as JSON. Returns (status, parsed JSON body)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(base + "/predict", data=data, method="POST",
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
