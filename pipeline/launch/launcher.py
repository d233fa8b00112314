"""The one launch flow of the project's Hydra launchers (``hydra/launcher=lsf|slurm|local_processes``).

    validate everything -> sweep folder -> one payload pickle -> the calls (one point, or a pack of k)
    -> backend submit -> sweep.json -> aggregation job -> report -> wait, or return at once

:class:`SweepLauncher` runs it for any scheduler backend (:mod:`pipeline.launch.backend`); the plugin
classes in ``hydra_plugins/pipeline_launchers/`` only name their backend. :func:`submit_calls` ("submit these
N calls as one array and record them in sweep.json") is the step ``pipeline rerun`` shares with a first
launch, and what a sweeper whose jobs pick their own points (a study's workers) would call. On the compute
node the pickled launcher runs each point (``__call__``: Hydra's singletons, the job's config, ``run_job``).

``import submitit`` is lazy: plugin discovery and ``pipeline status`` stay fast.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline.errors import PipelineError, SubmissionError
from pipeline.launch.backend import Backend, OnStart, PartlySubmitted, backend

log = logging.getLogger(__name__)

DEFAULT_SUBDIR = "${hydra.job.num}"


class LaunchError(CompactHydraException, PipelineError):
    """A launch refused (a setting that cannot work, a scheduler that said no): Hydra prints the message
    alone; the fast_basic sweeper prints it as one line and exits 2. ``nothing_submitted``: no job of this
    launch reached the scheduler (False only when a later array of a big sweep was refused)."""

    def __init__(self, message: str, nothing_submitted: bool = True) -> None:
        super().__init__(message)
        self.nothing_submitted = nothing_submitted


# ------------------------------------------------------------------------------------------ the flow's steps


def folder_of(folder: str | Path) -> Path:
    """The submitit folder without its per-job part: ``<sweep>/.submitit/%j`` -> ``<sweep>/.submitit``."""
    kept = []
    for part in Path(folder).expanduser().absolute().parts:
        if any(tag in part for tag in ("%j", "%t", "%A", "%a")):
            break
        kept.append(part)
    return Path(*kept)


def run_dirs(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[str | None]:
    """The absolute run directory of each job: ``<sweep dir>/<hydra.sweep.subdir>``.

    The usual subdir (``${hydra.job.num}``) costs nothing; any other (``${hydra.job.override_dirname}``)
    is resolved from each job's own config, one composition per job; None where that fails (the CLI then
    falls back to the job number).
    """
    config = launcher.config
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    raw = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")  # type: ignore[union-attr]
    out: list[str | None] = []
    for k, overrides in enumerate(job_overrides):
        num = initial_job_idx + k
        if raw == DEFAULT_SUBDIR:
            out.append(str(sweep_dir / str(num)))
            continue
        try:
            cfg = launcher.hydra_context.config_loader.load_sweep_config(config, list(overrides))
            with open_dict(cfg.hydra.job):
                cfg.hydra.job.num = num
                cfg.hydra.job.id = f"job_id_for_{num}"
            out.append(str(sweep_dir / str(cfg.hydra.sweep.subdir)))
        except Exception as e:  # noqa: BLE001 - a manifest without this run_dir still works
            log.debug("cannot resolve hydra.sweep.subdir for job %d: %s", num, e)
            out.append(None)
    return out


def write_manifest(sweep_dir: Path, manifest: dict[str, Any], merge_from: int = 0) -> dict[str, Any]:
    """Write ``sweep.json`` (a copy of ``manifest``); a batch after the first (``merge_from`` > 0: its first
    job number) is added to what is there."""
    from pipeline import rundir
    from pipeline.launch import packing

    data = copy.deepcopy(manifest)
    if merge_from > 0 and "packs" in data:
        packing.merge_packs(rundir.read_manifest(sweep_dir), data)
    return rundir.write_manifest(sweep_dir, data, merge_from)


def submit_calls(backend: Backend, executor: Any, sweep_dir: Path, calls: Sequence[Callable[[], Any]],
                 job_nums: Sequence[Sequence[int]], manifest: dict[str, Any], *, merge_from: int = 0,
                 rerun: bool = False, on_start: OnStart | None = None,
                 on_wait: Callable[[], None] | None = None) -> list[Any]:
    """Submit N calls as one array and record them in ``sweep.json``; the submitit jobs, in order.

    ``job_nums[i]``: the sweep points call i runs (one; a pack of k; none known yet, for a job that picks
    its points itself). The jobs' ``TMPDIR`` is made first. Each point's entry under ``manifest["jobs"]``
    gets its job's id and logs (an entry is added where there is none); the array(s) go under ``arrays``
    (``rerun``: marked so, with their job numbers). A blocking backend (local processes) writes
    ``sweep.json`` as each job starts, so ``pipeline status`` sees it; the others write it once, after the
    submission. ``merge_from``: see :func:`write_manifest`; ``on_start``/``on_wait``: as for
    :meth:`Backend.submit` (after the recording).
    """
    from pipeline import rundir
    from pipeline.launch.job_env import make_tmpdir

    make_tmpdir(backend.env)
    entries = {int(j["job_num"]): j for j in manifest.setdefault("jobs", [])}

    def started(i: int, job: Any) -> None:
        stdout, stderr = backend.log_paths(job)
        for num in job_nums[i]:
            if num not in entries:
                entries[num] = rundir.job_entry(num, None, None, None, None, [])
                manifest["jobs"].append(entries[num])
            entries[num].update(job_id=str(job.job_id), stdout=stdout, stderr=stderr)
        if backend.blocking:
            write_manifest(sweep_dir, manifest, merge_from)
        if on_start is not None:
            on_start(i, job)

    jobs = backend.submit(executor, calls, started, on_wait)
    pairs = [(str(job.job_id), n) for job, nums in zip(jobs, job_nums, strict=True) for n in (nums or [None])]
    arrays = backend.arrays([i for i, _ in pairs], [n for _, n in pairs])  # sizes count points (or jobs)
    if rerun:
        for a in arrays:
            a["rerun"] = True
            if any(job_nums):  # the points are known: the array's are those it reruns
                a["job_nums"] = [n for i, n in pairs if backend.base_id(i) == a["job_id"] and n is not None]
                a.update(size=len(a["job_nums"]), first_job_num=min(a["job_nums"], default=None))
    manifest.setdefault("arrays", []).extend(arrays)
    manifest.update(write_manifest(sweep_dir, manifest, merge_from))
    return jobs


def job_returns(jobs: Sequence[Any], job_nums: Sequence[Sequence[int]], overrides: Sequence[Sequence[str]],
                dirs: Sequence[str | None], first: int) -> list[JobReturn]:
    """What the jobs of a blocking launch returned, one per point; a job that died without returning is a
    FAILED return for each of its points (their run directories say which of them completed)."""
    out: list[JobReturn] = []
    for job, nums in zip(jobs, job_nums, strict=True):
        try:
            result = job.results()[0]
            out.extend(result if isinstance(result, list) else [result])
        except Exception as e:  # noqa: BLE001 - the job's own failure, reported as such
            out.extend(JobReturn(overrides=list(overrides[n - first]), working_dir=dirs[n - first],
                                 status=JobStatus.FAILED, _return_value=e) for n in nums)
    return out


class UndoIfRefused:
    """``with UndoIfRefused(*paths) as undo: ... undo.made(path)``: if the block raises a SubmissionError
    before any job was submitted, remove what this launch made (those of ``paths`` that did not exist when
    the block began, and every path passed to ``made``); nothing that was there before is touched."""

    def __init__(self, *paths: Path) -> None:
        self.new = [p for p in paths if not p.exists()]

    def made(self, path: Path) -> Path:
        self.new.append(path)
        return path

    def __enter__(self) -> UndoIfRefused:
        return self

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: Any) -> None:
        if isinstance(e, SubmissionError) and not isinstance(e, PartlySubmitted):
            for p in reversed(self.new):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ the launcher


class SweepLauncher(Launcher):
    """A Hydra launcher for one scheduler backend (``backend_name``); subclasses only name it."""

    backend_name: ClassVar[str]

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
                                       for k, v in params.items()}
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    # ---------------------------------------------------------------------------------------- in the job

    def __call__(self, sweep_overrides: list[str], job_dir_key: str, job_num: int, job_id: str,
                 singleton_state: dict[type, Singleton], started: float | None = None,
                 on_eval: Callable[[int, dict[str, float]], bool] | None = None) -> JobReturn:
        """Run one sweep point in this (job) process. ``started``: when the point began inside a job that
        runs several; ``on_eval``: called after each validation evaluation, True prunes the run (a study's
        trial). A task function with a parameter of that name gets it."""
        import submitit

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        Singleton.set_state(singleton_state)
        setup_globals()
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(sweep_overrides))
        with open_dict(sweep_config.hydra.job) as job:
            job.id = submitit.JobEnvironment().job_id
            sweep_config.hydra.job.num = job_num
        task = self.task_function
        takes = inspect.signature(task).parameters
        extra = {k: v for k, v in (("started", started), ("on_eval", on_eval)) if v is not None and k in takes}
        if extra:
            task = functools.partial(task, **extra)
        return run_job(hydra_context=self.hydra_context, task_function=task, config=sweep_config,
                       job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")

    # ---------------------------------------------------------------------------------------- submitting

    def backend(self, n_calls: int = 1) -> Backend:
        """This launcher's backend, with the environment of its jobs (n_calls: the jobs of this launch)."""
        from pipeline.launch.backend import get_backend
        from pipeline.launch.job_env import job_env

        cls = get_backend(self.backend_name)
        at_once = cls(self.params).jobs_at_once(n_calls)
        return backend(self.backend_name, self.params, job_env(self.config, self.params, at_once))

    def make_executor(self) -> Any:
        """The checked submitit executor of this launcher's settings (what its jobs are submitted with)."""
        return self.backend().make_executor()

    # the steps of a launch, shared with a sweeper whose jobs pick their own points (a study's workers)

    def checked_backend(self, n_jobs: int, sweep_dir: Path) -> tuple[Backend, Any]:
        """Step 1, before any file or scheduler call: the backend with its jobs' environment, its executor
        with every setting checked, the scheduler's command, and (a launch that returns at once) the
        aggregation job's script. A setting that cannot work raises a one-line PipelineError."""
        be = self.backend(n_jobs)
        executor = be.make_executor()
        be.check_can_submit(executor)
        if not be.waits():
            be.submit_aggregate(executor, sweep_dir, [], check_only=True)
        return be, executor

    @contextlib.contextmanager
    def sweep_folder(self, be: Backend, executor: Any, sweep_dir: Path) -> Iterator[tuple[Path, UndoIfRefused]]:
        """Step 2: the sweep folder (``hydra.sweep.mode``), the submitit folder and the payload pickle (its
        path is yielded, with the undo record for more files the block makes). A first submission refused
        inside the block removes what this launch made."""
        from pipeline.launch import payload

        assert self.config is not None
        folder = folder_of(executor.folder)
        tmp = Path(be.env["TMPDIR"]) if be.env.get("TMPDIR") else None
        with UndoIfRefused(*(x for x in (sweep_dir, folder, tmp) if x is not None)) as undo:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            if "mode" in self.config.hydra.sweep:
                os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
            folder.mkdir(parents=True, exist_ok=True)
            yield undo.made(payload.write(folder, self, Singleton.get_state())), undo

    def new_manifest(self, be: Backend, executor: Any, jobs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """``sweep.json`` of this launch before submission (``jobs``: the points known in advance, each
        :func:`pipeline.rundir.job_entry`; ``extra``: fields of a packed sweep or a study)."""
        from pipeline import rundir

        return rundir.manifest(scheduler=be.name, submitit_folder=folder_of(executor.folder), arrays=[], jobs=jobs,
                               gpus_per_job=int(self.params.get("gpus_per_node") or 0), **be.manifest_fields(executor),
                               **({"dry_run": True} if bool(self.params.get("dry_run", False)) else {}), **extra)

    def aggregate_after(self, be: Backend, executor: Any, sweep_dir: Path, manifest: dict[str, Any]) -> None:
        """Step 3, for a launch that returns at once: the aggregation job after every array of ``manifest``
        (where the backend has one), recorded in ``sweep.json``."""
        from pipeline import rundir

        if be.waits():
            return
        dry_run = bool(self.params.get("dry_run", False))
        agg = be.submit_aggregate(executor, sweep_dir, [a["job_id"] for a in manifest["arrays"]], dry_run)
        rundir.set_aggregate_job(manifest, agg)
        write_manifest(sweep_dir, manifest)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        try:
            return self._launch(job_overrides, initial_job_idx)
        except PipelineError as e:
            raise LaunchError(str(e), nothing_submitted=not isinstance(e, PartlySubmitted)) from None

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from pipeline.launch import packing

        assert self.config is not None and len(job_overrides) > 0
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        # 1. everything that can be wrong fails here, before any file or scheduler call
        k = packing.runs_per_job(self.params)
        groups = packing.chunks(len(job_overrides), k)
        be, executor = self.checked_backend(len(groups), sweep_dir)
        time_line = self._check_pack_time(k, sweep_dir) if k > 1 else ""
        # 2. the sweep folder, the payload, the calls; submitted and recorded in sweep.json
        nums = [[initial_job_idx + i for i in g] for g in groups]
        dirs = run_dirs(self, job_overrides, initial_job_idx)
        jobs, manifest = self._submit(be, executor, sweep_dir, job_overrides, initial_job_idx, nums, dirs, k)
        # 3. the aggregation job, the report, then wait or return
        return self._finish(be, executor, sweep_dir, manifest, jobs, nums, job_overrides, dirs, k, time_line)

    def _submit(self, be: Backend, executor: Any, sweep_dir: Path, job_overrides: Sequence[Sequence[str]],
                first: int, nums: list[list[int]], dirs: list[str | None], k: int) -> tuple[list[Any], dict]:
        """Make the sweep folder, pickle the launcher once, submit one call per point (or pack) and record
        them; a refused first submission removes what this made."""
        from pipeline import rundir
        from pipeline.launch import packing, payload

        with self.sweep_folder(be, executor, sweep_dir) as (pickled, _):
            points = []
            for n, overrides in enumerate(job_overrides):
                log.info(f"\t#{first + n} : {' '.join(filter_overrides(overrides))}")
                points.append(payload.SweepJob(pickled, list(overrides), "hydra.sweep.dir", first + n))
            groups = [[n - first for n in g] for g in nums]
            manifest = self.new_manifest(
                be, executor, [rundir.job_entry(first + n, None, dirs[n], None, None, o)
                               for n, o in enumerate(job_overrides)],
                **(packing.manifest_fields(k, groups, [None] * len(groups), first) if k > 1 else {}))
            view = self.progress_view(sweep_dir, be, manifest, first, len(job_overrides))
            calls = points if k == 1 else packing.pack(points, dirs, k)
            try:
                jobs = submit_calls(be, executor, sweep_dir, calls, nums, manifest, merge_from=first,
                                    on_wait=view.refresh if view is not None else None)
                if view is not None:
                    view.refresh(force=True)
            finally:  # also on Ctrl-C or a refusal: the live table gives the terminal back
                if view is not None:
                    view.close()
        if k > 1:
            ids = {tuple(g): str(job.job_id) for g, job in zip(nums, jobs, strict=True)}
            for pack in manifest["packs"]:
                pack["job_id"] = ids.get(tuple(pack["job_nums"]), pack["job_id"])
            write_manifest(sweep_dir, manifest)
        return jobs, manifest

    def _finish(self, be: Backend, executor: Any, sweep_dir: Path, manifest: dict[str, Any], jobs: list[Any],
                nums: list[list[int]], job_overrides: Sequence[Sequence[str]], dirs: list[str | None], k: int,
                time_line: str) -> list[JobReturn]:
        from pipeline.launch import packing

        assert self.config is not None
        dry_run, waits = bool(self.params.get("dry_run", False)), be.waits()
        arrays = be.arrays([str(job.job_id) for job, g in zip(jobs, nums, strict=True) for _ in g],
                           [n for g in nums for n in g])
        self.aggregate_after(be, executor, sweep_dir, manifest)
        self.report(be, arrays, executor, manifest.get("aggregate_job_id"), dry_run, waits)
        for line in be.notes(len(jobs), k):
            print(line, flush=True)
        if k > 1:
            print(f"[{be.name}] {packing.describe(k, len(job_overrides))}; {time_line}", flush=True)
        if waits:
            return job_returns(jobs, nums, job_overrides, dirs, nums[0][0])
        return [JobReturn(overrides=list(o), working_dir=dirs[n], task_name=str(self.config.hydra.job.name),
                          status=JobStatus.COMPLETED, _return_value=jobs[n // k].job_id)
                for n, o in enumerate(job_overrides)]

    def _check_pack_time(self, k: int, sweep_dir: Path) -> str:
        """k x the expected run time against the queue's run limit (else the job's timeout_min)."""
        from pipeline.launch import packing

        p = self.params
        per_run, source = packing.expected_run_min(p, sweep_dir)
        if p.get("max_timeout_min") is not None:
            limit, name = p["max_timeout_min"], "the queue's run limit max_timeout_min"
        else:
            limit, name = p.get("timeout_min"), "timeout_min"
        return packing.check_time(k, per_run, source, limit, name)

    def progress_view(self, sweep_dir: Path, be: Backend, manifest: dict[str, Any], first: int, n: int) -> Any:
        """A blocking launch: sweep.json with the points about to start, one log line, and the view it shows
        while it waits (``pipeline watch``'s live table on a terminal, else one line per change)."""
        if not be.blocking:
            return None
        from pipeline.results.formats import plural
        from pipeline.results.watch import SweepView

        write_manifest(sweep_dir, manifest, first)
        at_once = be.jobs_at_once(n)
        log.info(f"Local sweep in {sweep_dir}: {plural(n, 'job')}, {at_once} at a time; follow it with "
                 f"`pipeline watch {sweep_dir}` or `pipeline logs {sweep_dir} {first} -f`")
        assert self.config is not None
        metric = "val_" + str(self.config.get("trainer", {}).get("monitor", "macro_f1"))
        return SweepView(sweep_dir, metric, interval=1.0)

    def report(self, be: Backend, arrays: list[dict[str, Any]], executor: Any, aggregate_id: str | None,
               dry_run: bool, wait: bool) -> None:
        """One line per array, then what to type next (stdout: this is the command's answer)."""
        assert self.config is not None
        if be.blocking:
            return  # the progress view said it all
        sweep = shlex.quote(str(self.config.hydra.sweep.dir))
        what = "dry run, not submitted:" if dry_run else "submitted"
        folder = folder_of(executor.folder)
        lines = []
        for a in arrays:
            kind, jobs = ("job array", f"{a['size']} jobs") if a["size"] > 1 else ("job", "1 job")
            first = a["first_job_num"]
            if first is None:  # jobs that pick their points themselves: a study's workers
                nums = "study workers"
            else:
                last = first + a["size"] - 1
                nums = f"job_num {first}-{last}" if last > first else f"job_num {first}"
            lines.append(f"[{be.name}] {what} {kind} {a['job_id']} ({jobs}, {nums}); logs in {folder}")
        if aggregate_id:
            lines.append(f"[{be.name}] aggregation job {aggregate_id} runs when they have ended; "
                         f"log {self.config.hydra.sweep.dir}/aggregate_{aggregate_id}.out")
        if dry_run:
            lines.append(f"[{be.name}] scripts: {folder}/*_submission.sh")
        elif not wait:
            lines += [f"  pipeline watch   {sweep}", f"  pipeline status  {sweep}", f"  pipeline logs    {sweep} 0",
                      f"  pipeline results {sweep}"]
        print("\n".join(lines), file=sys.stdout, flush=True)
