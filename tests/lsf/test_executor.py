"""LsfExecutor, LsfJob and the watcher against the fake LSF (tests/fake_lsf), in both dialects."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
import submitit
from submitit.core import utils

from pipeline.launch.submitit_lsf.lsf import (
    BSUB_NOT_FOUND,
    BsubNotFoundError,
    LsfExecutor,
    LsfJob,
    LsfJobEnvironment,
    LsfSignalHandler,
    LsfStatusError,
    LsfSubmissionError,
)
from tests.lsf import jobs

pytestmark = pytest.mark.lsf


def executor(folder: Path, dialect: str = "lsf10", **params) -> LsfExecutor:
    ex = LsfExecutor(folder)
    ex.update_parameters(timeout_min=params.pop("timeout_min", 10), dialect=dialect, **params)
    return ex


def test_auto_executor_finds_the_plugin(tmp_path: Path) -> None:
    ex = submitit.AutoExecutor(tmp_path, cluster="lsf")
    assert type(ex._executor) is LsfExecutor
    ex.update_parameters(timeout_min=30, mem_gb=8, cpus_per_task=4, gpus_per_node=1, lsf_queue="gpua100")
    assert ex._executor.parameters == {"timeout_min": 30, "mem_gb": 8, "cores": 4, "gpus": 1, "queue": "gpua100"}


@pytest.mark.parametrize("dialect", ["lsf10", "openlava"])
def test_array_and_single_job(lsf, tmp_path: Path, dialect: str) -> None:
    lsf.set_dialect(dialect)
    ex = executor(tmp_path / "sub", dialect)
    batch = ex.map_array(jobs.add, [1, 2, 3], [10, 20, 30])
    single = ex.submit(jobs.add, 5, 5)
    assert [j.result() for j in batch] == [11, 22, 33]
    assert single.result() == 10
    base = batch[0].job_id.split("[")[0]
    assert [j.job_id for j in batch] == [f"{base}[1]", f"{base}[2]", f"{base}[3]"]
    assert "[" not in single.job_id
    bsubs = lsf.calls("bsub")
    assert len(bsubs) == 2 and bsubs[0]["argv"] == []  # no arguments: the script is read on stdin
    folder = tmp_path / "sub"
    script = (folder / f"{base}_submission.sh").read_text()
    assert '#BSUB -J "submitit[1-3]%3"' in script
    log = (folder / f"{base}_2_0_log.out").read_text()
    assert log.index("Job completed successfully") < log.index("Successfully completed.")  # then LSF's report
    assert json.loads((folder / f"{base}_bsub.json").read_text())["parameters"]["dialect"] == dialect


def test_failed_job_names_its_logs(lsf, tmp_path: Path) -> None:
    job = executor(tmp_path / "sub").submit(jobs.fail, "boom")
    with pytest.raises(utils.FailedJobError, match="boom") as err:
        job.result()
    assert str(job.paths.stderr) in str(err.value)


@pytest.mark.parametrize("dialect", ["lsf10", "openlava"])
def test_job_dying_without_result_ends_the_wait(lsf, watcher, tmp_path: Path, dialect: str) -> None:
    lsf.set_dialect(dialect)
    watcher.dialect = dialect
    job = executor(tmp_path / "sub", dialect).submit(jobs.die, 3)
    job._results_timeout_s = 0
    start = time.time()
    with pytest.raises(utils.UncompletedJobError, match=str(job.paths.stdout)):
        job.result()
    assert time.time() - start < 30
    assert job.state == "EXIT"
    expected = ["-json"] if dialect == "lsf10" else ["-w"]
    assert all(set(expected) <= set(c["argv"]) for c in lsf.calls("bjobs"))


def test_one_bjobs_call_per_poll_and_transient_failures(lsf, watcher, tmp_path: Path) -> None:
    ex = executor(tmp_path / "sub", max_array_size=2)
    batch = ex.map_array(jobs.die, [1, 2, 3])  # two arrays: [1-2] and [1-1]
    for job in batch:
        job._results_timeout_s = 0
    lsf.fail_next("bjobs", 3)
    while not all(job.done() for job in batch):
        time.sleep(0.2)
    calls = lsf.calls("bjobs")
    assert len(calls) >= 4  # three failures, then answers
    bases = sorted({j.job_id.split("[")[0] for j in batch})
    for call in calls:  # every poll asks about every array once
        assert sorted(a for a in call["argv"] if a.isdigit()) == bases
    assert {j.state for j in batch} == {"EXIT"}


def test_gives_up_when_bjobs_keeps_failing(lsf, watcher, tmp_path: Path) -> None:
    watcher.max_failures = 3
    job = executor(tmp_path / "sub", timeout_min=200).submit(jobs.sleep, 60)
    lsf.fail_next("bjobs", 100)
    with pytest.raises(LsfStatusError, match="bjobs failed 3 times in a row"):
        job.wait()
    job.cancel()


def test_forgotten_job_is_decided_by_its_result_file(lsf, watcher, tmp_path: Path) -> None:
    lsf.setenv("FAKE_LSF_FORGET_AFTER", "0")  # bjobs forgets finished jobs at once
    ok = executor(tmp_path / "sub").submit(jobs.add, 1, 1)
    dead = executor(tmp_path / "sub").submit(jobs.die, 1)
    lsf.wait_all(timeout=30)
    dead._results_timeout_s = 0
    assert ok.watcher.get_state(ok.job_id, mode="force") == "DONE"  # not in bjobs, but its result is there
    assert ok.result() == 2
    while not dead.done(force_check=True):
        time.sleep(0.1)
    assert dead.state == "MISSING"
    assert isinstance(dead.exception(), utils.UncompletedJobError)


def test_split_into_arrays_above_max_array_size(tmp_path: Path) -> None:
    ex = LsfExecutor(tmp_path / "sub", dry_run=True)
    ex.update_parameters(job_name="big", array_parallelism=50)
    start = time.time()
    batch = ex.map_array(jobs.add, range(2500), range(2500))
    elapsed = time.time() - start
    ids = [j.job_id for j in batch]
    assert ids[0] == "DRYRUN1[1]" and ids[999] == "DRYRUN1[1000]" and ids[1000] == "DRYRUN2[1]"
    assert ids[2499] == "DRYRUN3[500]"
    scripts = {p.name: p.read_text() for p in (tmp_path / "sub").glob("*_submission.sh")}
    assert sorted(scripts) == ["DRYRUN1_submission.sh", "DRYRUN2_submission.sh", "DRYRUN3_submission.sh"]
    assert '#BSUB -J "big[1-1000]%50"' in scripts["DRYRUN2_submission.sh"]
    assert '#BSUB -J "big[1-500]%50"' in scripts["DRYRUN3_submission.sh"]
    assert (tmp_path / "sub" / "DRYRUN3_500_submitted.pkl").is_file()
    assert len(list((tmp_path / "sub").glob("*_submitted.pkl"))) == 2500
    assert elapsed < 60


def test_bsub_not_on_path_fails_before_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BsubNotFoundError) as err:
        executor(tmp_path / "sub").submit(jobs.add, 1, 2)
    assert str(err.value) == BSUB_NOT_FOUND
    assert not (tmp_path / "sub").exists()


def test_bsub_refusal_names_the_script(lsf, tmp_path: Path) -> None:
    lsf.fail_next("bsub", 1)
    with pytest.raises(LsfSubmissionError, match=r"bsub refused the job \(exit 255\).*Job not submitted") as err:
        executor(tmp_path / "sub").submit(jobs.add, 1, 2)
    assert ".submission_file_" in str(err.value)


# ------------------------------------------------------------------------------------- requeue


def test_warning_signal_checkpoints_and_requeues(lsf, tmp_path: Path) -> None:
    """-wa USR2 -wt: the task stops at a step boundary, submitit checkpoints, brequeue, the job resumes."""
    ex = executor(tmp_path / "sub", timeout_min=8, warning_time_min=5)  # fake: 4 s limit, USR2 at 1.5 s
    job = ex.submit(jobs.Resumable(str(tmp_path / "state"), total=16))
    result = job.result()
    starts = result["starts"]  # 2, or 3 on a slow machine: every run advances
    assert result["step"] == 16 and starts >= 2
    assert result["job"] == job.job_id  # requeued under the same id
    assert [c["argv"] for c in lsf.calls("brequeue")] == [[job.job_id]] * (starts - 1)
    assert utils.DelayedSubmission.load(job.paths.submitted_pickle)._timeout_countdown == 3 - (starts - 1)


def test_resubmits_where_brequeue_is_refused(lsf, tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "brequeue").write_text("#!/bin/sh\necho \"Job <$1>: Operation not permitted\" >&2\nexit 255\n")
    (shim / "brequeue").chmod(stat.S_IRWXU)
    lsf.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    ex = executor(tmp_path / "sub", timeout_min=8, warning_time_min=5)
    job = ex.submit(jobs.Resumable(str(tmp_path / "state"), total=16))
    result = job.result()
    assert result["step"] == 16 and result["starts"] >= 2
    new_ids = job.paths.resubmitted.read_text().split()
    assert len(new_ids) == result["starts"] - 1 and job.job_id not in new_ids
    assert result["job"] == new_ids[-1]  # the last run was the last resubmitted job
    assert len(lsf.calls("bsub")) == result["starts"]
    new_id = new_ids[0]
    assert (tmp_path / "sub" / f"{job.job_id}_resubmission_{new_id}.sh").is_file()


class _Env(LsfJobEnvironment):
    def __init__(self) -> None:
        super().__init__()
        self.requeued: list[int] = []

    def _requeue(self, countdown: int) -> None:
        self.requeued.append(countdown)


def _handler(tmp_path: Path, function, max_num_timeout: int = 3) -> tuple[LsfSignalHandler, _Env]:
    delayed = utils.DelayedSubmission(function)
    delayed.set_timeout(60, max_num_timeout)
    pickle = tmp_path / "1_submitted.pkl"
    delayed.dump(pickle)
    env = _Env()
    paths = utils.JobPaths(tmp_path, job_id="1")
    return LsfSignalHandler(env, paths, delayed), env


@pytest.fixture(autouse=True)
def _keep_sigint():
    """The handler keeps ignoring SIGINT once it requeued (the process exits next): undo that here."""
    previous = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, previous)


def test_second_usr2_or_term_during_checkpoint_does_not_requeue_twice(tmp_path: Path) -> None:
    holder: dict = {}

    class Nervous(jobs.Resumable):
        def checkpoint(self):  # signals arrive while the checkpoint is being written
            holder["h"].checkpoint_and_try_requeue(signal.SIGUSR2)
            holder["h"].bypass(signal.SIGTERM)
            return super().checkpoint()

    handler, env = _handler(tmp_path, Nervous(str(tmp_path / "s"), total=1))
    holder["h"] = handler
    with pytest.raises(SystemExit):
        handler.checkpoint_and_try_requeue(signal.SIGUSR2)
    handler.checkpoint_and_try_requeue(signal.SIGUSR2)  # and after it, too
    assert len(env.requeued) == 1


def test_max_num_timeout_is_respected(tmp_path: Path) -> None:
    handler, env = _handler(tmp_path, jobs.Resumable(str(tmp_path / "s"), total=1), max_num_timeout=0)
    handler._start_time -= 3600  # the job ran for its whole time: a timeout, not a preemption
    with pytest.raises(utils.UncompletedJobError, match="timed-out too many times"):
        handler.checkpoint_and_try_requeue(signal.SIGUSR2)
    assert env.requeued == []


def test_job_environment_ids(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "lsf")
    monkeypatch.setenv("SUBMITIT_FOLDER", str(tmp_path))
    monkeypatch.setenv("LSB_JOBID", "123")
    monkeypatch.setenv("LSB_JOBINDEX", "4")
    monkeypatch.setenv("LSB_MCPU_HOSTS", "n-62-18-9 4 n-62-18-10 4")
    env = submitit.JobEnvironment()
    assert isinstance(env, LsfJobEnvironment)
    assert (env.job_id, env.array_job_id, env.array_task_id, env.lsf_job_ref) == ("123[4]", "123", "4", "123[4]")
    assert env.paths.submitted_pickle == tmp_path / "123_4_submitted.pkl"
    assert env.hostnames == ["n-62-18-9", "n-62-18-10"]
    monkeypatch.setenv("LSB_JOBINDEX", "0")
    assert (env.job_id, env.array_job_id) == ("123", None)
    monkeypatch.setenv("SUBMITIT_LSF_JOB_ID", "99[2]")  # a resubmitted job keeps the original's files
    assert env.job_id == "99[2]" and env.lsf_job_ref == "123"
    assert isinstance(LsfJob(tmp_path, "99[2]").paths.stdout, Path)
