"""``pipeline rerun SWEEP --failed [--job N] [--dry-run] [OVERRIDES...]``: resubmit the failed jobs of a sweep.

Which jobs: those whose state, as ``pipeline status`` sees it (run directory first, then one scheduler
query for the whole sweep), is ``failed``, ``corrupt`` or ``missing``. A completed job is never rerun, nor
a pending or running one. A ``missing`` job (no run directory) is rerun only when the scheduler answered
and no longer knows it: while the scheduler does not answer, it may still be pending.

How: every launcher of this project leaves one submitit pickle per job (``<job id>_submitted.pkl``: a
:class:`pipeline.launch.payload.SweepJob` with the job's Hydra overrides and number, or a pack of them) and
one payload pickle per sweep (the launcher). ``rerun`` loads those of the chosen jobs and submits them again
through the first launch's own path (:meth:`pipeline.launch.launcher.SweepLauncher.backend`, then
:func:`pipeline.launch.launcher.submit_calls`): the same backend, settings (scheduler, queue, resources,
``max_num_timeout``, ...; ``hydra.launcher.*`` overrides on the command line change them) and job
environment (``PIPELINE_GPUS``, the core share, ``HF_HUB_OFFLINE``, ``TMPDIR``), in ONE batch: one ``bsub``
array, one Slurm array, or local processes. Each job is pinned to its own run directory
(``hydra.sweep.dir``/``hydra.sweep.subdir`` overrides), so it lands where it was, even if the sweep was
moved or ``PIPELINE_OUTPUT_ROOT`` changed.

What happens to the old attempt: its ``metrics.json`` (failed or corrupt) moves to
``<run dir>/.rerun/<n>/``, so the job reads as pending/running again and a second ``rerun`` cannot submit
it twice. With the same config the job resumes from ``checkpoints/last`` (``pipeline.train.train.fit``). When
the rerun changes the job's own config (e.g. ``trainer.lr=3e-3`` after a NaN loss), the checkpoint
belongs to another config (its optimizer and schedule would bring the old learning rate back), so the run
starts over: ``checkpoints/``, ``metrics.jsonl``, ``run_info.json`` and ``test_predictions.csv`` move to
``.rerun/<n>/`` as well (moved, never deleted).

``sweep.json`` gets the new job ids (and logs and overrides) of those jobs, the new array under
``arrays`` and one record under ``reruns``; the other jobs are left as they are. The command prints one
line per resubmitted job. Where the sweep's launcher waited for its jobs (local processes always; Slurm
and LSF with ``hydra.launcher.wait=true``) the rerun waits too and exits 1 if a job failed again; a
launcher that returns at once also submits a new aggregation job where its backend has one (LSF).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import rundir
from pipeline.errors import PipelineError, first_line
from pipeline.launch import Answer, Runner, run_command
from pipeline.launch import sweep_status as S
from pipeline.launch.backend import Backend, backend
from pipeline.results import results as R

RERUN_STATES = (R.FAILED, R.CORRUPT, R.MISSING)
#: what a fresh start moves out of the way (the resume state and the outputs of the old config)
FRESH_FILES = (rundir.CHECKPOINTS_DIR, rundir.METRICS_JSONL, rundir.PROGRESS_JSON, rundir.RUN_INFO_JSON,
               rundir.TEST_PREDICTIONS_CSV, rundir.WANDB_ID_TXT)
LAUNCHER_PREFIX = "hydra.launcher."


class RerunError(Exception):
    """One line for the user; ``code`` is the exit code (2: bad input, 1: nothing to do or it failed)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Target:
    """One job to resubmit."""

    status: S.JobStatus
    run_dir: Path  # where it lands (pinned)
    pickle: Path  # the job's submitit pickle
    point: Any  # the SweepJob of this job's point (taken out of its pack, if it ran in one)
    overrides: list[str]  # its task overrides after the rerun's ones
    fresh: bool  # the config changed: start over instead of resuming
    archive: Path | None = None  # where the old attempt's files went
    job: Any = None  # the new submitit job
    old_id: str | None = None

    @property
    def num(self) -> int:
        return int(self.status.run.job_num)  # type: ignore[arg-type]

    @property
    def resumes(self) -> bool:
        return not self.fresh and rundir.checkpoint_dir(self.run_dir).is_dir()

    def how(self) -> str:
        if self.fresh:
            return "starts over (its config changed)"
        return "resumes from checkpoints/last" if self.resumes else "starts from the beginning (no checkpoint)"


