"""The same 2x2 sweep as on the fake LSF, on the real one-node Slurm (``cluster=slurm``), with faults.

1. The sweep is submitted without waiting, with a 1-minute run limit (``--time=1``), USR2 50 s before it
   (``--signal=USR2@50``; slurmctld checks limits only every ~30 s, so it comes 10-40 s into an attempt),
   ``max_num_timeout=1`` and a 1 s floor per optimizer step, so no job can finish in time. Every job is
   checkpointed at the warning, requeued once by submitit (``scontrol requeue``), resumes, is warned again
   and given up ("timed-out too many times"). ``pipeline status`` meanwhile asks Slurm once (one ``sacct``).
2. ``pipeline rerun --failed hydra.launcher.timeout_min=10`` resubmits the four in one ``sbatch`` array;
   they resume in their run directories. Job 0 is SIGKILLed at a random step (Slurm: FAILED).
3. ``pipeline rerun --failed`` resubmits job 0 alone; it resumes (at most one checkpoint interval lost) and
   ends with exactly the metrics of the uninterrupted reference run, after two run-limit warnings, one
   requeue, two reruns and a SIGKILL.

Needs the cluster from ``.ci/slurm-up.sh``; skipped with the reason otherwise. About 1.5 minutes.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest

from pipeline.launch import Runner, run_command
from pipeline.launch import sweep_status as S
from pipeline.results import results as R
from pipeline.results.results import read_jsonl
from tests.conftest import read_json, run_py
from tests.reliability.conftest import (
    CONFIG,
    INTERVAL,
    assert_bounded_redo,
    assert_same_as_reference,
    cli,
    completed,
    job_env,
    job_pid,
    kill_at_step,
    last_train_step,
    status_rows,
    sweep_json,
    wait_for,
    without,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

GRID = ["trainer.lr=3e-3,1e-3", "seed=0,1"]  # the fake LSF sweep's grid; job 0 is the reference's twin


def recording(bindir: Path, name: str) -> Path:
    """A ``name`` on PATH that logs its arguments, then runs the real one; returns the log."""
    real = shutil.which(name)
    assert real, f"{name} not on PATH"
    bindir.mkdir(parents=True, exist_ok=True)
    log = bindir / f"{name}.calls"
    log.touch()
    script = bindir / name
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    return log


def recorder(log: list) -> Runner:
    def runner(argv: list[str]) -> tuple[int, str, str]:
        result = run_command(argv)
        log.append((argv, *result))
        return result

    return runner


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


def failed_all(sweep: Path, env: dict[str, str], jobs: range) -> bool:
    rows = status_rows(cli("status", str(sweep), env=env).stdout)
    return all("FAILED" in rows.get(str(n), "") for n in jobs)


@pytest.fixture(scope="module")
def slurm_sweep(slurm_cluster, tmp_path_factory, reference):
    tmp = tmp_path_factory.mktemp("slurm")
    bindir = tmp / "bin"
    sacct, sbatch = recording(bindir, "sacct"), recording(bindir, "sbatch")
    env = job_env(tmp)
    env["PATH"] = f"{bindir}:{env['PATH']}"
    # >= 1 s per step: two attempts (each ends at most 40 s after its start) can never finish 80 steps
    slow = {**env, "PIPELINE_FAULTS": "write_metrics.jsonl:sleep=1"}
    sweep = tmp / "sweep"
    out = {"sweep": sweep}

    # 1. the run limit, one requeue, given up
    res = run_py(tmp, "-m", "cluster=slurm", "hydra.launcher.wait=false",
                 f"hydra.launcher.partition={slurm_cluster.partition}", "hydra.launcher.timeout_min=1",
                 "hydra.launcher.signal_delay_s=50", "hydra.launcher.max_num_timeout=1",
                 *without(CONFIG, "trainer.lr", "seed"), *GRID, f"hydra.sweep.dir={sweep}", env=slow, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out["submitted"] = sweep_json(sweep)
    before = len(calls(sacct))
    out["early_status"] = cli("status", str(sweep), env=env)
    out["status_sacct"] = calls(sacct)[before:]
    out["early_queries"] = S.query_sweep(R.load_sweep(sweep), runner=recorder(out.setdefault("early_calls", [])))
    wait_for(lambda: failed_all(sweep, env, range(4)), 240, "the four jobs to be given up", poll=3)
    out["given_up"] = {n: read_json(sweep / str(n) / "metrics.json") for n in range(4)}

    # 2. rerun all four with more time; kill job 0 at a random step
    n_sbatch = len(calls(sbatch))
    rerun_time = time.time()
    out["rerun_all"] = cli("rerun", str(sweep), "--failed", "hydra.launcher.timeout_min=10", env=env)
    out["rerun_all_sbatch"] = calls(sbatch)[n_sbatch:]
    out["after_rerun_all"] = sweep_json(sweep)
    new_id = out["after_rerun_all"]["jobs"][0]["job_id"]
    array, _, task = new_id.partition("_")
    wait_for(lambda: any(r.get("split") == "train" and r.get("time", 0) > rerun_time
                         for r in read_jsonl(sweep / "0" / "metrics.jsonl")), 180, "job 0 to train again")
    start = last_train_step(sweep / "0")
    out["step"] = step = random.Random(2024).randint(start + 2, 72)
    out["killed_step"], out["killed_at"] = kill_at_step(
        sweep / "0", step, lambda: job_pid(SLURM_ARRAY_JOB_ID=array, SLURM_ARRAY_TASK_ID=task), timeout=240)
    wait_for(lambda: failed_all(sweep, env, range(1)), 120, "Slurm to record the killed job as failed", poll=2)

    # 3. rerun job 0 alone
    n_sbatch = len(calls(sbatch))
    out["rerun_one"] = cli("rerun", str(sweep), "--failed", env=env)
    out["rerun_one_sbatch"] = calls(sbatch)[n_sbatch:]
    out["after_rerun_one"] = sweep_json(sweep)
    wait_for(lambda: all(completed(sweep / str(n)) for n in range(4)), 300, "the sweep to complete", poll=1)
    out["final_status"] = cli("status", str(sweep), env=env)
    return out


def test_sweep_is_one_array_and_status_asks_sacct_once(slurm_sweep):
    submitted = slurm_sweep["submitted"]
    array = submitted["arrays"][0]["job_id"]
    assert submitted["scheduler"] == "slurm" and submitted["arrays"][0]["size"] == 4
    assert [j["job_id"] for j in submitted["jobs"]] == [f"{array}_{k}" for k in range(4)]
    assert len(slurm_sweep["status_sacct"]) == 1 and slurm_sweep["status_sacct"][0].startswith(f"-j {array} ")
    early = status_rows(slurm_sweep["early_status"].stdout)
    assert sorted(early) == ["0", "1", "2", "3"]
    assert all(("PENDING" in row) or ("RUNNING" in row) for row in early.values()), \
        (slurm_sweep["early_status"].stdout, slurm_sweep["early_status"].stderr, slurm_sweep["early_calls"])


def test_run_limit_checkpoints_requeues_once_then_gives_up(slurm_sweep):
    sweep = slurm_sweep["sweep"]
    for n in range(4):
        assert "timed-out too many times" in slurm_sweep["given_up"][n]["error"]
        logs = "".join(p.read_text() for p in (sweep / ".submitit").glob(f"*_{n}/*_{n}_0_log.out"))
        assert logs.count(") - Requeued job") == 1, logs[-3000:]  # submitit's own line; max_num_timeout=1
        assert "stopping on SIGUSR2 after checkpointing" in (sweep / str(n) / "run.log").read_text()


def test_rerun_of_all_four_is_one_array_and_they_resume(slurm_sweep):
    rerun = slurm_sweep["rerun_all"]
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    lines = [ln for ln in rerun.stdout.splitlines() if ln.startswith("rerun:")]
    assert [ln.split()[2] for ln in lines] == ["0", "1", "2", "3"]
    assert all("timed-out too many times" in ln and "resumes from checkpoints/last" in ln for ln in lines)
    assert len(slurm_sweep["rerun_all_sbatch"]) == 1
    after = slurm_sweep["after_rerun_all"]
    base = after["jobs"][0]["job_id"].split("_")[0]
    assert [j["job_id"] for j in after["jobs"]] == [f"{base}_{k}" for k in range(4)]
    assert after["arrays"][-1]["job_id"] == base
    assert after["reruns"][0]["overrides"] == ["hydra.launcher.timeout_min=10"]
    sweep = slurm_sweep["sweep"]
    for n in range(4):
        archived = read_json(sweep / str(n) / ".rerun" / "1" / "metrics.json")
        assert "timed-out too many times" in archived["error"]


def test_every_job_completes_in_its_run_dir(slurm_sweep):
    sweep = slurm_sweep["sweep"]
    for n in range(4):
        m = read_json(sweep / str(n) / "metrics.json")
        assert m["status"] == "completed" and m["steps"] == 80, (n, m)
    final = slurm_sweep["final_status"]
    assert final.returncode == 0 and "4 jobs: 4 completed" in final.stdout, final.stdout


def test_killed_job_is_rerun_alone_and_matches_the_uninterrupted_run(slurm_sweep, reference):
    sweep = slurm_sweep["sweep"]
    rerun = slurm_sweep["rerun_one"]
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    lines = [ln for ln in rerun.stdout.splitlines() if ln.startswith("rerun:")]
    assert len(lines) == 1 and lines[0].startswith("rerun: job 0 ") and "resumes from checkpoints/last" in lines[0]
    assert len(slurm_sweep["rerun_one_sbatch"]) == 1
    before, after = slurm_sweep["after_rerun_all"], slurm_sweep["after_rerun_one"]
    assert after["jobs"][0]["job_id"] != before["jobs"][0]["job_id"] and "_" not in after["jobs"][0]["job_id"]
    # the first rerun's hydra.launcher.timeout_min=10 holds for this one too (it said nothing of it)
    script = Path(after["submitit_folder"]) / after["jobs"][0]["job_id"]
    assert "#SBATCH --time=10\n" in next(script.glob("*_submission.sh")).read_text()
    assert after["jobs"][1:] == before["jobs"][1:]
    assert slurm_sweep["killed_step"] >= slurm_sweep["step"]
    resumed = assert_bounded_redo(sweep / "0", slurm_sweep["killed_step"], slurm_sweep["killed_at"])
    assert resumed >= INTERVAL
    assert_same_as_reference(sweep / "0", reference)
