"""End-to-end checks of submitit and hydra-submitit-launcher against a real Slurm cluster.

Start the one-node cluster with ``sudo bash .ci/slurm-up.sh``; without it every test here is skipped.
Run: ``python -m pytest tests/test_slurm_cluster.py -q -m slurm`` (about 1-1.5 minutes; see docs/slurm-ci.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit

from tests.slurm_fixture import SlurmCluster, shared_folder

# The ``slurm_cluster`` fixture (skips without a cluster): tests/slurm_fixture.py, a plugin of tests/conftest.py.
pytestmark = pytest.mark.slurm

# The callables below are pickled *by value*, so the jobs never have to import this test module (which
# would depend on the job's working directory and sys.path).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def square(x: int) -> tuple[int, str | None]:
    return x * x, os.environ.get("SLURM_ARRAY_TASK_ID")


def sleep_forever(marker: str) -> str:
    Path(marker).touch()
    time.sleep(600)
    return "not cancelled"


class InterruptibleTask(submitit.helpers.Checkpointable):
    """Blocks on its first attempt; after submitit checkpoints it (USR2) and requeues it, it returns."""

    def __init__(self) -> None:
        self.checkpoints = 0

    def __call__(self, marker_dir: str) -> dict[str, object]:
        attempt = self.checkpoints + 1
        Path(marker_dir, f"attempt-{attempt}").touch()
        if self.checkpoints == 0:
            time.sleep(600)  # interrupted by the USR2 handler, which checkpoints, requeues and exits
            return {"interrupted": False}
        return {
            "interrupted": True,
            "checkpoints": self.checkpoints,
            "restart_count": os.environ.get("SLURM_RESTART_COUNT"),
            "job_id": os.environ.get("SLURM_JOB_ID"),
        }

    def checkpoint(self, *args: object, **kwargs: object) -> submitit.helpers.DelayedSubmission:
        self.checkpoints += 1
        return super().checkpoint(*args, **kwargs)


@pytest.fixture
def submitit_folder(tmp_path: Path) -> Path:
    return shared_folder(tmp_path)


def _sacct(job_id: str) -> str:
    proc = subprocess.run(
        ["sacct", "-D", "-j", job_id, "-P", "-o", "JobID,State,ExitCode,Start,End,Elapsed,NodeList"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return proc.stdout + proc.stderr


def _describe(job: submitit.Job) -> str:
    parts = [f"sacct:\n{_sacct(job.job_id)}"]
    for name in ("stdout", "stderr"):
        try:
            text = getattr(job, name)()
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            text = f"<{exc!r}>"
        parts.append(f"{name}:\n{(text or '')[-3000:]}")
    return "\n".join(parts)


def wait_until(job: submitit.Job, timeout: float, what: str = "done", poll: float = 1.0) -> None:
    """Wait until the job is done (result file or a final state in sacct), or fail with its logs.

    ``done(force_check=True)`` queries sacct at every poll instead of submitit's back-off (up to 60 s).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what == "done" and job.done(force_check=True):
            return
        if what == "running" and job.watcher.get_state(job.job_id, mode="force") == "RUNNING":
            return
        time.sleep(poll)
    pytest.fail(f"job {job.job_id} not {what} after {timeout:.0f} s\n{_describe(job)}")


def wait_for_file(path: Path, job: submitit.Job, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} not created by job {job.job_id} after {timeout:.0f} s\n{_describe(job)}")
        time.sleep(0.5)


def test_job_array_returns_results(slurm_cluster: SlurmCluster, submitit_folder: Path) -> None:
    executor = slurm_cluster.executor(submitit_folder, timeout_min=2, slurm_array_parallelism=4)
    jobs = executor.map_array(square, [1, 2, 3, 4])
    assert len(jobs) == 4
    assert len({job.job_id.split("_")[0] for job in jobs}) == 1, "map_array should submit one Slurm array"
    for job in jobs:
        wait_until(job, timeout=60)
    results = [job.result() for job in jobs]
    assert [value for value, _ in results] == [1, 4, 9, 16]
    assert sorted(task for _, task in results) == ["0", "1", "2", "3"]
    # The result pickles can appear before slurmdbd has recorded the end of the jobs: poll sacct a little.
    deadline = time.monotonic() + 20
    while (states := [job.watcher.get_state(job.job_id, mode="force") for job in jobs]) != ["COMPLETED"] * 4:
        assert time.monotonic() < deadline, f"sacct states {states}\n{_sacct(jobs[0].job_id.split('_')[0])}"
        time.sleep(1)


