"""A real 2x2 local sweep (model=tiny): results table, --by-seed statistics, aggregate files, predict."""

from __future__ import annotations

import csv
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, read_json


def pipeline_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def sweep(shared_sweep) -> Path:
    """The session's shared sweep (tests/conftest.py: SHARED_SWEEP, 2 lr x 2 seeds, trained once)."""
    return shared_sweep


def test_all_runs_complete_and_results_written(sweep):
    for n in range(4):
        assert read_json(sweep / str(n) / "metrics.json")["status"] == "completed"
    for name in ("runs.csv", "summary.csv", "summary.md", "results.json", "curves.png", "final.png"):
        path = sweep / "results" / name
        assert path.is_file() and path.stat().st_size > 0, name
    for png in ("curves.png", "final.png"):
        data = (sweep / "results" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_by_seed_mean_std_matches_run_dirs(sweep):
    r = pipeline_cli("results", str(sweep), "--by-seed", "--format", "json")
    assert r.returncode == 0, r.stderr
    table = json.loads(r.stdout)
    expected = {}
    for n in range(4):
        overrides = (sweep / str(n) / ".hydra" / "overrides.yaml").read_text()
        lr = "0.001" if "trainer.lr=0.001" in overrides else "0.003"
        expected.setdefault(lr, []).append(read_json(sweep / str(n) / "metrics.json")["val"]["macro_f1"])
    rows = table["rows"]
    assert len(rows) == 2
    for row in rows:
        lr = str(row["trainer.lr"])
        values = expected[lr]
        assert row["n"] == 2
        assert row["val_macro_f1_mean"] == pytest.approx(statistics.mean(values))
        assert row["val_macro_f1_std"] == pytest.approx(statistics.stdev(values))


@pytest.mark.parametrize("fmt", ["csv", "md", "latex"])
def test_other_formats_parse(sweep, fmt):
    r = pipeline_cli("results", str(sweep), "--format", fmt)
    assert r.returncode == 0, r.stderr
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        assert len(rows) == 4 and "val_macro_f1" in rows[0]
    elif fmt == "md":
        assert r.stdout.splitlines()[1].startswith("|") and "---" in r.stdout.splitlines()[1]
    else:
        assert "\\begin{tabular}" in r.stdout and "\\end{tabular}" in r.stdout


def test_predict_agrees_with_the_runs_own_evaluation(sweep, tmp_path):
    run_dir = sweep / "0"
    with open(run_dir / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))[:5]
    texts = tmp_path / "texts.txt"  # the shared sweep is only read
    texts.write_text("".join(r["text"].replace("\n", " ") + "\n" for r in rows))
    r = pipeline_cli("predict", str(run_dir / "checkpoints" / "best"), "--file", str(texts), "--format", "json")
    assert r.returncode == 0, r.stderr
    preds = json.loads(r.stdout)
    assert [p["label"] for p in preds] == [row["prediction"] for row in rows]


def test_best_points_at_a_loadable_checkpoint(sweep):
    r = pipeline_cli("best", str(sweep))
    assert r.returncode == 0, r.stderr
    best = Path(r.stdout.strip())
    assert best.name == "best" and (best / "config.json").is_file()


def test_status_exit_code_zero_when_all_completed(sweep):
    r = pipeline_cli("status", str(sweep))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed" in r.stdout.lower()


def test_job_logs_read_cleanly(sweep):
    """No empty .submitit/%j folder; `pipeline logs` shows submitit's lines once; training and evaluation
    lines number epochs alike (1-based, over the total)."""
    import math
    import re

    assert not (sweep / ".submitit" / "%j").exists()
    r = pipeline_cli("logs", str(sweep), "0", "-n", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Job completed successfully") == 1
    assert r.stdout.count("Loading pickle") == 1
    log = (sweep / "0" / "run.log").read_text()
    evals = re.findall(r"eval step (\d+) epoch (\d+)/2:", log)
    assert [e for _, e in evals] == ["1", "2"]
    per_epoch = int(evals[0][0])
    steps = re.findall(r"step (\d+)/(\d+) epoch (\d+)/2 ", log)
    assert steps and all(int(e) == math.ceil(int(s) / per_epoch) for s, _, e in steps), steps