@dataclass
class Plan:
    sweep: R.Sweep
    backend: Backend  # the sweep's scheduler (for finding its files; submission: launcher.backend())
    targets: list[Target]
    launcher: Any
    task_overrides: list[str]  # the rerun's overrides of the jobs' config
    launcher_overrides: dict[str, Any]  # hydra.launcher.<key> -> value
    answer: Answer
    statuses: list[S.JobStatus] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ overrides


def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def parse_overrides(overrides: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Split the command line's overrides into the jobs' own and the launcher's (``hydra.launcher.*``)."""
    from hydra.errors import HydraException

    parser = _parser()
    task: list[str] = []
    launcher: dict[str, Any] = {}
    for text in overrides:
        try:
            o = parser.parse_override(text)
        except HydraException as e:
            raise RerunError(f"override {text!r} does not parse: {first_line(e)}") from None
        if o.is_sweep_override():
            raise RerunError(f"override {text!r} is a sweep (several values): a rerun takes one value per key")
        key = o.key_or_group
        if key.startswith(LAUNCHER_PREFIX):
            if o.is_delete() or o.is_add():
                raise RerunError(f"override {text!r}: launcher settings can only be set (key=value)")
            launcher[key[len(LAUNCHER_PREFIX):]] = o.value()
        elif key == "hydra" or key.startswith("hydra."):
            raise RerunError(f"override {text!r}: of Hydra's own settings only hydra.launcher.* can change "
                             "on a rerun (each job keeps its run directory)")
        else:
            task.append(o.input_line)
    return task, launcher


def launcher_settings(meta: Any, typed: dict[str, Any]) -> dict[str, Any]:
    """The ``hydra.launcher.*`` settings a rerun submits with: those given to the sweep's earlier reruns (in
    order, as ``sweep.json`` ``reruns`` recorded them), then ``typed`` on this command line. A job rerun with
    ``hydra.launcher.timeout_min=600`` keeps its 600 minutes when it is rerun again without saying so."""
    settings: dict[str, Any] = {}
    for record in (meta.get("reruns") if isinstance(meta, dict) else None) or []:
        said = [o for o in record.get("overrides") or [] if str(o).startswith(LAUNCHER_PREFIX)]
        with contextlib.suppress(RerunError):  # a record this version cannot parse: its settings are not kept
            settings.update(parse_overrides(said)[1])
    return {**settings, **typed}


def override_key(text: str) -> str:
    try:
        return str(_parser().parse_override(text).key_or_group)
    except Exception:  # noqa: BLE001 - an override we cannot parse is matched by its text
        return text.split("=", 1)[0].lstrip("+~")


def merge_overrides(old: Sequence[str], extra: Sequence[str]) -> list[str]:
    """The job's overrides with the rerun's: an extra override replaces the job's one for the same key."""
    keys = {override_key(e) for e in extra}
    return [o for o in old if override_key(o) not in keys] + list(extra)


def hydra_quote(value: str) -> str:
    """``value`` as a quoted Hydra override value that parses back to exactly ``value``."""
    if "${" in value:
        raise RerunError(f"path {value!r} contains '${{': Hydra would read it as an interpolation")
    out = re.sub(r"(\\+)(?='|\Z)", lambda m: m.group(1) * 2, value).replace("'", "\\'")
    quoted = f"'{out}'"
    if _parser().parse_override(f"k={quoted}").value() != value:
        raise RerunError(f"path {value!r} cannot be passed to Hydra as an override value")
    return quoted


def _pins(sweep_dir: Path, run_dir: Path) -> list[str]:
    try:
        sub = str(run_dir.relative_to(sweep_dir))
    except ValueError:
        raise RerunError(f"run directory {run_dir} is not inside the sweep {sweep_dir}") from None
    return [f"hydra.sweep.dir={hydra_quote(str(sweep_dir))}", f"hydra.sweep.subdir={hydra_quote(sub)}"]


def _task_overrides(overrides: Sequence[str]) -> list[str]:
    return [o for o in overrides if not override_key(o).startswith("hydra.sweep.")]


# ------------------------------------------------------------------------------------------ pickles


def find_pickle(folder: Path, be: Backend, job_id: str) -> Path | None:
    """``<job id>_submitted.pkl`` in the sweep's submitit folder (flat for LSF, ``%j/`` for the others)."""
    stem = be.file_stem(job_id)
    name = f"{stem}_submitted.pkl"
    for candidate in (folder / name, folder / stem / name):
        if candidate.is_file():
            return candidate
    found = sorted(folder.glob(f"**/{name}")) if folder.is_dir() else []
    return found[0] if found else None


def _load_point(path: Path, job_num: int | None, folder: Path) -> Any:
    """The SweepJob that ran this run (taken out of its pack, if it ran in one), its payload found."""
    from submitit.core.utils import DelayedSubmission

    from pipeline.launch.packing import unpack_call
    from pipeline.launch.payload import SweepJob, plugins_importable

    plugins_importable()
    try:
        call = DelayedSubmission.load(path)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is one line
        raise RerunError(f"cannot load {path}: {type(e).__name__}: {first_line(e)}") from None
    try:
        point = unpack_call(call, int(job_num)).function  # type: ignore[arg-type]
    except (ValueError, TypeError) as e:
        raise RerunError(f"cannot take run {job_num} out of its packed job: {e}") from None
    if not isinstance(point, SweepJob):
        raise RerunError(f"{path}: the pickled job is a {type(point).__name__}, not a sweep job of this project's "
                         "launchers (a sweep launched by an older version?): rerun it by hand with python run.py "
                         "hydra.run.dir=<its run dir> <its overrides>")
    if not Path(point.payload).is_file() and (folder / Path(point.payload).name).is_file():
        point.payload = str(folder / Path(point.payload).name)  # the sweep was moved
    return point


def launcher_of(point: Any, launcher_extra: dict[str, Any]) -> Any:
    """The sweep's launcher (from the payload a job's call names), with the rerun's ``hydra.launcher.*``."""
    from pipeline.launch.payload import load

    try:
        launcher = load(point.payload)[0]
    except OSError as e:
        raise RerunError(f"cannot read the sweep's launcher {point.payload}: {e.strerror or e}") from None
    for key, value in launcher_extra.items():
        if key not in launcher.params:
            raise RerunError(f"hydra.launcher.{key}: not a setting of this sweep's launcher; valid: "
                             f"{', '.join(sorted(launcher.params))}")
        launcher.params[key] = value
    return launcher


# ------------------------------------------------------------------------------------------ the plan


def plan(path: Path, overrides: Sequence[str], jobs: Sequence[int] | None = None,
         runner: Runner = run_command) -> Plan:
    """Decide what to resubmit, without side effects: one scheduler query, then the jobs' pickles."""
    task_extra, launcher_extra = parse_overrides(overrides)
    sweep, be, folder = open_sweep(path, runner)
    answer = S.query_sweep(sweep, runner)
    statuses = S.sweep_status(sweep, answer)
    chosen = _choose(path, statuses, answer, jobs)
    targets: list[Target] = []
    for st in chosen:
        run = st.run
        if not run.job_id:
            raise RerunError(f"job {run.label} has no job id in sweep.json: it was never submitted")
        pickle = find_pickle(folder, be, run.job_id)
        if pickle is None:
            raise RerunError(f"job {run.label}: no {run.job_id} submission pickle under {folder} (deleted?); "
                             "rerun it by hand with python run.py hydra.run.dir=<its run dir> <its overrides>")
        point = _load_point(pickle, run.job_num, folder)  # a packed job: only this run
        run_dir = run.run_dir or _listed_run_dir(sweep.meta or {}, run, sweep.path) or sweep.path / run.name
        old_task = _task_overrides(point.overrides)
        new_task = merge_overrides(old_task, task_extra)
        fresh = sorted(new_task) != sorted(old_task) and run.run_dir is not None
        targets.append(Target(st, run_dir, pickle, point, new_task, fresh, old_id=run.job_id))
    launcher = launcher_of(targets[0].point, launcher_settings(sweep.meta, launcher_extra))
    return Plan(sweep, be, targets, launcher, task_extra, launcher_extra, answer, statuses)


def open_sweep(path: Path, runner: Runner) -> tuple[R.Sweep, Backend, Path]:
    """The sweep, its scheduler's backend and its submitit folder (one line for anything else)."""
    try:
        sweep = R.load_sweep(path)
    except R.NotASweepError as e:
        raise RerunError(str(e)) from None
    meta = sweep.meta if isinstance(sweep.meta, dict) else None
    if meta is None or sweep.single_run:
        raise RerunError(f"{path}: not a sweep submitted by this project's launchers (no sweep.json); rerun a "
                         "single run with: python run.py hydra.run.dir=<run dir>")
    try:
        be = backend(str(meta.get("scheduler")), runner=runner)
    except ValueError as e:
        raise RerunError(f"{path}/{rundir.SWEEP_JSON}: {e}") from None
    if meta.get("dry_run"):
        raise RerunError(f"{path} is a dry run (nothing was submitted): submit the sweep itself")
    folder = Path(str(meta.get("submitit_folder") or sweep.path / rundir.SUBMITIT_DIR))
    if not folder.is_dir() and (sweep.path / rundir.SUBMITIT_DIR).is_dir():
        folder = sweep.path / rundir.SUBMITIT_DIR  # the sweep was moved
    return sweep, be, folder


def _choose(path: Path, statuses: list[S.JobStatus], answer: Answer, jobs: Sequence[int] | None) -> list[S.JobStatus]:
    """The failed, corrupt and missing jobs (of ``jobs``, when given); a missing one only when the scheduler
    answered (it may still be pending otherwise)."""
    by_num = {st.run.job_num: st for st in statuses if st.run.job_num is not None}
    if jobs:
        unknown = sorted(set(jobs) - set(by_num))
        if unknown:
            raise RerunError(f"no job {', '.join(map(str, unknown))} in {path} (jobs: "
                             f"{', '.join(str(n) for n in sorted(by_num))})")
        for num in jobs:
            if by_num[num].state not in RERUN_STATES:
                raise RerunError(f"job {num} is {by_num[num].state}: only failed, corrupt and missing jobs are rerun",
                                 1)
    chosen = [st for st in statuses if st.state in RERUN_STATES and (not jobs or st.run.job_num in jobs)]
    unsure = [st for st in chosen if st.state == R.MISSING and not answer.answered]
    chosen = [st for st in chosen if st not in unsure]
    if not chosen:
        counts: dict[str, int] = {}
        for st in statuses:
            counts[st.state] = counts.get(st.state, 0) + 1
        said = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no jobs"
        why = f"; {len(unsure)} missing but the scheduler did not answer" if unsure else ""
        raise RerunError(f"nothing to rerun in {path}: {said}{why} (failed, corrupt and missing jobs are "
                         "rerun; pending, running and completed ones are not)", 1)
    return chosen


def _listed_run_dir(meta: dict[str, Any], run: R.Run, sweep_dir: Path) -> Path | None:
    """sweep.json's run_dir of a job that has none yet, if it lies in the sweep (not if the sweep moved)."""
    for job in meta.get("jobs") or []:
        if isinstance(job, dict) and job.get("job_num") == run.job_num and job.get("run_dir"):
            listed = Path(job["run_dir"])
            return listed if listed.is_relative_to(sweep_dir.absolute()) else None
    return None


# ------------------------------------------------------------------------------------------ executing


def _archive(target: Target) -> None:
    """Move the old attempt's result (and, for a fresh start, its state) to ``<run dir>/.rerun/<n>/``."""
    names = [rundir.METRICS_JSON, *(FRESH_FILES if target.fresh else ())]
    present = [n for n in names if (target.run_dir / n).exists()]
    if not present:
        return
    dest = rundir.new_archive(target.run_dir)
    for name in present:
        os.replace(target.run_dir / name, dest / name)
    target.archive = dest


def _restore(target: Target) -> None:
    if target.archive is None:
        return
    for p in target.archive.iterdir():
        os.replace(p, target.run_dir / p.name)
    target.archive.rmdir()
    target.archive = None


def backend_of(launcher: Any, n: int) -> tuple[Backend, Any]:
    """The first launch's backend and executor for n jobs (every check before anything moves)."""
    try:
        be = launcher.backend(n)
        executor = be.make_executor()
        be.check_can_submit(executor)
        return be, executor
    except PipelineError as e:
        raise RerunError(first_line(e) or type(e).__name__) from None


def _calls(p: Plan) -> list[Any]:
    """Each job's SweepJob with its new overrides, pinned to its run directory."""
    from pipeline.launch.payload import SweepJob

    return [SweepJob(t.point.payload, t.overrides + _pins(p.sweep.path.absolute(), t.run_dir.absolute()),
                     t.point.job_dir_key, t.point.job_num, t.point.job_id) for t in p.targets]


def _manifest(p: Plan) -> dict[str, Any]:
    """sweep.json with the rerun jobs' new overrides and run directories (job ids follow as they start)."""
    data = rundir.read_manifest(p.sweep.path) or {}
    by_num = {t.num: t for t in p.targets}
    for job in data.setdefault("jobs", []):
        t = by_num.get(job.get("job_num"))
        if t is not None:
            job.update(overrides=list(t.overrides), run_dir=str(t.run_dir))
    return data


def _record(p: Plan) -> dict[str, Any]:
    return {
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "jobs": [t.num for t in p.targets],
        "previous_job_ids": {str(t.num): t.old_id for t in p.targets},
        "job_ids": {str(t.num): str(t.job.job_id) for t in p.targets if t.job is not None},
        "overrides": [*p.task_overrides, *(f"{LAUNCHER_PREFIX}{k}={v}" for k, v in p.launcher_overrides.items())],
        "fresh": [t.num for t in p.targets if t.fresh],
        "archived": {str(t.num): str(t.archive) for t in p.targets if t.archive is not None},
    }


def _aggregate_job(p: Plan, be: Backend, executor: Any) -> str | None:
    """A launch that returns at once: a new aggregation job after the rerun jobs and those still pending or
    running (where the backend has aggregation jobs)."""
    if be.waits():
        return None
    ids = [be.base_id(str(t.job.job_id)) for t in p.targets]
    ids += [be.base_id(str(st.run.job_id)) for st in p.statuses
            if st.state in (R.PENDING, R.RUNNING, R.REQUEUED) and st.run.job_id]
    return be.submit_aggregate(executor, p.sweep.path.absolute(), list(dict.fromkeys(ids)))


def _line(p: Plan, t: Target, dry_run: bool) -> str:
    st = t.status
    why = st.state + (f": {st.note}" if st.note else "")
    extra = f" with {' '.join(p.task_overrides)}" if p.task_overrides and not dry_run else ""
    if dry_run:
        changes = [o for o in t.overrides if o in p.task_overrides]
        extra = f" with {' '.join(changes)}" if changes else ""
        return f"would rerun: job {t.num} ({why}){extra} in {t.run_dir}; it {t.how()}"
    where = f"; previous files in {t.archive}" if t.archive is not None else ""
    return f"rerun: job {t.num} ({why}) -> {t.job.job_id}{extra} in {t.run_dir}; it {t.how()}{where}"


def _final_state(t: Target) -> tuple[str, str]:
    try:
        final = json.loads(rundir.metrics_json(t.run_dir).read_text())
    except (OSError, ValueError):
        return R.FAILED, "no metrics.json"
    if final.get("status") == R.COMPLETED:
        val = final.get("val") or {}
        metric = final.get("monitor") or "macro_f1"
        return R.COMPLETED, f"val_{metric}={val.get(metric, float('nan')):.4f}"
    return R.FAILED, first_line(final.get("error")) or "failed"


def execute(p: Plan, dry_run: bool = False, out: Callable[[str], None] = print) -> int:
    """Archive, submit in one batch through the launch path, update sweep.json, print one line per job;
    the exit code."""
    from pipeline.launch.launcher import submit_calls, write_manifest

    be, executor = backend_of(p.launcher, len(p.targets))
    if dry_run:
        for t in p.targets:
            out(_line(p, t, True))
        return 0
    for t in p.targets:
        _archive(t)

    def started(i: int, job: Any) -> None:
        p.targets[i].job = job
        out(_line(p, p.targets[i], False))

    manifest = _manifest(p)
    try:
        submit_calls(be, executor, p.sweep.path, _calls(p), [[t.num] for t in p.targets], manifest, rerun=True,
                     on_start=started)
    except BaseException as e:
        for t in p.targets:
            if t.job is None:
                _restore(t)
        if isinstance(e, Exception):
            raise RerunError(f"submission failed: {first_line(e) or type(e).__name__}", 1) from None
        raise
    manifest.setdefault("reruns", []).append(_record(p))
    agg = _aggregate_job(p, be, executor)
    if agg is not None:
        rundir.set_aggregate_job(manifest, agg)
    write_manifest(p.sweep.path, manifest)
    if not be.waits():
        out(f"sweep.json updated; follow with: pipeline status {shlex.quote(str(p.sweep.path))}")
        return 0
    for t in p.targets:
        with contextlib.suppress(Exception):  # a failure shows in the run directory
            t.job.results()
    failed = 0
    for t in p.targets:
        state, said = _final_state(t)
        failed += state != R.COMPLETED
        out(f"job {t.num}: {state} ({said})")
    aggregate_results(p.sweep.path, out)
    return 1 if failed else 0


def aggregate_results(sweep_dir: Path, out: Callable[[str], None]) -> None:
    """After a rerun that waited: refresh ``SWEEP/results`` like a finished sweep does."""
    try:
        R.aggregate(R.load_sweep(sweep_dir))
        out(f"results: {sweep_dir / rundir.RESULTS_DIR}   compare: pipeline results {shlex.quote(str(sweep_dir))}")
    except Exception as e:  # noqa: BLE001 - the rerun itself is done
        print(f"warning: could not aggregate {sweep_dir}: {first_line(e)}", file=sys.stderr)


@contextlib.contextmanager
def locked(sweep_dir: Path) -> Iterator[None]:
    """One rerun of a sweep at a time (two would submit the same jobs twice)."""
    try:
        f = open(sweep_dir / ".rerun.lock", "a")  # noqa: SIM115 - held for the block
    except OSError as e:
        raise RerunError(f"cannot write to {sweep_dir} ({e.strerror or e}): rerun needs to update sweep.json") \
            from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RerunError(f"another pipeline rerun of {sweep_dir} is under way", 1) from None
        yield


def rerun(path: Path, overrides: Sequence[str] = (), jobs: Sequence[int] | None = None, dry_run: bool = False,
          out: Callable[[str], None] = print) -> int:
    """``pipeline rerun`` of a grid sweep: the exit code (RerunError for one-line failures). A study's
    workers are brought back by :func:`pipeline.search.rerun.rerun_workers` instead."""
    path = Path(path)
    if not path.is_dir():
        raise RerunError(f"{path}: no such directory")
    if dry_run:
        return execute(plan(path, overrides, jobs), dry_run=True, out=out)
    with locked(path):
        return execute(plan(path, overrides, jobs), out=out)
