"""A study (``hydra/sweeper=study``) on the real LSF clone (volclava, dialect openlava), as a user runs it:

- two workers in one ``bsub`` array with their aggregation job; ``bkill`` of a worker mid-trial: the other
  worker finishes the rest and stops, status says which worker died, holding which trial, and what to type;
  ``pipeline rerun SWEEP --failed`` resubmits that worker in its slot (and a new aggregation job); its trial
  resumes from its checkpoint and the study ends with exactly its trials, none counted twice;
- a worker past its run limit (``-W 1``: LSF's USR2, checkpoint, ``brequeue``) resumes the same trial, which
  ends with the same validation curve as an uninterrupted run of its parameters.

The trials are the real training job (``model=tiny``, 200 BBC rows), slowed with PIPELINE_FAULTS where a
test needs a worker to be killed mid-trial or to outlive its run limit.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from pipeline import rundir
from pipeline.search.study import COMPLETE, RUNNING, SweepStudy
from tests.conftest import run_py, train_env
from tests.lsf_real.test_real_lsf import MALLOC, SMALL, cli, wait_for
from tests.search.study_checks import finished_once, held_trial, same_curve, uninterrupted

pytestmark = [pytest.mark.lsf_real, pytest.mark.slow]

STUDY = ["-m", "hydra/sweeper=study", "cluster=lsf", "hydra.launcher.dialect=openlava", "hydra.sweeper.pruner=none",
         *[o for o in SMALL if not o.startswith("trainer.lr=")], "trainer.epochs=2"]


def lsf_env(tmp: Path, real_lsf: dict[str, str], **extra: str) -> dict[str, str]:
    """What a user's shell has after sourcing the clone's profile (as test_real_lsf's jobs get)."""
    env = train_env(tmp, **MALLOC, **real_lsf, **extra)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def study_done(sweep: Path, trials: int, agg: str | None = None):
    """`pipeline status` says: all trials finished, every worker done, the (current) aggregation job done."""
    def done(stdout: str) -> bool:
        return (f"trials: {trials} of {trials} finished" in stdout and bool(re.search(r"^workers: \d+ done$", stdout,
                                                                                      re.M))
                and f"aggregate job {agg or ''}" in stdout and "done (results/ written)" in stdout)
    return done


def test_bkill_of_a_worker_then_rerun_failed_ends_with_exactly_the_trials(real_lsf, tmp_path: Path):
    env = lsf_env(tmp_path, real_lsf, PIPELINE_FAULTS="write_metrics.jsonl:sleep=0.3")
    sweep = tmp_path / "study"
    r = run_py(tmp_path, *STUDY, "hydra.sweeper.trials=3", "hydra.sweeper.workers=2",
               "trainer.lr=choice(1e-3, 3e-3)", f"hydra.sweep.dir={sweep}", env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((sweep / rundir.SWEEP_JSON).read_text())
    array = meta["arrays"][0]["job_id"]
    assert meta["arrays"] == [{"job_id": array, "size": 2, "first_job_num": None}] and meta["jobs"] == []
    assert [(w["slot"], w["job_id"]) for w in meta["study"]["workers"]] == [(0, f"{array}[1]"), (1, f"{array}[2]")]
    assert meta["aggregate_job_id"] and f"submitted job array {array} (2 jobs, study workers)" in r.stdout

    trial, _ = held_trial(sweep, 1)
    subprocess.run(["bkill", f"{array}[2]"], env=env, check=True, capture_output=True)
    fast = {k: v for k, v in env.items() if k != "PIPELINE_FAULTS"}
    out = wait_for(sweep, fast, lambda s: "workers: 1 done, 1 failed" in s and "done (results/ written)" in s, 300)
    assert f"worker 1 (job {array}[2]) failed: EXIT" in out and f"holding trial {trial}" in out, out
    assert "trials: 2 of 3 finished" in out and f"pipeline rerun {sweep} --failed" in " ".join(out.split()), out
    states = [t.state for t in SweepStudy.open(sweep).trials()]
    assert sorted(states) == [COMPLETE, COMPLETE, RUNNING], states  # the held trial was not replaced

    r = cli("rerun", str(sweep), "--failed", env=fast)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rerun: worker 1 (failed: EXIT" in r.stdout and f"trial {trial} resumes from checkpoints/last" in r.stdout
    new = json.loads((sweep / rundir.SWEEP_JSON).read_text())
    assert new["aggregate_job_id"] != meta["aggregate_job_id"]
    assert new["study"]["workers"][1]["previous_job_ids"] == [f"{array}[2]"]
    assert new["study"]["workers"][0] == meta["study"]["workers"][0]
    wait_for(sweep, fast, study_done(sweep, 3, new["aggregate_job_id"]), 300)
    finished_once(sweep, 3)
    done = json.loads(rundir.metrics_json(sweep / str(trial)).read_text())
    assert done["attempts"] == 2 and "resumed from checkpoints/last" in (sweep / str(trial) / "run.log").read_text()
    again = cli("rerun", str(sweep), "--failed", env=fast)
    assert again.returncode == 1 and "the study has its 3 trials finished" in again.stderr, again.stderr


def test_a_worker_past_its_run_limit_resumes_the_same_trial_with_the_same_metrics(real_lsf, tmp_path: Path):
    """-W 1 and >= 1.8 s per step: the trial (40 steps) cannot finish in one attempt. LSF sends USR2 at the
    limit: checkpoint, brequeue; the requeued worker (same job id, same slot) resumes trial 0, not a new one."""
    env = lsf_env(tmp_path, real_lsf, PIPELINE_FAULTS="write_metrics.jsonl:sleep=1.8")
    sweep = tmp_path / "study"
    r = run_py(tmp_path, *STUDY, "hydra.sweeper.trials=1", "hydra.launcher.timeout_min=1",
               "hydra.launcher.max_num_timeout=3", "trainer.lr=choice(3e-3)", f"hydra.sweep.dir={sweep}",
               env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    fast = {k: v for k, v in env.items() if k != "PIPELINE_FAULTS"}
    seen: list[str] = []
    wait_for(sweep, fast, study_done(sweep, 1), 420, seen)
    assert not any("FAILED" in s or "failed:" in s for s in seen), next(s for s in seen if "FAILED" in s)
    finished_once(sweep, 1)
    done = json.loads(rundir.metrics_json(sweep / "0").read_text())
    assert done["attempts"] >= 2, done  # requeued at the run limit, resumed
    assert json.loads((sweep / rundir.SWEEP_JSON).read_text())["study"]["workers"][0]["previous_job_ids"] == []
    same_curve(sweep / "0", uninterrupted(tmp_path, sweep / "0", fast))