def test_cancelled_job_is_reported_cancelled(slurm_cluster: SlurmCluster, submitit_folder: Path) -> None:
    executor = slurm_cluster.executor(submitit_folder, timeout_min=3)
    marker = submitit_folder / "started"
    job = executor.submit(sleep_forever, str(marker))
    wait_for_file(marker, job, timeout=60)  # cancel a job that is really running, not a pending one
    job.cancel()
    started = time.monotonic()
    wait_until(job, timeout=30)
    assert time.monotonic() - started < 30
    assert job.state.startswith("CANCELLED"), _describe(job)
    # result() first waits up to 15 s for a result pickle that a slow shared filesystem might still be
    # writing; a cancelled job on a local disk never writes one (submitit's own tests set this to 0 too).
    job._results_timeout_s = 1  # noqa: SLF001
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="has not produced any output"):
        job.result()


def test_checkpointable_job_is_requeued_after_timeout_signal(
    slurm_cluster: SlurmCluster, submitit_folder: Path
) -> None:
    """The real timeout path: Slurm sends USR2 ``slurm_signal_delay_s`` before the 1-minute limit.

    slurmctld checks time limits only every ~30 s, so USR2 arrives 5-35 s after the start; the requeued job
    may start again after the job credential expired (cred_expire=10 in .ci/slurm-up.sh).  ~25-50 s in all.
    """
    executor = slurm_cluster.executor(submitit_folder, timeout_min=1, slurm_signal_delay_s=50)
    job = executor.submit(InterruptibleTask(), str(submitit_folder))
    wait_until(job, timeout=100)
    result = job.result()
    assert result["interrupted"] is True, _describe(job)
    assert result["checkpoints"] == 1
    assert result["restart_count"] == "1"
    assert result["job_id"] == job.job_id  # requeued in place, not resubmitted
    assert (submitit_folder / "attempt-1").exists() and (submitit_folder / "attempt-2").exists()
    log = job.stdout() or ""  # submitit uses --open-mode=append: both attempts are in the log
    assert "this job is timed-out" in log, log[-3000:]
    assert "Requeued job" in log, log[-3000:]


def test_checkpointable_job_is_requeued_after_preemption(
    slurm_cluster: SlurmCluster, submitit_folder: Path
) -> None:
    """The preemption path, triggered at once with submitit's own test hook (SIGTERM, then USR2)."""
    executor = slurm_cluster.executor(submitit_folder, timeout_min=30)
    job = executor.submit(InterruptibleTask(), str(submitit_folder))
    wait_for_file(submitit_folder / "attempt-1", job, timeout=60)
    job._interrupt()  # noqa: SLF001 - submitit's documented way to simulate a preemption in tests
    wait_until(job, timeout=60)
    result = job.result()
    assert result["interrupted"] is True and result["restart_count"] == "1", _describe(job)
    log = job.stdout() or ""
    assert "this job is preempted" in log, log[-3000:]


HYDRA_APP = """\
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg: DictConfig) -> int:
    Path(cfg.out_dir, f"x{cfg.x}.txt").write_text(f"{cfg.x * cfg.x} {os.environ.get('SLURM_JOB_ID')}")
    return cfg.x * cfg.x


if __name__ == "__main__":
    main()
"""


def test_hydra_submitit_slurm_multirun(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    out_dir = tmp_path / "out"
    app_dir.mkdir()
    out_dir.mkdir()
    (app_dir / "app.py").write_text(HYDRA_APP)
    (app_dir / "config.yaml").write_text(f"x: 0\nout_dir: {out_dir}\n")
    sweep_dir = tmp_path / "multirun"
    cmd = [
        sys.executable,
        str(app_dir / "app.py"),
        "--multirun",
        "x=2,3",
        "hydra/launcher=submitit_slurm",
        f"hydra.launcher.partition={slurm_cluster.partition}",
        "hydra.launcher.timeout_min=3",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    values = {}
    for x in (2, 3):
        value, job_id = (out_dir / f"x{x}.txt").read_text().split()
        values[x] = int(value)
        assert job_id.isdigit(), f"x={x} did not run under Slurm (SLURM_JOB_ID={job_id})"
    assert values == {2: 4, 3: 9}
    assert (sweep_dir / ".submitit").is_dir()
    assert (sweep_dir / "multirun.yaml").is_file()
