"""``python run.py -m hydra/sweeper=study`` on local processes, end to end with real training (the tiny model):

- 8 trials by 2 workers end with exactly 8 finished; with ASHA and a space where half the learning rates
  cannot learn, pruned trials stop before their last step (their metrics.json and metrics.jsonl say so);
- a worker SIGKILLed mid-trial leaves its trial held (the launch ends with one line and exit 1, the other
  worker having finished the rest); ``pipeline rerun SWEEP --failed`` brings the worker back in its slot,
  the trial resumes from its checkpoint, and the study ends with exactly its trials, none counted twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import rundir
from pipeline.search.study import COMPLETE, PRUNED, RUNNING, SweepStudy
from tests.conftest import ROOT, TINY, run_py, train_env
from tests.search.study_checks import finished_once, held_trial, train_steps

pytestmark = pytest.mark.slow

BASE = [o for o in TINY if not o.startswith(("trainer.lr=", "trainer.epochs=", "trainer.log_every_steps="))]
STUDY = ["-m", "hydra/sweeper=study", "hydra.sweeper.workers=2", *BASE]


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_eight_trials_by_two_workers_and_the_hopeless_ones_pruned(tmp_path: Path):
    """lr 1e-9 cannot move the tiny model's loss; the random sampler with seed 3 asks 3e-3 first."""
    sweep = tmp_path / "study"
    r = run_py(tmp_path, *STUDY, "hydra.sweeper.trials=8", "hydra.sweeper.pruner=asha",
               "hydra.sweeper.sampler=random", "hydra.sweeper.seed=3", "trainer.monitor=loss", "trainer.epochs=3",
               "trainer.log_every_steps=5", "trainer.lr=choice(3e-3, 1e-9)", f"hydra.sweep.dir={sweep}", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trials: 8 of 8 finished" in r.stdout and "best by val_loss" in r.stdout, r.stdout[-3000:]
    study = finished_once(sweep, 8)
    meta = json.loads((sweep / rundir.SWEEP_JSON).read_text())
    assert meta["jobs"] == [] and meta["study"]["settings"]["trials"] == 8
    workers = {w["slot"]: w["job_id"] for w in meta["study"]["workers"]}
    assert sorted(workers) == [0, 1]
    states = {t.number: t.state for t in study.trials()}
    pruned = [n for n, s in states.items() if s == PRUNED]
    complete = [n for n, s in states.items() if s == COMPLETE]
    assert pruned and complete, states
    full = json.loads(rundir.metrics_json(sweep / str(complete[0])).read_text())["steps"]
    for n in pruned:
        done = json.loads(rundir.metrics_json(sweep / str(n)).read_text())
        assert done["pruned_at_step"] < full and max(train_steps(sweep / str(n))) < full, (n, done)
        assert not (sweep / str(n) / rundir.CHECKPOINTS_DIR).exists()
    for n in states:  # each trial names the worker job that ran it
        info = json.loads(rundir.run_info_json(sweep / str(n)).read_text())
        assert info["job_id"] in workers.values()
    status = cli("status", str(sweep), env=train_env(tmp_path))
    assert status.returncode == 0 and "trials: 8 of 8 finished" in status.stdout, status.stdout
    assert f"{len(pruned)} pruned" in status.stdout and "workers: 2 done" in status.stdout


def test_a_worker_killed_mid_trial_is_rerun_in_its_slot_and_the_trial_resumes(tmp_path: Path):
    sweep = tmp_path / "study"
    env = train_env(tmp_path, PIPELINE_FAULTS="write_metrics.jsonl:sleep=0.3")
    launch = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *STUDY, "hydra.sweeper.trials=3",
                               "hydra.sweeper.pruner=none", "trainer.epochs=2", "trainer.log_every_steps=1",
                               "trainer.checkpoint_every_steps=5", "trainer.lr=choice(1e-3, 3e-3)",
                               f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        trial, record = held_trial(sweep, 1)
        os.kill(record["pid"], signal.SIGKILL)
        out, err = launch.communicate(timeout=600)
    finally:
        if launch.poll() is None:  # the test failed: leave no workers behind
            os.killpg(launch.pid, signal.SIGKILL)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert launch.returncode == 1 and len(lines) == 1 and "worker 1 failed" in lines[0], err[-3000:]
    assert f"pipeline rerun {sweep} --failed" in lines[0]
    study = SweepStudy.open(sweep)
    assert [t.state for t in study.trials()].count(RUNNING) == 1  # the held trial, and no replacement asked
    fast = train_env(tmp_path)
    status = cli("status", str(sweep), env=fast)
    assert status.returncode == 1 and "worker 1" in status.stdout and "died" in status.stdout, status.stdout

    r = cli("rerun", str(sweep), "--failed", env=fast, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"rerun: worker 1 (failed: gone, holding trial {trial})" in r.stdout, r.stdout
    assert f"trial {trial} resumes from checkpoints/last" in r.stdout and "trials: 3 of 3 finished" in r.stdout
    finished_once(sweep, 3)
    done = json.loads(rundir.metrics_json(sweep / str(trial)).read_text())
    assert done["attempts"] == 2, done  # the same trial, resumed in its run directory
    assert "resumed from checkpoints/last" in (sweep / str(trial) / rundir.RUN_LOG).read_text()
    workers = json.loads((sweep / rundir.SWEEP_JSON).read_text())["study"]["workers"]
    assert len(workers[1]["previous_job_ids"]) == 1 and workers[0]["previous_job_ids"] == []
    again = cli("rerun", str(sweep), "--failed", env=fast)
    assert again.returncode == 1 and "the study has its 3 trials finished" in again.stderr, again.stderr
