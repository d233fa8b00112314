"""How a run ends when something stops it (issue 10, cases 4 and 8), with the real training job.

- SIGINT (Ctrl-C; LSF's bkill sends INT, then TERM, then KILL) is handled like TERM: checkpoint at the next
  step boundary, metrics.json says the run was killed and by what, no KeyboardInterrupt traceback, a
  non-zero exit; a plain restart or ``pipeline rerun --failed`` resumes from that checkpoint and ends like
  an uninterrupted run.
- attempts.json records the wall time of every attempt, including a SIGKILLed one's time after its last
  checkpoint (up to one heartbeat).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.train import attempts
from tests.conftest import ROOT, read_json, run_py
from tests.reliability.conftest import (
    CONFIG,
    SLOW_STEPS,
    assert_same_as_reference,
    cli,
    completed,
    fake_lsf_cluster,
    job_env,
    last_train_step,
    sweep_json,
    wait_for,
)


def _start(tmp_path: Path, run_dir: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *CONFIG, f"hydra.run.dir={run_dir}"],
                            env=job_env(tmp_path, PIPELINE_FAULTS=SLOW_STEPS, **env), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _checkpoint_step(run_dir: Path) -> int:
    from pipeline.train.checkpoint import load_last

    return load_last(run_dir)["counters"]["step"]


def test_sigint_checkpoints_says_killed_exits_130_and_the_restart_resumes(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = _start(tmp_path, run_dir)
    wait_for(lambda: last_train_step(run_dir) >= 12, 300, "training to reach step 12", poll=0.05)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    step = _checkpoint_step(run_dir)  # saved at the step boundary after the signal, not at step 10
    assert 12 <= step < 20
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "killed" and m["signal"] == "SIGINT"
    assert m["steps"] == m["checkpoint_step"] == step and m["attempts"] == 1
    assert m["error"].startswith(f"killed by SIGINT at step {step} (attempt 1); checkpoints/last at step {step} "
                                 f"is kept: `python run.py hydra.run.dir={run_dir}` resumes from it")
    (rec,) = attempts.read(run_dir)
    assert rec["status"] == "killed" and rec["step"] == step

    resumed = run_py(tmp_path, *CONFIG, f"hydra.run.dir={run_dir}", env=job_env(tmp_path), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from checkpoints/last at step {step}" in (run_dir / "run.log").read_text()
    assert_same_as_reference(run_dir, reference)
    assert [r["status"] for r in attempts.read(run_dir)] == ["killed", "completed"]


def test_bkill_on_lsf_is_recorded_as_killed_and_rerun_failed_resumes(tmp_path, reference):
    with fake_lsf_cluster(tmp_path / "fake_lsf_state") as lsf:
        # JOB_TERMINATE_INTERVAL as on LSF (10 s): INT, then TERM 10 s later, then KILL
        env = job_env(tmp_path, lsf.env, FAKE_LSF_SECONDS_PER_MINUTE="60", FAKE_LSF_TERMINATE_INTERVAL="10")
        sweep = tmp_path / "sweep"
        res = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.aggregate=false", *CONFIG,
                     f"hydra.sweep.dir={sweep}", env={**env, "PIPELINE_FAULTS": SLOW_STEPS}, timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        job_id = sweep_json(sweep)["jobs"][0]["job_id"]
        run_dir = sweep / "0"
        wait_for(lambda: last_train_step(run_dir) >= 12, 300, "training to reach step 12", poll=0.05)
        assert lsf.run("bkill", job_id).returncode == 0
        lsf.wait_all(timeout=60)
        element = lsf.job(int(job_id.split("[")[0]))["elements"]
        (record,) = element.values()
        assert record["stat"] == "EXIT" and record["exit_code"] == 130, record
        step = _checkpoint_step(run_dir)
        m = read_json(run_dir / "metrics.json")
        assert m["status"] == "killed" and m["signal"] == "SIGINT" and m["steps"] == step >= 12
        assert f"checkpoints/last at step {step} is kept: `pipeline rerun {sweep} --failed`" in m["error"]
        logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*.out")) + \
            "".join(p.read_text() for p in (sweep / ".submitit").rglob("*.err"))
        assert "KeyboardInterrupt" not in logs and "Traceback" not in logs, logs[-3000:]

        status = cli("status", str(sweep), env=env)
        assert "FAILED" in status.stdout and "killed by SIGINT" in status.stdout, status.stdout
        rerun = cli("rerun", str(sweep), "--failed", env=env, timeout=300)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "resumes from checkpoints/last" in rerun.stdout
        wait_for(lambda: completed(run_dir), 300, "the rerun to complete")
        lsf.wait_all(timeout=60)
    log = (run_dir / "run.log").read_text()
    assert f"resumed from checkpoints/last at step {step}" in log
    assert_same_as_reference(run_dir, reference)
    assert [r["status"] for r in attempts.read(run_dir)] == ["killed", "completed"]


def test_a_sigkilled_attempt_keeps_its_time_after_the_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    started = time.time()
    proc = _start(tmp_path, run_dir, PIPELINE_ATTEMPT_HEARTBEAT_S="1")
    wait_for(lambda: last_train_step(run_dir) >= 27, 300, "training to reach step 27", poll=0.05)
    proc.kill()
    killed_at = time.time()
    proc.communicate(timeout=60)
    assert _checkpoint_step(run_dir) == 20
    (rec,) = attempts.read(run_dir)
    assert rec["status"] == "running"  # it never got to say goodbye
    assert rec["step"] >= 25  # its heartbeat came after the last checkpoint (step 20)
    assert killed_at - started - 2.0 <= rec["wall_s"] <= killed_at - started + 1.0
    assert attempts.total_wall_s(run_dir) == pytest.approx(rec["wall_s"])
