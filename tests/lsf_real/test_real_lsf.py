"""The launcher and the ``pipeline`` commands on a real LSF (volclava, OpenLava lineage), as a user runs them.

- a sweep in both dialects, with its aggregation job (lsf10 also shows case 9: this LSF rejects
  ``bjobs -o exit_code``; status says once to set ``hydra.launcher.dialect=openlava``, the waiting
  launcher falls back by itself and says so once);
- the run-limit cycle (``-W 1``: USR2 at the limit, checkpoint, requeue marker, ``brequeue``, resume),
  with ``pipeline status`` polled every second: never FAILED (case 6);
- ``bkill`` + ``pipeline rerun --failed``, and the rerun's aggregation job shown pending, not done (case 2),
  and running, not done, while it has written results/ but not ended (issue 20 item 11);
- a queue the cluster does not have: one line, exit 2, and the sweep folder the launch made removed again
  (case 3; issue 22 item 8).

The jobs are the real training job (``model=tiny``, 200 BBC rows); steps are slowed with
PIPELINE_FAULTS where a test needs a job to outlive a run limit or to be killed mid-run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import rundir
from tests.conftest import ROOT, run_py, train_env
from tests.reliability.test_sweep_state import status_rows as rows

pytestmark = [pytest.mark.lsf_real, pytest.mark.slow]

MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
SMALL = ["model=tiny", "data.max_rows=200", "trainer.max_length=64", "trainer.batch_size=8", "trainer.lr=3e-3",
         "trainer.log_every_steps=1", "trainer.checkpoint_every_steps=5"]


def _env(tmp: Path, real_lsf: dict[str, str], **extra: str) -> dict[str, str]:
    env = train_env(tmp, **MALLOC, **real_lsf, **extra)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def wait_for(sweep: Path, env: dict[str, str], done, timeout: float, seen: list[str] | None = None) -> str:
    """Poll `pipeline status` every second until ``done(stdout)``; every answer goes to ``seen``."""
    end = time.monotonic() + timeout
    out = ""
    while time.monotonic() < end:
        r = cli("status", str(sweep), env=env)
        out = r.stdout + r.stderr
        if seen is not None:
            seen.append(out)
        if done(r.stdout):
            return out
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s; last status:\n{out}")


def all_done(stdout: str) -> bool:
    return "completed" in stdout and "aggregate job" in stdout and "done (results/ written)" in stdout and \
        not re.search(r"\d+ (running|pending|requeued)", stdout)


@pytest.mark.parametrize("dialect", ["lsf10"])  # openlava: the bkill + rerun test below
def test_sweep_and_aggregation(real_lsf, tmp_path: Path, dialect: str):
    env = _env(tmp_path, real_lsf)
    sweep = tmp_path / "sweep"
    r = run_py(tmp_path, "-m", "cluster=lsf", f"hydra.launcher.dialect={dialect}", *SMALL, "trainer.epochs=1",
               "seed=0,1", f"hydra.sweep.dir={sweep}", env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((sweep / rundir.SWEEP_JSON).read_text())
    assert meta["dialect"] == dialect and meta["aggregate_job_id"]
    seen: list[str] = []
    final = wait_for(sweep, env, all_done, 240, seen)
    assert "2 jobs: 2 completed" in final
    assert (sweep / rundir.RESULTS_DIR / "summary.md").is_file()
    hint = [ln for out in seen for ln in out.splitlines() if "hydra.launcher.dialect=openlava" in ln]
    if dialect == "lsf10":  # case 9: this LSF rejects -o exit_code; a status call that asks says so once
        assert hint and all(out.count("hydra.launcher.dialect=openlava") <= 1 for out in seen), seen[-1]
    else:
        assert not hint
    assert not any("FAILED" in out for out in seen)


def test_waiting_launcher_falls_back_from_lsf10_once(real_lsf, tmp_path: Path):
    """Case 9 in the submitit watcher: one warning naming the setting, no endless retries."""
    env = _env(tmp_path, real_lsf)
    sweep = tmp_path / "sweep"
    r = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.dialect=lsf10", "hydra.launcher.wait=true", *SMALL,
               "trainer.epochs=1", f"hydra.sweep.dir={sweep}", env=env, timeout=240)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert out.count("hydra.launcher.dialect=openlava") == 1, out[-3000:]
    assert "retrying in" not in out
    assert json.loads(rundir.metrics_json(sweep / "0").read_text())["status"] == "completed"


def test_run_limit_requeue_cycle_never_shows_failed_then_gives_up_and_rerun_finishes(real_lsf, tmp_path: Path):
    """-W 1, max_num_timeout=1: at the first limit USR2, checkpoint, marker, brequeue (LSF shows EXIT for a
    few seconds before PEND); polled every second through that whole cycle, status never says FAILED. At
    the second limit the job is given up (case 5): failed, with its checkpoint kept; `rerun --failed` with
    more time resumes it and it completes."""
    env = _env(tmp_path, real_lsf, PIPELINE_FAULTS="write_metrics.jsonl:sleep=1.5")
    sweep = tmp_path / "sweep"
    r = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.dialect=openlava", "hydra.launcher.timeout_min=1",
               "hydra.launcher.max_num_timeout=1", *SMALL, "trainer.epochs=4", f"hydra.sweep.dir={sweep}",
               env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    seen: list[str] = []
    out = wait_for(sweep, env, lambda s: rundir.metrics_json(sweep / "0").is_file(), 300, seen)
    states = [rows(o).get("0") for o in seen[:-1]]  # the last poll may see the given-up job
    assert "FAILED" not in states, next(o for o in seen if rows(o).get("0") == "FAILED")
    assert "RUNNING" in states and ("REQUEUED" in states or "PENDING" in states[states.index("RUNNING"):]), states
    given_up = json.loads(rundir.metrics_json(sweep / "0").read_text())
    assert given_up["status"] in ("failed", "gave_up") and given_up.get("error"), given_up  # case 5's wording
    assert rundir.checkpoint_dir(sweep / "0").is_dir(), out
    fast = {k: v for k, v in env.items() if k != "PIPELINE_FAULTS"}
    r = cli("rerun", str(sweep), "--failed", "hydra.launcher.timeout_min=20", env=fast)
    assert r.returncode == 0 and "resumes from checkpoints/last" in r.stdout, r.stdout + r.stderr
    wait_for(sweep, fast, all_done, 240)
    final = json.loads(rundir.metrics_json(sweep / "0").read_text())
    assert final["status"] == "completed" and final["attempts"] >= 3, final


def _bjobs_stat(job_id: str, env: dict[str, str]) -> str:
    out = subprocess.run(["bjobs", "-a", "-w", job_id], env=env, capture_output=True, text=True).stdout
    rows = [ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0] == job_id]
    return rows[0][2] if rows else ""


def test_bkill_then_rerun_failed_and_the_new_aggregation_is_pending(real_lsf, tmp_path: Path):
    """Case 2, and issue 20 item 11: the rerun's aggregation job writes results/ before it ends (here it then
    takes 40 s over report.html); while bjobs says RUN, status says RUN, never `done (results/ written)`."""
    env = _env(tmp_path, real_lsf, PIPELINE_FAULTS="write_metrics.jsonl:sleep=0.5")
    sweep = tmp_path / "sweep"
    r = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.dialect=openlava", *SMALL, "trainer.epochs=2",
               "seed=0,1", f"hydra.sweep.dir={sweep}", env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((sweep / rundir.SWEEP_JSON).read_text())
    victim = meta["jobs"][1]["job_id"]
    lines = sweep / "1" / rundir.METRICS_JSONL
    end = time.monotonic() + 120
    while not (lines.is_file() and len(lines.read_text().splitlines()) >= 8) and time.monotonic() < end:
        time.sleep(0.5)
    subprocess.run(["bkill", victim], env=env, check=True, capture_output=True)
    fast = {k: v for k, v in env.items() if k != "PIPELINE_FAULTS"}
    out = wait_for(sweep, fast, lambda s: rows(s).get("1") == "FAILED" and "done (results/ written)" in s, 180)
    assert rows(out).get("0") == "COMPLETED", out
    slow_aggregation = {**fast, "PIPELINE_FAULTS": "write_report.html:sleep=40"}  # the jobs get bsub's env
    r = cli("rerun", str(sweep), "--failed", env=slow_aggregation)
    assert r.returncode == 0, r.stderr
    new = json.loads((sweep / rundir.SWEEP_JSON).read_text())
    new_agg = new["aggregate_job_id"]
    assert new_agg != meta["aggregate_job_id"]
    first = cli("status", str(sweep), env=fast).stdout  # case 2: the old results/ is still there
    assert f"aggregate job {new_agg}: done" not in first, first
    end = time.monotonic() + 240  # item 11: results/ rewritten by the aggregation job that still runs
    while not (rundir.results_are_current(sweep, new) and _bjobs_stat(new_agg, fast) == "RUN"):
        assert time.monotonic() < end, cli("status", str(sweep), env=fast).stdout
        time.sleep(1)
    during = cli("status", str(sweep), env=fast).stdout
    assert f"aggregate job {new_agg}: RUN" in during, during
    wait_for(sweep, fast, all_done, 240)
    assert json.loads(rundir.metrics_json(sweep / "1").read_text())["status"] == "completed"


def test_queue_the_cluster_lacks_is_one_line_and_leaves_no_sweep_folder(real_lsf, tmp_path: Path):
    """Case 3, and issue 22 item 8: bsub refuses the first submission; one line naming the setting, exit 2,
    and no near-empty sweep folder for `ls -d outputs/multirun/*/ | tail -n 1` to pick up afterwards."""
    env = _env(tmp_path, real_lsf)
    multirun = tmp_path / "outputs" / "multirun"
    earlier = multirun / "2000-01-01_00-00-00"
    earlier.mkdir(parents=True)
    r = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.dialect=openlava", "hydra.launcher.queue=nosuchqueue",
               *SMALL, "seed=0,1", env=env, timeout=120)
    err = [ln for ln in r.stderr.splitlines() if ln.strip() and "HYDRA_FULL_ERROR" not in ln]
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert "No such queue" in err[0] and "hydra.launcher.queue" in err[0] and "pipeline rerun" not in err[0]
    assert list(multirun.iterdir()) == [earlier]  # the refused sweep left nothing behind
    assert not (tmp_path / "outputs" / ".tmp").exists()
