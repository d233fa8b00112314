"""What the end-to-end study tests (local, LSF, Slurm) check and wait for: the journal holding exactly its
trials, the trial a worker slot holds, and a trial's validation curve against an uninterrupted run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipeline import rundir
from pipeline.results import parse_overrides, read_jsonl
from pipeline.search.study import COMPLETE, PRUNED, SweepStudy
from tests.conftest import run_py

#: the fields of a metrics.jsonl line that depend on the clock
CLOCK = ("time", "samples_per_s")


def finished_once(sweep: Path, trials: int) -> SweepStudy:
    """The journal: exactly ``trials`` finished, none running, trial numbers 0..trials-1 each once (no trial
    asked twice), and each run directory's metrics.json saying what the study says."""
    study = SweepStudy.open(sweep)
    views = study.trials()
    assert [t.number for t in views] == list(range(trials)), [(t.number, t.state) for t in views]
    assert all(t.state in (COMPLETE, PRUNED) for t in views), [(t.number, t.state) for t in views]
    for t in views:
        done = json.loads(rundir.metrics_json(sweep / str(t.number)).read_text())
        assert done["status"] == {COMPLETE: rundir.COMPLETED, PRUNED: rundir.PRUNED}[t.state]
    return study


def train_steps(run_dir: Path) -> list[int]:
    """The training steps metrics.jsonl records (a line being written is skipped)."""
    return [row["step"] for row in read_jsonl(rundir.metrics_jsonl(run_dir)) if row.get("split") == "train"]


def held_trial(sweep: Path, slot: int, min_steps: int = 8, timeout: float = 300) -> tuple[int, dict]:
    """(trial, record) of the trial worker ``slot`` holds, once that trial has logged ``min_steps`` steps."""
    path = rundir.study_worker_json(sweep, slot)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("trial") is not None:
            run = sweep / str(record["trial"])
            if rundir.metrics_jsonl(run).is_file() and len(train_steps(run)) >= min_steps:
                return int(record["trial"]), record
        time.sleep(0.2)
    raise AssertionError(f"worker {slot} never got {min_steps} steps into a trial in {sweep}")


def val_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl's validation lines without the clock."""
    return [{k: v for k, v in row.items() if k not in CLOCK} for row in read_jsonl(rundir.metrics_jsonl(run_dir))
            if row.get("split") == "val"]


def uninterrupted(tmp: Path, trial_dir: Path, env: dict[str, str]) -> Path:
    """The trial's own overrides (its .hydra/overrides.yaml) run once as a plain ``python run.py``."""
    overrides = parse_overrides(rundir.hydra_file(trial_dir, rundir.OVERRIDES_YAML).read_text())
    run_dir = tmp / "uninterrupted"
    r = run_py(tmp, *overrides, f"hydra.run.dir={run_dir}", env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return run_dir


def same_curve(trial_dir: Path, reference: Path) -> None:
    """The trial ends with exactly the validation curve and final metrics of the uninterrupted run."""
    assert val_rows(trial_dir) == val_rows(reference)
    keys = ("status", "val", "test", "best_step", "steps")
    done, ref = (json.loads(rundir.metrics_json(d).read_text()) for d in (trial_dir, reference))
    assert {k: done.get(k) for k in keys} == {k: ref.get(k) for k in keys}
