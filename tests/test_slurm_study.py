"""A study (``hydra/sweeper=study``) on the real one-node Slurm (``cluster=slurm``, ``wait: false``):

- two workers in one ``sbatch`` array; ``scancel`` of a worker mid-trial: the other worker finishes the
  rest and stops, status names the dead worker and its trial; ``pipeline rerun SWEEP --failed`` resubmits it
  in its slot, the trial resumes from its checkpoint, and the study ends with exactly its trials;
- a worker past its run limit (``--time=1``, USR2 50 s before it, ``scontrol requeue``) resumes the same
  trial, which ends with the same validation curve as an uninterrupted run of its parameters.

Needs the cluster from ``.ci/slurm-up.sh`` (skipped with the reason otherwise).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from pipeline import rundir
from pipeline.search.study import COMPLETE, RUNNING, SweepStudy
from tests.conftest import TINY, run_py
from tests.reliability.conftest import cli, job_env, wait_for
from tests.search.study_checks import finished_once, held_trial, same_curve, uninterrupted

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

BASE = [*[o for o in TINY if not o.startswith(("trainer.lr=", "trainer.epochs=", "trainer.log_every_steps="))],
        "trainer.epochs=2", "trainer.log_every_steps=1", "trainer.checkpoint_every_steps=5"]


def study_args(partition: str, sweep: Path, *extra: str) -> list[str]:
    return ["-m", "hydra/sweeper=study", "cluster=slurm", "hydra.launcher.wait=false",
            f"hydra.launcher.partition={partition}", "hydra.sweeper.pruner=none", *BASE, *extra,
            f"hydra.sweep.dir={sweep}"]


def status(sweep: Path, env: dict[str, str]) -> str:
    return cli("status", str(sweep), env=env).stdout


def finished(sweep: Path, env: dict[str, str], trials: int) -> bool:
    out = status(sweep, env)
    return f"trials: {trials} of {trials} finished" in out and bool(re.search(r"^workers: \d+ done$", out, re.M))


def test_scancel_of_a_worker_then_rerun_failed_ends_with_exactly_the_trials(slurm_cluster, tmp_path: Path):
    env = job_env(tmp_path, PIPELINE_FAULTS="write_metrics.jsonl:sleep=0.3")
    sweep = tmp_path / "study"
    r = run_py(tmp_path, *study_args(slurm_cluster.partition, sweep, "hydra.sweeper.trials=3",
                                     "hydra.sweeper.workers=2", "trainer.lr=choice(1e-3, 3e-3)"), env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((sweep / rundir.SWEEP_JSON).read_text())
    array = meta["arrays"][0]["job_id"]
    assert [(w["slot"], w["job_id"]) for w in meta["study"]["workers"]] == [(0, f"{array}_0"), (1, f"{array}_1")]

    trial, _ = held_trial(sweep, 1)
    subprocess.run(["scancel", f"{array}_1"], env=env, check=True, capture_output=True)
    fast = job_env(tmp_path)
    wait_for(lambda: "workers: 1 done, 1 failed" in status(sweep, fast), 300, "worker 1 failed, worker 0 done", poll=2)
    out = status(sweep, fast)
    assert f"worker 1 (job {array}_1) failed: CANCELLED" in out and f"holding trial {trial}" in out, out
    states = [t.state for t in SweepStudy.open(sweep).trials()]
    assert sorted(states) == [COMPLETE, COMPLETE, RUNNING], states  # the held trial was not replaced

    r = cli("rerun", str(sweep), "--failed", env=fast)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rerun: worker 1 (failed: CANCELLED" in r.stdout, r.stdout
    assert f"trial {trial} resumes from checkpoints/last" in r.stdout, r.stdout
    workers = json.loads((sweep / rundir.SWEEP_JSON).read_text())["study"]["workers"]
    assert workers[1]["previous_job_ids"] == [f"{array}_1"] and workers[0] == meta["study"]["workers"][0]
    wait_for(lambda: finished(sweep, fast, 3), 300, "the study to finish", poll=2)
    finished_once(sweep, 3)
    done = json.loads(rundir.metrics_json(sweep / str(trial)).read_text())
    assert done["attempts"] == 2 and "resumed from checkpoints/last" in (sweep / str(trial) / "run.log").read_text()


def test_a_worker_past_its_run_limit_resumes_the_same_trial_with_the_same_metrics(slurm_cluster, tmp_path: Path):
    """--time=1 with USR2 50 s before it (10-40 s into an attempt: slurmctld checks every ~30 s) and >= 0.5 s
    per step: the trial (80 steps, 40 s) cannot finish in one attempt; each requeued attempt resumes trial 0
    where the last one checkpointed (how far each gets depends on when USR2 comes: up to 10 requeues)."""
    env = job_env(tmp_path, PIPELINE_FAULTS="write_metrics.jsonl:sleep=0.5")
    sweep = tmp_path / "study"
    r = run_py(tmp_path, *study_args(slurm_cluster.partition, sweep, "hydra.sweeper.trials=1",
                                     "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=50",
                                     "hydra.launcher.max_num_timeout=10", "trainer.epochs=4",
                                     "trainer.lr=choice(3e-3)"), env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    fast = job_env(tmp_path)
    wait_for(lambda: finished(sweep, fast, 1), 540, "the requeued worker to finish trial 0", poll=2)
    finished_once(sweep, 1)  # trial 0 only: the requeued worker took it up again, it asked no other
    assert json.loads(rundir.metrics_json(sweep / "0").read_text())["attempts"] >= 2  # requeued, resumed
    assert json.loads((sweep / rundir.SWEEP_JSON).read_text())["study"]["workers"][0]["previous_job_ids"] == []
    same_curve(sweep / "0", uninterrupted(tmp_path, sweep / "0", fast))
