"""``pipeline rerun SWEEP --failed`` of a study: its failed workers, each in its own slot.

A study's trials keep their config, so a rerun takes no task overrides and no ``--job``: it brings back
every failed worker (one whose scheduler job ended without the study being over) from the worker's own
submitit pickle (a :class:`pipeline.search.job.WorkerJob`), through the first launch's path
(:func:`pipeline.launch.rerun.backend_of`, then :func:`pipeline.launch.launcher.submit_calls`), in one
batch. A worker that held a trial first sets aside that trial's stopped result, so the new worker resumes
it from ``checkpoints/last`` (or starts it again without one); the study never counts it twice. A finished
study, or one whose workers gave up after ``max_failed`` failed trials, has nothing to rerun.
"""

from __future__ import annotations

import contextlib
import gc
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from submitit.core.utils import DelayedSubmission

from pipeline import rundir
from pipeline.errors import first_line
from pipeline.launch import Answer, Runner, run_command
from pipeline.launch import rerun as RR
from pipeline.launch import sweep_status as S
from pipeline.launch.backend import Backend
from pipeline.launch.launcher import submit_calls, write_manifest
from pipeline.launch.payload import plugins_importable
from pipeline.results import results as R
from pipeline.search.job import WorkerJob
from pipeline.search.status import is_study as study_manifest
from pipeline.search.status import panel
from pipeline.search.submit import worker_entry
from pipeline.search.worker import set_aside_result


def is_study(path: Path) -> bool:
    """Whether ``path`` is a study's sweep folder (its sweep.json has a ``study``)."""
    try:
        return study_manifest(rundir.read_manifest(path))
    except (ValueError, OSError):
        return False


def rerun_workers(path: Path, overrides: Sequence[str] = (), jobs: Sequence[int] | None = None,
                  dry_run: bool = False, out: Callable[[str], None] = print) -> int:
    """``pipeline rerun`` of a study: the exit code (RerunError for one-line failures)."""
    if dry_run:
        return execute_workers(plan_workers(path, overrides, jobs), dry_run=True, out=out)
    with RR.locked(path):
        return execute_workers(plan_workers(path, overrides, jobs), out=out)


@dataclass
class WorkerTarget:
    """One failed worker of a study, resubmitted in its slot."""

    status: Any  # pipeline.search.status.WorkerStatus
    call: Any  # its WorkerJob, from its own pickle
    job: Any = None  # the new submitit job

    def how(self, sweep_path: Path) -> str:
        trial = self.status.trial
        if trial is None:
            return "it asks the study for trials"
        resumes = rundir.checkpoint_dir(sweep_path / str(trial)).is_dir()
        return f"trial {trial} {'resumes from checkpoints/last' if resumes else 'starts again (no checkpoint)'}"


@dataclass
class WorkerPlan:
    sweep: R.Sweep
    study: Any  # pipeline.search.status.StudyStatus
    targets: list[WorkerTarget]
    launcher: Any
    launcher_overrides: dict[str, Any]
    answer: Answer


def plan_workers(path: Path, overrides: Sequence[str], jobs: Sequence[int] | None = None,
                 runner: Runner = run_command) -> WorkerPlan:
    """The failed workers of a study, each with its own pickled call (same slot): one scheduler query, no side
    effects. A finished study, or one whose workers gave up after ``max_failed`` failed trials, has none."""
    task_extra, launcher_extra = RR.parse_overrides(overrides)
    if task_extra or jobs:
        raise RR.RerunError(f"{path} is a study: its trials keep their config and its workers are rerun together "
                         "(pipeline rerun SWEEP --failed [hydra.launcher.KEY=VALUE ...])")
    sweep, be, folder = RR.open_sweep(path, runner)
    answer = S.query_sweep(sweep, runner)
    study = S.study_of(sweep, answer)
    if study is None:
        raise RR.RerunError(f"{path}: its study cannot be read ({rundir.STUDY_JSON}, {rundir.STUDY_JOURNAL})")
    _check_rerunnable(path, study, answer)
    targets = [WorkerTarget(w, _worker_call(folder, be, w, sweep.path)) for w in study.failed_workers()]
    launcher = RR.launcher_of(targets[0].call, RR.launcher_settings(sweep.meta, launcher_extra))
    return WorkerPlan(sweep, study, targets, launcher, launcher_extra, answer)


def _check_rerunnable(path: Path, study: Any, answer: Answer) -> None:
    """RerunError (exit 1) when no worker is to be brought back, saying why."""
    counts = study.summary["counts"]
    if study.over:
        raise RR.RerunError(f"nothing to rerun in {path}: the study has its {study.settings.trials} trials finished "
                         f"({counts['COMPLETE']} completed, {counts['PRUNED']} pruned)", 1)
    if study.gave_up:
        raise RR.RerunError(f"nothing to rerun in {path}: the workers stopped after {counts['FAIL']} failed trials "
                         f"(max_failed={study.settings.max_failed}); their metrics.json say why", 1)
    if not study.failed_workers():
        said = ", ".join(f"worker {w.slot} {w.state}" for w in study.workers) or "no workers recorded"
        why = "; the scheduler did not answer" if not answer.answered else ""
        raise RR.RerunError(f"nothing to rerun in {path}: {said}{why} (failed workers are rerun; pending and "
                         "running ones are not)", 1)


