"""The scheduler-backend interface: one class per scheduler, chosen in one place (:func:`get_backend`).

A backend is what the rest of the project knows about a scheduler, and all it knows. It implements:

- **ids**: ``base_id(job_id)`` (the array or plain job an id belongs to: LSF ``123[4]`` -> ``123``, Slurm
  ``456_3`` -> ``456``) and ``file_stem(job_id)`` (the stem of the job's submitit files: LSF ``123_4``);
- **state**: ``query(job_ids, manifest) -> Answer``, one scheduler call for all the given jobs that never
  raises (a scheduler that fails is an answer with ``answered=False`` and a warning); the job states are
  then decided by :func:`pipeline.launch.state.decide`;
- **submission**: ``make_executor()`` (a submitit executor built from the launcher's settings and the job
  environment, every setting checked: bad input raises a one-line ``PipelineError`` before any file or
  scheduler call), ``check_can_submit(executor)`` (the scheduler's command is there) and
  ``submit(executor, calls, on_start)`` (N zero-argument calls as ONE array: our
  ``LsfExecutor``, submitit's Slurm executor, submitit's ``LocalExecutor`` behind a window of
  ``max_parallel`` processes; a refusal raises a one-line ``SubmissionError``);
- **the job environment**: how ``job_env`` reaches the job (LSF: ``export`` lines of the script; Slurm: the
  script's setup lines; local: the environment of the submit call only, restored after it);
- **control**: ``kill(job_ids)``, ``log_paths(job)``, ``peek_command(job_id, follow)`` (a live view of a log
  the scheduler buffers: LSF ``bpeek``), ``job_here(env)`` (the id of the job a process runs in, from its
  environment), ``submit_aggregate`` (a dependent job that aggregates the sweep:
  LSF); requeue at the run limit happens inside the job, through the backend's submitit
  ``JobEnvironment`` (``brequeue``, ``scontrol requeue``, the local controller's restart);
- **facts**: ``poll_s`` (seconds between ``pipeline watch`` refreshes), ``blocking`` (the launch waits for
  its jobs: local processes), ``waits()`` (this launch waits, e.g. ``hydra.launcher.wait=true``).

Nothing here imports submitit (``pipeline status`` stays fast); the backends import it lazily.
A new scheduler is one module with a ``Backend`` subclass and one line in :data:`BACKENDS`
(docs/architecture.md sketches PBS).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from pipeline.errors import SubmissionError
from pipeline.launch import Answer, Runner, run_command

#: scheduler name (``sweep.json``'s ``scheduler``) -> ``module:class`` of its backend (imported on first use)
BACKENDS = {
    "lsf": "pipeline.launch.lsf:LsfBackend",
    "slurm": "pipeline.launch.slurm:SlurmBackend",
    "local": "pipeline.launch.local:LocalBackend",
}


class PartlySubmitted(SubmissionError):
    """The scheduler refused a later array of a big submission: the earlier arrays were submitted."""


#: ``on_start(i, job)``: the i-th call of a submission is now a scheduler job (local: a started process)
OnStart = Callable[[int, Any], None]


class Backend(ABC):
    """One scheduler. ``params``: the launcher's settings (``hydra.launcher.*``); ``env``: the job
    environment (:func:`pipeline.launch.job_env.job_env`); ``runner`` runs scheduler commands (tests pass
    one that answers with captured output)."""

    name: ClassVar[str]
    #: seconds between two refreshes of ``pipeline watch`` (each one scheduler query)
    poll_s: ClassVar[float] = 10.0
    #: the launch itself waits for every job (local processes): there is no scheduler to hand them to
    blocking: ClassVar[bool] = False
    #: the command that cancels jobs, followed by their ids
    cancel_command: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
                 runner: Runner = run_command) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self.env: dict[str, str] = dict(env or {})
        self.runner = runner

    # ------------------------------------------------------------------------------------------ ids

    def base_id(self, job_id: str) -> str:
        return str(job_id)

    def file_stem(self, job_id: str) -> str:
        return str(job_id)

    # ------------------------------------------------------------------------------------------ state

    @abstractmethod
    def query(self, job_ids: Iterable[str], manifest: Mapping[str, Any]) -> Answer:
        """One scheduler call about all these jobs (``manifest``: the sweep's ``sweep.json``); never raises."""

    # ------------------------------------------------------------------------------------------ submission

    @abstractmethod
    def make_executor(self) -> Any:
        """The submitit executor for ``self.params`` and ``self.env``, every setting checked."""

    @abstractmethod
    def submit(self, executor: Any, calls: Sequence[Callable[[], Any]], on_start: OnStart | None = None,
               on_wait: Callable[[], None] | None = None) -> list[Any]:
        """Submit the calls as one array (one job each, in order); ``on_start(i, job)`` as each job is
        submitted (local: started); ``on_wait`` while a blocking submission waits for its jobs."""

    def check_can_submit(self, executor: Any) -> None:
        """A one-line ``SubmissionError`` when submitting cannot work here (the scheduler's command missing),
        before any file is written; nothing to check by default."""
        return None

    def waits(self) -> bool:
        """Does this launch wait for its jobs (local: always; else ``hydra.launcher.wait``)?"""
        return self.blocking or bool(self.params.get("wait", False))

    def jobs_at_once(self, n_calls: int) -> int | None:
        """How many of n jobs run at once on this machine (for the core share), None: not on this machine."""
        return None

    def manifest_fields(self, executor: Any) -> dict[str, Any]:
        """What ``sweep.json`` records about this scheduler beyond the common fields."""
        return {}

    def notes(self, n_jobs: int, runs_per_job: int = 1) -> list[str]:
        """Lines the user should read after submitting n scheduler jobs (e.g. how many the queue runs at
        once); none by default."""
        return []

    def arrays(self, job_ids: Sequence[str], job_nums: Sequence[int | None]) -> list[dict[str, Any]]:
        """``sweep.json``'s ``arrays``: consecutive jobs of one scheduler array as one entry (``job_nums``:
        the sweep point each id stands for, None for a job whose points are not known in advance)."""
        out: list[dict[str, Any]] = []
        for job_id, num in zip(job_ids, job_nums, strict=True):
            base = self.base_id(str(job_id))
            if out and out[-1]["job_id"] == base:
                out[-1]["size"] += 1
            else:
                out.append({"job_id": base, "size": 1, "first_job_num": num})
        return out

    def submit_aggregate(self, executor: Any, sweep_dir: Any, depends_on: Sequence[str],
                         dry_run: bool = False, check_only: bool = False) -> str | None:
        """Submit the job that aggregates the sweep once ``depends_on`` ended; its id (None: no such job)."""
        return None

    # ------------------------------------------------------------------------------------------ jobs

    def log_paths(self, job: Any) -> tuple[str, str]:
        """(stdout, stderr) of a submitted job (the same file twice with ``stderr_to_stdout``)."""
        one = bool(self.params.get("stderr_to_stdout", False))
        return str(job.paths.stdout), str(job.paths.stdout if one else job.paths.stderr)

    def kill(self, job_ids: Iterable[str]) -> tuple[int, str]:
        """Cancel these jobs in one call: (exit code, what the scheduler said)."""
        ids = [str(j) for j in job_ids]
        if not ids or not self.cancel_command:
            return 0, ""
        rc, out, err = self.runner([*self.cancel_command, *ids])
        return rc, (err or out).strip()

    def peek_command(self, job_id: str, follow: bool = False) -> list[str] | None:
        """The command that shows a running job's output while the scheduler still holds it; None: the
        log file itself is current."""
        return None

    @classmethod
    def job_here(cls, env: Mapping[str, str]) -> str | None:
        """The id of the job this process runs in, from its environment, if this scheduler started it."""
        return None


def backend_names() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str) -> type[Backend]:
    """The backend class of a scheduler (ValueError naming the known ones for anything else)."""
    try:
        module, _, cls = BACKENDS[str(name)].partition(":")
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; valid: {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)


