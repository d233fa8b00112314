"""Faults on the fake LSF (tests/fake_lsf), in both dialects, with the real training job (model=tiny).

- lsf10, a 2x2 sweep (one job array): one job is SIGKILLed at a random step and forgotten by bjobs at
  once; bjobs fails transiently; ``pipeline status`` and ``pipeline rerun --failed`` then resubmit only that
  job, in one bsub, into its run directory, where it resumes and ends exactly like an uninterrupted run.
- lsf10: a second USR2 and a TERM while the checkpoint is being written: one requeue, a checkpoint that
  loads, the run completes.
- openlava: the run limit (USR2 at the limit, no -wa there) with max_num_timeout=1: checkpoint, requeue,
  resume, then given up at the second limit; the waiting launcher survives failing bjobs calls and a job
  bjobs forgot; ``pipeline rerun --failed hydra.launcher.timeout_min=...`` finishes it.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.conftest import read_json, run_py
from tests.reliability.conftest import (
    CONFIG,
    INTERVAL,
    SLOW_STEPS,
    assert_bounded_redo,
    assert_same_as_reference,
    cli,
    completed,
    fake_lsf_cluster,
    job_env,
    kill_at_step,
    status_rows,
    sweep_json,
    wait_for,
    without,
)

pytestmark = [pytest.mark.lsf, pytest.mark.slow]

GRID = ["trainer.lr=3e-3,1e-3", "seed=0,1"]  # job 0 has CONFIG's lr and seed: the reference's twin


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory, reference):
    """The 2x2 sweep on lsf10; job 0 SIGKILLed at a random step, then rerun. Returns what the tests check."""
    tmp = tmp_path_factory.mktemp("lsf10")
    with fake_lsf_cluster(tmp / "fake_lsf_state") as lsf:
        env = job_env(tmp, lsf.env, FAKE_LSF_SECONDS_PER_MINUTE="60", FAKE_LSF_FORGET_AFTER="0")
        sweep = tmp / "sweep"
        res = run_py(tmp, "-m", "cluster=lsf", *without(CONFIG, "trainer.lr", "seed"), *GRID,
                     f"hydra.sweep.dir={sweep}", env=env, timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        before = sweep_json(sweep)
        array = int(before["arrays"][0]["job_id"])
        step = random.Random(1005).randint(12, 65)  # seeded: the same "random" step on every run
        killed_step, killed_at = kill_at_step(sweep / "0", step, lambda: lsf.job(array)["elements"]["1"].get("pid"))
        lsf.wait_for(array, "EXIT", index=1, timeout=60)
        lsf.wait_all(timeout=300, ids=[array])  # the array has ended: bjobs forgets it (FORGET_AFTER=0)

        # bjobs fails (LSF down): no judgement on a job without metrics.json; a failure that is not a refusal
        # of the lsf10 form is not retried in the other form, so each command makes one call
        lsf.fail_next("bjobs", 1)
        blind_status = cli("status", str(sweep), env=env)
        lsf.fail_next("bjobs", 1)
        blind_rerun = cli("rerun", str(sweep), "--failed", env=env)
        status = cli("status", str(sweep), env=env)  # bjobs has forgotten the killed job by now
        dry = cli("rerun", str(sweep), "--failed", "--dry-run", env=env)
        bsubs = len(lsf.calls("bsub"))
        rerun = cli("rerun", str(sweep), "--failed", env=env)
        new_bsubs = lsf.calls("bsub")[bsubs:]
        after_rerun = sweep_json(sweep)
        again = cli("rerun", str(sweep), "--failed", env=env)  # job 0 is pending or running now
        wait_for(lambda: all(completed(sweep / str(n)) for n in range(4)), 300, "the sweep to complete")
        lsf.wait_all(timeout=120)
        final_status = cli("status", str(sweep), env=env)
        yield {"sweep": sweep, "lsf_calls": lsf.calls(), "before": before, "after_rerun": after_rerun,
               "killed_step": killed_step, "killed_at": killed_at, "step": step, "blind_status": blind_status,
               "blind_rerun": blind_rerun, "status": status, "dry": dry, "rerun": rerun, "again": again,
               "new_bsubs": new_bsubs, "final_status": final_status, "stats": lsf.stats(array)}


def test_killed_job_shows_failed_and_a_blind_scheduler_reruns_nothing(killed_sweep):
    blind = killed_sweep["blind_status"]
    assert "warning: bjobs failed" in blind.stderr  # one query; then the run directories decide
    assert "RUNNING" in status_rows(blind.stdout)["0"]  # no metrics.json: it might still be running
    assert killed_sweep["blind_rerun"].returncode == 1
    assert "nothing to rerun" in killed_sweep["blind_rerun"].stderr
    status = killed_sweep["status"]
    line0 = status_rows(status.stdout)["0"]
    assert "FAILED" in line0 and "no longer lists" in line0, status.stdout
    assert status.returncode == 1


def test_rerun_resubmits_only_the_killed_job_in_one_bsub(killed_sweep):
    dry, rerun = killed_sweep["dry"], killed_sweep["rerun"]
    assert dry.returncode == 0 and dry.stdout.startswith("would rerun: job 0 ") and len(dry.stdout.splitlines()) == 1
    assert rerun.returncode == 0, rerun.stderr
    lines = [ln for ln in rerun.stdout.splitlines() if ln.startswith("rerun:")]
    assert len(lines) == 1 and lines[0].startswith("rerun: job 0 (failed")
    assert "resumes from checkpoints/last" in lines[0]
    bsubs = killed_sweep["new_bsubs"]
    assert len(bsubs) == 2  # the rerun job, and a new aggregation job after it
    before, after = killed_sweep["before"], killed_sweep["after_rerun"]
    new_id = after["jobs"][0]["job_id"]
    assert new_id != before["jobs"][0]["job_id"] and "[" not in new_id  # a plain job: one job to rerun
    assert after["jobs"][1:] == before["jobs"][1:]  # the others untouched
    assert after["jobs"][0]["run_dir"] == before["jobs"][0]["run_dir"]
    record = after["reruns"][0]
    assert record["jobs"] == [0] and record["previous_job_ids"] == {"0": before["jobs"][0]["job_id"]}
    assert after["aggregate_job_id"] != before["aggregate_job_id"]
    assert killed_sweep["again"].returncode == 1 and "nothing to rerun" in killed_sweep["again"].stderr


def test_rerun_resumes_within_one_interval_and_matches_the_uninterrupted_run(killed_sweep, reference):
    sweep = killed_sweep["sweep"]
    assert killed_sweep["killed_step"] >= killed_sweep["step"]
    resumed = assert_bounded_redo(sweep / "0", killed_sweep["killed_step"], killed_sweep["killed_at"])
    assert resumed >= INTERVAL
    assert_same_as_reference(sweep / "0", reference)
    assert read_json(sweep / "0" / "metrics.json")["attempts"] == 2
    assert not (sweep / "0" / ".rerun").exists()  # killed: no metrics.json to move; resumed: nothing else
    for n in (1, 2, 3):
        assert read_json(sweep / str(n) / "metrics.json")["attempts"] == 1
    status = killed_sweep["final_status"]
    assert status.returncode == 0 and "4 jobs: 4 completed" in status.stdout
    results = read_json(sweep / "results" / "results.json")  # the new aggregation job ran after the rerun
    assert sorted(r["state"] for r in results["runs"]["rows"]) == ["completed"] * 4


# ------------------------------------------------------------------------------ signals during a checkpoint


def test_second_usr2_and_term_while_checkpointing(fake_lsf, data, tmp_path: Path):
    """USR2 (the run-limit warning), then USR2 and TERM again while checkpoints/last is half written:
    the checkpoint completes and loads, the job is requeued once, resumes and completes."""
    lsf = fake_lsf
    env = job_env(tmp_path, lsf.env, FAKE_LSF_SECONDS_PER_MINUTE="60",
                  PIPELINE_FAULTS="checkpoint_write:sleep=1.5,write_metrics.jsonl:sleep=0.1")
    sweep = tmp_path / "sweep"
    short = [*without(CONFIG, "trainer.epochs", "trainer.eval_every_steps", "trainer.checkpoint_every_steps"),
             "trainer.epochs=1", "trainer.eval_every_steps=0", "trainer.checkpoint_every_steps=0",
             "trainer.keep_last_checkpoint=true"]  # the resume state is read back at the end
    res = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.aggregate=false", *short,
                 f"hydra.sweep.dir={sweep}", env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    job_id = sweep_json(sweep)["jobs"][0]["job_id"]
    run_dir = sweep / "0"
    from tests.reliability.conftest import last_train_step

    wait_for(lambda: last_train_step(run_dir) >= 3, 120, "training to start", poll=0.05)
    assert lsf.run("bkill", "-s", "USR2", job_id).returncode == 0
    ckpts = run_dir / "checkpoints"
    wait_for(lambda: ckpts.is_dir() and any(p.name.startswith(".last.") for p in ckpts.iterdir()), 60,
             "the checkpoint write", poll=0.02)
    assert lsf.run("bkill", "-s", "USR2", job_id).returncode == 0
    time.sleep(0.2)
    assert lsf.run("bkill", "-s", "TERM", job_id).returncode == 0
    wait_for(lambda: completed(run_dir), 240, "the requeued job to complete")
    lsf.wait_all(timeout=60)
    assert [c["argv"] for c in lsf.calls("brequeue")] == [[job_id]]  # one requeue, not two
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "completed" and m["attempts"] == 2 and m["steps"] == 20
    log = (run_dir / "run.log").read_text()
    assert "resumed from checkpoints/last at step" in log
    from pipeline.train.checkpoint import load_last

    assert load_last(run_dir)["counters"]["step"] == 20
    assert not list(ckpts.glob(".*.tmp"))


# ------------------------------------------------------------------------------ the run limit (openlava)


def test_run_limit_requeues_resumes_then_gives_up_and_rerun_finishes(fake_lsf, reference, tmp_path: Path):
    lsf = fake_lsf
    lsf.set_dialect("openlava")
    # -W 1 is 15 s here; openlava has no -wa/-wt, so USR2 comes at the limit and SIGKILL 30 s later. With
    # >= 0.35 s per step, two 15 s attempts cannot finish the 80 steps.
    env = job_env(tmp_path, lsf.env, FAKE_LSF_SECONDS_PER_MINUTE="15", FAKE_LSF_KILL_GRACE="30",
                  FAKE_LSF_TERMINATE_INTERVAL="1", FAKE_LSF_FORGET_AFTER="0", FAKE_LSF_BJOBS_FAIL="2",
                  PIPELINE_FAULTS=SLOW_STEPS)
    sweep = tmp_path / "sweep"
    started = time.monotonic()
    res = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.dialect=openlava", "hydra.launcher.wait=true",
                 "hydra.launcher.timeout_min=1", "hydra.launcher.max_num_timeout=1", *CONFIG,
                 f"hydra.sweep.dir={sweep}", env=env, timeout=300)
    waited = time.monotonic() - started
    run_dir = sweep / "0"
    m = read_json(run_dir / "metrics.json")
    assert res.returncode != 0  # the job was given up: the waiting sweep says so
    assert m["status"] == "gave_up" and "timed-out too many times" in m["error"], m
    assert len(lsf.calls("brequeue")) == 1  # max_num_timeout=1: one requeue, then no more
    # given up: the job exits non-zero (EXIT, not DONE); metrics.json keeps steps and attempts, and the error
    # names the kept checkpoint and both ways on
    (element,) = lsf.job(int(sweep_json(sweep)["jobs"][0]["job_id"].split("[")[0]))["elements"].values()
    assert element["stat"] == "EXIT" and element["exit_code"] not in (None, 0), element
    from pipeline.train.checkpoint import load_last

    step = load_last(run_dir)["counters"]["step"]
    assert 0 < step < 80 and m["steps"] == m["checkpoint_step"] == step and m["attempts"] == 2, m
    assert f"checkpoints/last at step {step} is kept: `pipeline rerun {sweep} --failed` resumes from it" in m["error"]
    assert "hydra.launcher.timeout_min" in m["error"] and "hydra.launcher.max_num_timeout" in m["error"]
    import json

    records = json.loads((run_dir / "attempts.json").read_text())
    assert [r["status"] for r in records] == ["requeued", "gave_up"]
    assert waited < 200  # two 15 s attempts; failing bjobs and a forgotten job did not make it hang
    bjobs = lsf.calls("bjobs")
    assert bjobs and all("-json" not in c["argv"] for c in bjobs)
    assert (lsf.dir / "bjobs_fail").read_text().strip() == "0"  # both failing bjobs calls happened

    status = cli("status", str(sweep), env=env)
    assert "FAILED" in status.stdout and "timed-out too many times" in status.stdout
    fast = {k: v for k, v in env.items() if k != "PIPELINE_FAULTS"}  # the rerun job runs at full speed
    rerun = cli("rerun", str(sweep), "--failed", "hydra.launcher.timeout_min=20", env=fast, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resumes from checkpoints/last" in rerun.stdout and "job 0: completed" in rerun.stdout
    assert len(lsf.calls("brequeue")) == 1
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "completed" and m["steps"] == 80 and m["attempts"] >= 2
    assert [r["status"] for r in json.loads((run_dir / "attempts.json").read_text())] == \
        ["requeued", "gave_up", "completed"]
    record = sweep_json(sweep)["reruns"][0]
    assert record["overrides"] == ["hydra.launcher.timeout_min=20"] and record["fresh"] == []
    assert_same_as_reference(run_dir, reference)  # two warnings, a requeue, a rerun: the same run