def _worker_call(folder: Path, be: Backend, worker: Any, sweep_path: Path) -> Any:
    """The worker's own pickled call (its slot), pointed at the sweep folder where it is now."""

    pickle = RR.find_pickle(folder, be, str(worker.job_id)) if worker.job_id else None
    if pickle is None:
        raise RR.RerunError(f"worker {worker.slot}: no {worker.job_id} submission pickle under {folder} (deleted?)")
    plugins_importable()
    try:
        call = DelayedSubmission.load(pickle).function
    except Exception as e:  # noqa: BLE001 - any unpickling problem is one line
        raise RR.RerunError(f"cannot load {pickle}: {type(e).__name__}: {first_line(e)}") from None
    if not isinstance(call, WorkerJob) or call.slot != worker.slot:
        raise RR.RerunError(f"{pickle}: not the call of worker {worker.slot} of this study ({call!r})")
    call.sweep_dir = str(sweep_path.absolute())
    if not Path(call.payload).is_file() and (folder / Path(call.payload).name).is_file():
        call.payload = str(folder / Path(call.payload).name)  # the sweep was moved
    return call


def _worker_line(p: WorkerPlan, t: WorkerTarget, dry_run: bool) -> str:
    w = t.status
    why = f"failed: {w.note}" if w.note else "failed"
    if dry_run:
        return f"would rerun: worker {w.slot} ({why}); {t.how(p.sweep.path)}"
    return f"rerun: worker {w.slot} ({why}) -> {t.job.job_id}; {t.how(p.sweep.path)}"


def _worker_record(p: WorkerPlan) -> dict[str, Any]:
    return {
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "workers": [t.status.slot for t in p.targets],
        "previous_job_ids": {str(t.status.slot): t.status.job_id for t in p.targets},
        "job_ids": {str(t.status.slot): str(t.job.job_id) for t in p.targets if t.job is not None},
        "overrides": [f"{RR.LAUNCHER_PREFIX}{k}={v}" for k, v in p.launcher_overrides.items()],
    }


def execute_workers(p: WorkerPlan, dry_run: bool = False, out: Callable[[str], None] = print) -> int:
    """Resubmit the failed workers in one batch through the launch path (their held trials' stopped results
    set aside first), record them in sweep.json, and a new aggregation job; the exit code."""

    be, executor = RR.backend_of(p.launcher, len(p.targets))
    if dry_run:
        for t in p.targets:
            out(_worker_line(p, t, True))
        return 0
    for t in p.targets:
        if t.status.trial is not None:
            set_aside_result(p.sweep.path / str(t.status.trial))
    manifest = rundir.read_manifest(p.sweep.path) or {}
    entries = {w["slot"]: w for w in manifest["study"]["workers"]}

    def started(i: int, job: Any) -> None:
        t = p.targets[i]
        t.job = job
        old = entries[t.status.slot]
        old.update(worker_entry(t.status.slot, job, be, [*old.get("previous_job_ids", []), str(old["job_id"])]))
        if be.blocking:
            write_manifest(p.sweep.path, manifest)
        out(_worker_line(p, t, False))

    try:
        submit_calls(be, executor, p.sweep.path, [t.call for t in p.targets], [[] for _ in p.targets], manifest,
                     rerun=True, on_start=started)
    except Exception as e:  # noqa: BLE001 - the scheduler's refusal, in one line
        raise RR.RerunError(f"submission failed: {first_line(e) or type(e).__name__}", 1) from None
    manifest.setdefault("reruns", []).append(_worker_record(p))
    if not be.waits():
        alive = [w.job_id for w in p.study.workers if w.state in (R.PENDING, R.RUNNING, R.REQUEUED) and w.job_id]
        ids = [be.base_id(str(t.job.job_id)) for t in p.targets] + [be.base_id(str(j)) for j in alive]
        rundir.set_aggregate_job(manifest, be.submit_aggregate(executor, p.sweep.path.absolute(),
                                                               list(dict.fromkeys(ids))))
    write_manifest(p.sweep.path, manifest)
    if not be.waits():
        out(f"sweep.json updated; follow with: pipeline status {shlex.quote(str(p.sweep.path))}")
        return 0
    return _workers_ended(p, out)


def _workers_ended(p: WorkerPlan, out: Callable[[str], None]) -> int:
    """After a rerun that waited: the study's lines; exit 1 unless the study has its trials finished."""

    for t in p.targets:
        with contextlib.suppress(Exception):  # a failure shows in the study and the run directories
            t.job.results()
        t.job = None
    gc.collect()  # submitit's LocalJob sits in a reference cycle: run its __del__ now, not at exit
    sweep = R.load_sweep(p.sweep.path)
    study = S.study_of(sweep, S.query_sweep(sweep))
    for line in panel(study, p.sweep.path) if study is not None else []:
        out(line)
    RR.aggregate_results(p.sweep.path, out)
    return 0 if study is not None and study.over else 1
