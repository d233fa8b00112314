"""Per-class metrics and the confusion matrix (metrics.json, evaluate, aggregate's plot); checkpoint
retention, `pipeline clean` and the disk footers of status/results (issue 12). One real tiny sweep."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, TINY, read_json, run_py, train_env

STEPS = ["trainer.epochs=2", "trainer.eval_every_steps=10", "trainer.checkpoint_every_steps=5"]


def pipeline_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, env=train_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sweep")
    sweep_dir = tmp / "sweep"
    r = run_py(tmp, "-m", *TINY, *STEPS, "trainer.lr=3e-4,3e-3", f"hydra.sweep.dir={sweep_dir}", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return sweep_dir


def test_per_class_metrics_match_scikit_learn(sweep):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    for job in ("0", "1"):
        m = read_json(sweep / job / "metrics.json")
        classes = m["test_classes"]
        labels = classes["labels"]
        assert labels == ["business", "entertainment", "politics", "sport", "tech"]
        pred = pd.read_csv(sweep / job / "test_predictions.csv")
        p, r, f, s = precision_recall_fscore_support(pred.label, pred.prediction, labels=labels, zero_division=0)
        assert classes["precision"] == pytest.approx(list(p), abs=1e-6)
        assert classes["recall"] == pytest.approx(list(r), abs=1e-6)
        assert classes["f1"] == pytest.approx(list(f), abs=1e-6)
        assert classes["support"] == list(s) and sum(s) == m["test_size"]
        assert classes["confusion_matrix"] == confusion_matrix(pred.label, pred.prediction, labels=labels).tolist()
        assert sum(f) / len(f) == pytest.approx(m["test"]["macro_f1"], abs=1e-6)


def test_completed_runs_keep_only_the_best_model_as_safetensors(sweep):
    for job in ("0", "1"):
        ckpt = sweep / job / "checkpoints"
        assert sorted(p.name for p in ckpt.iterdir()) == ["best"]
        assert (ckpt / "best" / "model.safetensors").is_file()
        assert not list((ckpt / "best").glob("*.bin"))


def test_aggregate_draws_the_confusion_matrix(sweep):
    png = sweep / "results" / "confusion.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    image = imread(png)
    assert image.shape[0] >= 400 and image.shape[1] >= 400


def test_evaluate_prints_per_class_and_warns_on_train_overlap(tmp_path, sweep, shared_data):
    from omegaconf import OmegaConf

    from pipeline.data.data import load_splits

    cfg = OmegaConf.load(sweep / "0" / ".hydra" / "config.yaml")
    splits = load_splits(cfg)
    mixed = pd.concat([splits.train.head(30), splits.test.head(10)])
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    r = pipeline_cli(tmp_path, "evaluate", str(sweep / "0"), "--data", str(tmp_path / "mixed.csv"),
                     "--text-columns", "text")
    assert r.returncode == 0, r.stderr
    assert "confusion matrix (rows: true, columns: predicted)" in r.stdout and "precision" in r.stdout
    assert max(len(x) for x in r.stdout.splitlines()[1:]) <= 80
    warning = [x for x in r.stderr.splitlines() if x.startswith("warning:")]
    assert len(warning) == 1 and "30 of 40 texts (75.0%) in mixed.csv are in the run's training split" in warning[0]
    splits.test.head(10).to_csv(tmp_path / "clean.csv", index=False)
    clean = pipeline_cli(tmp_path, "evaluate", str(sweep / "0"), "--data", str(tmp_path / "clean.csv"),
                         "--text-columns", "text", "--format", "json")
    import json

    result = json.loads(clean.stdout)
    assert result["overlap"] == {"checked": True, "in_train": 0, "share": 0.0}
    assert "warning" not in clean.stderr
    assert sum(map(sum, result["classes"]["confusion_matrix"])) == 10


def test_status_and_results_show_disk_within_80_columns(tmp_path, sweep):
    for command in ("status", "results"):
        r = subprocess.run([sys.executable, "-m", "pipeline.cli", command, str(sweep)], cwd=ROOT,
                           env={**train_env(tmp_path), "COLUMNS": "80"}, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        disk = [x for x in r.stdout.splitlines() if x.startswith("disk: ")]
        assert len(disk) == 1 and " in 2 runs (checkpoints " in disk[0] and len(disk[0]) <= 80


def test_clean_is_a_dry_run_until_yes(tmp_path, sweep):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    shutil.copytree(copy / "0" / "checkpoints" / "best", copy / "0" / "checkpoints" / "last")  # as if kept
    best = read_json(copy / "0" / "metrics.json")["val"]["macro_f1"] >= \
        read_json(copy / "1" / "metrics.json")["val"]["macro_f1"]
    keep, drop = ("0", "1") if best else ("1", "0")
    dry = pipeline_cli(tmp_path, "clean", str(copy))
    assert dry.returncode == 0, dry.stderr
    assert f"keep   job {keep}: checkpoints/best" in dry.stdout
    assert f"would remove job {drop}: {drop}/checkpoints (" in dry.stdout and "dry run:" in dry.stdout
    assert (copy / drop / "checkpoints" / "best").is_dir()  # nothing removed yet
    done = pipeline_cli(tmp_path, "clean", str(copy), "--yes")
    assert done.returncode == 0, done.stderr and "freed" in done.stdout
    assert not (copy / drop / "checkpoints").exists()
    assert sorted(p.name for p in (copy / keep / "checkpoints").iterdir()) == ["best"]
    assert (copy / drop / "metrics.json").is_file()  # the results stay
    again = pipeline_cli(tmp_path, "clean", str(copy), "--yes")
    assert "nothing to remove" in again.stdout


def test_resume_works_up_to_the_end_and_then_drops_the_resume_state(tmp_path):
    """Killed right after the final checkpoint (step 50 of 50), before the test split and metrics.json."""
    run_dir = tmp_path / "run"
    args = [*TINY, *STEPS, "trainer.max_steps=50", f"hydra.run.dir={run_dir}"]
    killed = run_py(tmp_path, *args, env=train_env(tmp_path, PIPELINE_FAULTS="after_checkpoint:10"))
    assert killed.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists() and (run_dir / "checkpoints" / "last").is_dir()
    resumed = run_py(tmp_path, *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from checkpoints/last at step 50" in (run_dir / "run.log").read_text()
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "completed" and m["steps"] == 50 and m["attempts"] == 2
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best"]


def test_keep_last_checkpoint_keeps_the_resume_state(tmp_path):
    run_dir = tmp_path / "run"
    r = run_py(tmp_path, *TINY, "trainer.max_steps=10", "trainer.keep_last_checkpoint=true",
               f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best", "last"]