def backend(name: str, params: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
            runner: Runner = run_command) -> Backend:
    """An instance of a scheduler's backend (for queries: ``backend(sweep.scheduler)``)."""
    return get_backend(name)(params, env, runner)


def current_job(env: Mapping[str, str]) -> tuple[str, str | None]:
    """(scheduler, job id) of the process with this environment; ``("none", None)`` outside any job. The
    executor that started the process (``SUBMITIT_EXECUTOR``) is asked first: a local sweep run inside an
    interactive LSF or Slurm allocation is a local job, whatever ``LSB_JOBID`` the allocation set."""
    started_by = env.get("SUBMITIT_EXECUTOR")
    for name in sorted(BACKENDS, key=lambda n: n != started_by):
        job_id = get_backend(name).job_here(env)
        if job_id is not None:
            return name, job_id
    return "none", None


def runs_here(launcher_cfg: Any) -> bool:
    """Do the jobs of this launcher config (``hydra.launcher``) run on this machine? True for the local
    backend and for launchers that are not ours (Hydra's basic launcher runs jobs in-process)."""
    from hydra.utils import get_class

    target = launcher_cfg.get("_target_") if launcher_cfg is not None else None
    try:
        cls = get_class(str(target)) if target else None
    except Exception:  # noqa: BLE001 - an unknown launcher: Hydra reports it; assume it runs here
        cls = None
    name = getattr(cls, "backend_name", None)
    return name is None or get_backend(name).blocking
