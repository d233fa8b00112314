"""The training job end to end (model=tiny, 200 BBC rows): run dir contract, exact resume, atomicity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY, read_json, run_py, train_env

STEPS = ["trainer.eval_every_steps=10", "trainer.checkpoint_every_steps=5"]


def final(run_dir: Path) -> dict:
    m = read_json(run_dir / "metrics.json")
    return {k: m[k] for k in ("status", "val", "test", "best_step", "best_epoch", "steps", "epochs")}


def evals(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One uninterrupted run that the resume tests compare against."""
    tmp = tmp_path_factory.mktemp("ref")
    run_dir = tmp / "run"
    r = run_py(tmp, *TINY, *STEPS, f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr
    return run_dir


def test_run_dir_contract(reference):
    m = read_json(reference / "metrics.json")
    assert m["status"] == "completed" and m["error"] is None
    assert m["steps"] == 80 and m["epochs"] == 4
    for split in ("val", "test"):
        assert set(m[split]) == {"loss", "accuracy", "macro_f1"}
    assert m["val"]["accuracy"] > 0.3  # 5 classes: chance is 0.2; the tiny model learns something
    info = read_json(reference / "run_info.json")
    assert len(info["data_sha256"]) == 64 and info["host"] and info["versions"]["torch"]
    assert "git_commit" in info and "git_dirty" in info
    assert (reference / ".hydra" / "config.yaml").is_file() and (reference / ".hydra" / "overrides.yaml").is_file()
    rows = evals(reference)
    assert [r["step"] for r in rows if r["split"] == "val"] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert [r["split"] for r in rows][-1] == "test"
    assert (reference / "test_predictions.csv").is_file()


def test_best_checkpoint_loads_with_labels(reference):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    best = reference / "checkpoints" / "best"
    model = AutoModelForSequenceClassification.from_pretrained(best)
    AutoTokenizer.from_pretrained(best)
    assert sorted(model.config.id2label.values()) == ["business", "entertainment", "politics", "sport", "tech"]
    assert read_json(best / "best.json")["step"] == read_json(reference / "metrics.json")["best_step"]


def test_resume_after_sigkill_is_exact(tmp_path, reference):
    run_dir = tmp_path / "run"
    killed = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={run_dir}",
                    env=train_env(tmp_path, PIPELINE_FAULTS="after_checkpoint:3"))
    assert killed.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    resumed = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from checkpoints/last at step 15" in (run_dir / "run.log").read_text()
    assert final(run_dir) == final(reference)
    assert evals(run_dir) == evals(reference)
    info = read_json(run_dir / "run_info.json")
    assert info["attempt"] == 2 and info["resumed_from_step"] == 15


def test_kill_during_checkpoint_write_keeps_previous(tmp_path, reference):
    import torch

    run_dir = tmp_path / "run"
    killed = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={run_dir}",
                    env=train_env(tmp_path, PIPELINE_FAULTS="checkpoint_write:2"))
    assert killed.returncode == -signal.SIGKILL
    from pipeline.train.checkpoint import load_last

    state = load_last(run_dir)  # the first checkpoint (step 5) is intact
    assert state["counters"]["step"] == 5
    assert isinstance(state["model"], dict) and all(isinstance(v, torch.Tensor) for v in state["model"].values())
    resumed = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    assert final(run_dir) == final(reference)
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "stale temp dirs were not cleaned"


def test_usr2_checkpoints_at_step_boundary_then_resumes_exactly(tmp_path, reference):
    run_dir = tmp_path / "run"
    env = train_env(tmp_path)
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *TINY, *STEPS, f"hydra.run.dir={run_dir}",
                             "trainer.checkpoint_every_steps=1000", "trainer.eval_every_steps=1000"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "metrics.jsonl").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGUSR2)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == -signal.SIGUSR2, out
    from pipeline.train.checkpoint import load_last

    step = load_last(run_dir)["counters"]["step"]
    assert 0 < step < 80
    resumed = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    assert final(run_dir) == final(reference)


def test_completed_run_is_not_retrained(tmp_path, reference):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(reference, run_dir)
    before = (run_dir / "metrics.json").read_text()
    r = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={run_dir}")
    assert r.returncode == 0
    assert (run_dir / "metrics.json").read_text() == before


def test_nan_loss_stops_with_clear_status(tmp_path):
    run_dir = tmp_path / "run"
    r = run_py(tmp_path, *TINY, "trainer.lr=1e12", "trainer.max_grad_norm=0", f"hydra.run.dir={run_dir}")
    assert r.returncode != 0
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "failed" and "loss became nan" in m["error"].lower()
    assert "loss became" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_best_checkpoint_choice_breaks_ties_on_validation_loss():
    from pipeline.train.train import improved

    first = {"macro_f1": 0.95, "accuracy": 0.95, "loss": 0.65}
    assert improved("macro_f1", first, None)
    assert improved("macro_f1", {**first, "macro_f1": 0.96, "loss": 0.9}, first)  # the metric decides first
    assert not improved("macro_f1", {**first, "macro_f1": 0.94, "loss": 0.1}, first)
    assert improved("macro_f1", {**first, "loss": 0.55}, first)  # a tie: the lower loss wins
    assert not improved("macro_f1", {**first, "loss": 0.65}, first)  # a full tie keeps the earlier one
    assert improved("loss", {**first, "loss": 0.6}, first) and not improved("loss", first, first)


def test_resume_with_a_changed_config_is_refused_and_leaves_the_run_dir_as_it_was(tmp_path):
    run_dir = tmp_path / "run"
    killed = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={run_dir}",
                    env=train_env(tmp_path, PIPELINE_FAULTS="after_checkpoint:2"))
    assert killed.returncode == -signal.SIGKILL
    before = {p.name: p.read_bytes() for p in (run_dir / "metrics.jsonl", run_dir / "run_info.json")}
    last = (run_dir / "checkpoints" / "last").stat().st_mtime_ns
    changed = run_py(tmp_path, *TINY, *STEPS, "trainer.lr=1e-3", "seed=3", f"hydra.run.dir={run_dir}")
    assert changed.returncode == 2
    err = changed.stderr.strip().splitlines()[-1]
    assert "holds a checkpoint of a different config" in err and "seed: 0 -> 3" in err
    assert "trainer.lr: 0.003 -> 0.001" in err and "checkpoints" in err
    assert {p: (run_dir / p).read_bytes() for p in before} == before
    assert (run_dir / "checkpoints" / "last").stat().st_mtime_ns == last
    # settings that do not change what is trained may differ between attempts
    resumed = run_py(tmp_path, *TINY, *STEPS, "trainer.log_every_steps=2", "trainer.eval_batch_size=16",
                     f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from checkpoints/last at step 10" in (run_dir / "run.log").read_text()


def test_cpu_training_runs_with_our_attention_and_dropout(reference):
    info = read_json(reference / "run_info.json")
    assert info["device"] == "cpu"
    assert info["attention"] == "pipeline_cpu" and info["dropout"] == "fast"
