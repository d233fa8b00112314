"""Local processes (submitit's LocalExecutor): the job id is the pid; a result pickle means it ended.

:class:`LocalBackend` is this scheduler's :class:`pipeline.launch.backend.Backend`. submitit's LocalExecutor
starts every job at once; :meth:`LocalBackend.submit` keeps a window of running jobs instead (by default
cores // cpus_per_task, one at a time for GPU jobs unless ``visible_gpus`` lists GPUs to share out) and
returns when the last one has ended: a local launch blocks.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.atomic import pid_alive
from pipeline.errors import PipelineError
from pipeline.launch import S_DONE, S_EXIT, S_RUNNING, Answer, SchedJob
from pipeline.launch.backend import Backend, OnStart

#: seconds between two looks at the running jobs while the window is full
POLL_S = 0.2


def query(job_ids: Iterable[str], submitit_folder: str | Path | None = None) -> Answer:
    """Each pid: alive (running), ended with a result pickle (done), or gone (exit)."""
    ans = Answer("local", answered=True)
    for job_id in job_ids:
        if not str(job_id).isdigit():
            continue
        if pid_alive(int(job_id)):
            ans.jobs[job_id] = SchedJob(job_id, "alive", S_RUNNING)
        elif submitit_folder and any((Path(submitit_folder) / sub / f"{job_id}_0_result.pkl").exists()
                                     for sub in ("", str(job_id))):  # .submitit/ or .submitit/%j/
            ans.jobs[job_id] = SchedJob(job_id, "ended", S_DONE)
        else:
            ans.jobs[job_id] = SchedJob(job_id, "gone", S_EXIT)
    return ans


def parallelism(params: Mapping[str, Any]) -> tuple[int, list[list[int]]]:
    """How many jobs run at once, and the GPU ids each slot gets (empty lists without GPUs)."""
    gpus = int(params.get("gpus_per_node") or 0)
    visible = [int(g) for g in params.get("visible_gpus") or []]
    cores = max(1, int(params.get("cpus_per_task") or 1))
    n = params.get("max_parallel") or max(1, (os.cpu_count() or 1) // cores)
    if gpus > 0:
        if len(visible) < gpus:
            return 1, [list(range(gpus))]
        slots = [visible[k * gpus:(k + 1) * gpus] for k in range(len(visible) // gpus)]
        n = min(int(n), len(slots))
        return n, slots[:n]
    return int(n), [[] for _ in range(int(n))]


def check_slots(params: Mapping[str, Any]) -> None:
    """PipelineError (one line) for settings :func:`parallelism` cannot make slots of."""
    most = params.get("max_parallel")
    if most is not None and int(most) < 1:
        raise PipelineError(f"hydra.launcher.max_parallel={most}: at least 1 job must run at a time "
                            "(or null: the cores / cpus_per_task)")
    gpus = int(params.get("gpus_per_node") or 0)
    visible = list(params.get("visible_gpus") or [])
    if visible and len(visible) < gpus:
        raise PipelineError(f"hydra.launcher.visible_gpus={visible}: fewer GPUs than one job's gpus_per_node={gpus}; "
                            f"list at least {gpus}, or none (one job at a time on GPUs 0-{gpus - 1})")


@contextlib.contextmanager
def scoped_environ(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``env`` set for the block only (a job process copies it when it starts)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def drop_unexpanded_folder(folder: Path) -> None:
    """Remove the empty ``.submitit/%j`` folder: submitit's local job controller creates its folder
    argument before it expands ``%j`` (the jobs' files go to ``.submitit/<pid>/``)."""
    if "%" in str(folder):
        with contextlib.suppress(OSError):  # not there, or not empty: leave it
            Path(folder).rmdir()


class LocalBackend(Backend):
    """Processes on this machine, at most ``max_parallel`` at a time; the launch waits for them."""

    name = "local"
    poll_s = 1.0
    blocking = True
    cancel_command = ("kill", "-TERM")

    def query(self, job_ids: Iterable[str], manifest: Mapping[str, Any]) -> Answer:
        return query(job_ids, manifest.get("submitit_folder"))

    @classmethod
    def job_here(cls, env: Mapping[str, str]) -> str | None:
        """submitit's local controller's pid, in a process it started."""
        return env.get("SUBMITIT_LOCAL_JOB_ID") if env.get("SUBMITIT_EXECUTOR") == cls.name else None

    def jobs_at_once(self, n_calls: int) -> int | None:
        return max(1, min(parallelism(self.params)[0], n_calls))

    def arrays(self, job_ids: Sequence[str], job_nums: Sequence[int | None]) -> list[dict[str, Any]]:
        return []  # each job is a process of its own

    def manifest_fields(self, executor: Any) -> dict[str, Any]:
        return {"launcher_pid": os.getpid()}

    def make_executor(self) -> Any:
        import submitit

        p = self.params
        if not p.get("wait", True):
            raise PipelineError("hydra.launcher.wait=false: local_processes always waits for its jobs "
                                "(use an LSF or Slurm launcher to submit and return)")
        check_slots(p)
        executor = submitit.LocalExecutor(folder=p["submitit_folder"], max_num_timeout=int(p.get("max_num_timeout", 0)))
        base = {"timeout_min": p.get("timeout_min"), "tasks_per_node": p.get("tasks_per_node") or 1,
                "gpus_per_node": int(p.get("gpus_per_node") or 0), "nodes": p.get("nodes") or 1,
                "stderr_to_stdout": bool(p.get("stderr_to_stdout", False))}
        executor.update_parameters(**{k: v for k, v in base.items() if v is not None})
        return executor

    def submit(self, executor: Any, calls: Sequence[Callable[[], Any]], on_start: OnStart | None = None,
               on_wait: Callable[[], None] | None = None) -> list[Any]:
        """Start the calls in order, at most ``max_parallel`` at a time, each with its slot's GPUs and the
        job environment; return when all have ended (``on_wait`` is called between looks)."""
        n_parallel, slots = parallelism(self.params)
        free = list(range(n_parallel))
        running: dict[int, int] = {}  # call index -> slot
        jobs: list[Any] = []
        while len(jobs) < len(calls) or running:
            while len(jobs) < len(calls) and free:
                slot = free.pop(0)
                if slots[slot]:
                    executor.update_parameters(visible_gpus=slots[slot])
                with scoped_environ(self.env):
                    jobs.append(executor.submit(calls[len(jobs)]))
                running[len(jobs) - 1] = slot
                if on_start is not None:
                    on_start(len(jobs) - 1, jobs[-1])
            for done in [i for i in running if jobs[i].done()]:
                free.append(running.pop(done))
            if on_wait is not None:
                on_wait()
            if running:
                time.sleep(POLL_S)
        drop_unexpanded_folder(executor.folder)
        return jobs
