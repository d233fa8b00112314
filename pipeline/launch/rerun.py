"""``pipeline rerun SWEEP --failed [--job N] [--dry-run] [OVERRIDES...]``: resubmit the failed jobs of a sweep.

Which jobs: those whose state, as ``pipeline status`` sees it (run directory first, then one scheduler
query for the whole sweep), is ``failed``, ``corrupt`` or ``missing``. A completed job is never rerun, nor
a pending or running one. A ``missing`` job (no run directory) is rerun only when the scheduler answered
and no longer knows it: while the scheduler does not answer, it may still be pending.

How: every launcher of this project leaves one submitit pickle per job (``<job id>_submitted.pkl``: the
call that runs that job, with its Hydra overrides and job number). ``rerun`` loads those of the chosen
jobs, rebuilds the sweep's own executor from the pickled launcher (same scheduler, queue, resources,
``max_num_timeout``, ...; ``hydra.launcher.*`` overrides on the command line change them) and submits
them again in ONE batch: one ``bsub`` array, one Slurm array, or local processes. Each job is pinned to
its own run directory (``hydra.sweep.dir``/``hydra.sweep.subdir`` overrides), so it lands where it was,
even if the sweep was moved or ``PIPELINE_OUTPUT_ROOT`` changed.

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
and LSF with ``hydra.launcher.wait=true``) the rerun waits too and exits 1 if a job failed again; LSF's
non-blocking launcher also submits a new aggregation job.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import rundir
from pipeline.launch import Answer, Runner, base_id, run_command
from pipeline.launch import sweep_status as S
from pipeline.results import results as R

RERUN_STATES = (R.FAILED, R.CORRUPT, R.MISSING)
SCHEDULERS = ("lsf", "slurm", "local")
ARCHIVE = rundir.RERUN_ARCHIVE
#: what a fresh start moves out of the way (the resume state and the outputs of the old config)
FRESH_FILES = (rundir.CHECKPOINTS_DIR, rundir.METRICS_JSONL, "progress.json", rundir.RUN_INFO_JSON,
               rundir.TEST_PREDICTIONS_CSV, rundir.WANDB_ID_TXT)
LAUNCHER_PREFIX = "hydra.launcher."
REPO_ROOT = Path(__file__).resolve().parents[2]


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
    call: Any  # the DelayedSubmission loaded from it
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
    scheduler: str
    targets: list[Target]
    launcher: Any
    task_overrides: list[str]  # the rerun's overrides of the jobs' config
    launcher_overrides: dict[str, Any]  # hydra.launcher.<key> -> value
    answer: Answer
    statuses: list[S.JobStatus] = field(default_factory=list)

    @property
    def wait(self) -> bool:
        return self.scheduler == "local" or bool(self.launcher.params.get("wait", self.scheduler == "slurm"))


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
            raise RerunError(f"override {text!r} does not parse: {R.first_line(e)}") from None
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


def _plugins_importable() -> None:
    """The pickles name ``hydra_plugins.pipeline_launchers``, which lives in the repository, not in
    site-packages (a namespace package setuptools does not install): make it importable."""
    if (REPO_ROOT / "hydra_plugins" / "pipeline_launchers").is_dir() and str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def find_pickle(folder: Path, scheduler: str, job_id: str) -> Path | None:
    """``<job id>_submitted.pkl`` in the sweep's submitit folder (flat for LSF, ``%j/`` for the others)."""
    if scheduler == "lsf":
        from pipeline.launch.lsf import file_stem

        stem = file_stem(job_id)
    else:
        stem = job_id
    name = f"{stem}_submitted.pkl"
    for candidate in (folder / name, folder / stem / name):
        if candidate.is_file():
            return candidate
    found = sorted(folder.glob(f"**/{name}")) if folder.is_dir() else []
    return found[0] if found else None


def _load_call(path: Path) -> Any:
    from submitit.core.utils import DelayedSubmission

    _plugins_importable()
    try:
        return DelayedSubmission.load(path)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is one line
        raise RerunError(f"cannot load {path}: {type(e).__name__}: {R.first_line(e)}") from None


def _unpacked(call: Any, job_num: int | None) -> Any:
    """The call of one run of a packed job (``hydra.launcher.runs_per_job``); any other call as it is."""
    from pipeline.launch.packing import unpack_call

    try:
        return unpack_call(call, int(job_num))  # type: ignore[arg-type]
    except (ValueError, TypeError) as e:
        raise RerunError(f"cannot take run {job_num} out of its packed job: {e}") from None


def _job_parts(call: Any, scheduler: str, folder: Path) -> tuple[Any, list[str]]:
    """(launcher, the job's overrides) of a pickled job call."""
    if scheduler == "lsf":
        from hydra_plugins.pipeline_launchers import SweepJob, load_payload

        fn = call.function
        if not isinstance(fn, SweepJob):
            raise RerunError(f"the pickled job is a {type(fn).__name__}, not a sweep job of the lsf launcher")
        payload = Path(fn.payload)
        if not payload.is_file() and (folder / payload.name).is_file():
            fn.payload = str(folder / payload.name)  # the sweep was moved
        try:
            launcher, _ = load_payload(fn.payload)
        except OSError as e:
            raise RerunError(f"cannot read the sweep's launcher {fn.payload}: {e.strerror or e}") from None
        return launcher, list(fn.overrides)
    launcher = call.function
    if not hasattr(launcher, "params") or not call.args:
        raise RerunError(f"the pickled job is a {type(launcher).__name__}, not a call of a Hydra launcher")
    return launcher, list(call.args[0])


# ------------------------------------------------------------------------------------------ the plan


def plan(path: Path, overrides: Sequence[str], jobs: Sequence[int] | None = None,
         runner: Runner = run_command) -> Plan:
    """Decide what to resubmit, without side effects: one scheduler query, then the jobs' pickles."""
    task_extra, launcher_extra = parse_overrides(overrides)
    try:
        sweep = R.load_sweep(path)
    except R.NotASweepError as e:
        raise RerunError(str(e)) from None
    meta = sweep.meta if isinstance(sweep.meta, dict) else None
    if meta is None or sweep.single_run:
        raise RerunError(f"{path}: not a sweep submitted by this project's launchers (no sweep.json); rerun a "
                         "single run with: python run.py hydra.run.dir=<run dir>")
    scheduler = str(meta.get("scheduler"))
    if scheduler not in SCHEDULERS:
        raise RerunError(f"{path}/sweep.json: scheduler {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    if meta.get("dry_run"):
        raise RerunError(f"{path} is a dry run (nothing was submitted): submit the sweep itself")
    folder = Path(str(meta.get("submitit_folder") or sweep.path / ".submitit"))
    if not folder.is_dir() and (sweep.path / ".submitit").is_dir():
        folder = sweep.path / ".submitit"  # the sweep was moved

    answer = S.query_sweep(sweep, runner)
    statuses = S.sweep_status(sweep, answer)
    by_num = {st.run.job_num: st for st in statuses if st.run.job_num is not None}
    if jobs:
        unknown = sorted(set(jobs) - set(by_num))
        if unknown:
            raise RerunError(f"no job {', '.join(map(str, unknown))} in {path} (jobs: "
                             f"{', '.join(str(n) for n in sorted(by_num))})")
        for num in jobs:
            st = by_num[num]
            if st.state not in RERUN_STATES:
                raise RerunError(f"job {num} is {st.state}: only failed, corrupt and missing jobs are rerun", 1)
    chosen = [st for st in statuses if st.state in RERUN_STATES and (not jobs or st.run.job_num in jobs)]
    unsure = [st for st in chosen if st.state == R.MISSING and not answer.answered and scheduler != "local"]
    chosen = [st for st in chosen if st not in unsure]
    if not chosen:
        counts: dict[str, int] = {}
        for st in statuses:
            counts[st.state] = counts.get(st.state, 0) + 1
        said = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no jobs"
        why = f"; {len(unsure)} missing but the scheduler did not answer" if unsure else ""
        raise RerunError(f"nothing to rerun in {path}: {said}{why} (failed, corrupt and missing jobs are "
                         "rerun; pending, running and completed ones are not)", 1)

    targets: list[Target] = []
    launcher = None
    for st in chosen:
        run = st.run
        if not run.job_id:
            raise RerunError(f"job {run.label} has no job id in sweep.json: it was never submitted")
        pickle = find_pickle(folder, scheduler, run.job_id)
        if pickle is None:
            raise RerunError(f"job {run.label}: no {run.job_id} submission pickle under {folder} (deleted?); "
                             "rerun it by hand with python run.py hydra.run.dir=<its run dir> <its overrides>")
        call = _unpacked(_load_call(pickle), run.job_num)  # a packed job: only this run
        this_launcher, old = _job_parts(call, scheduler, folder)
        launcher = launcher or this_launcher
        run_dir = run.run_dir or _listed_run_dir(meta, run, sweep.path) or sweep.path / run.name
        old_task = _task_overrides(old)
        new_task = merge_overrides(old_task, task_extra)
        fresh = sorted(new_task) != sorted(old_task) and run.run_dir is not None
        targets.append(Target(st, run_dir, pickle, call, new_task, fresh, old_id=run.job_id))
    for key, value in launcher_extra.items():
        if key not in launcher.params:
            raise RerunError(f"hydra.launcher.{key}: not a setting of this sweep's launcher; valid: "
                             f"{', '.join(sorted(launcher.params))}")
        launcher.params[key] = value
    return Plan(sweep, scheduler, targets, launcher, task_extra, launcher_extra, answer, statuses)


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
    root = target.run_dir / ARCHIVE
    root.mkdir(parents=True, exist_ok=True)
    n = 1 + max((int(p.name) for p in root.iterdir() if p.name.isdigit()), default=0)
    dest = root / str(n)
    dest.mkdir()
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


def _executor(p: Plan) -> Any:
    """The sweep's own executor, rebuilt from its pickled launcher (and checked: bsub/sbatch present)."""
    from hydra.errors import HydraException

    from pipeline.errors import PipelineError

    try:
        if p.scheduler == "lsf":
            from submitit.core.utils import FailedSubmissionError

            executor = p.launcher.make_executor()
            try:
                executor.check_can_submit()
            except FailedSubmissionError as e:
                raise RerunError(str(e)) from None
            return executor
        if p.scheduler == "slurm":
            return p.launcher.make_executor()
        return _local_executor(p.launcher)
    except (PipelineError, HydraException, ValueError) as e:
        raise RerunError(R.first_line(e) or type(e).__name__) from None


def _local_executor(launcher: Any) -> Any:
    import submitit

    from hydra_plugins.pipeline_launchers import plugin_pythonpath

    p = launcher.params
    os.environ["PYTHONPATH"] = plugin_pythonpath()  # the job processes unpickle the launcher
    executor = submitit.LocalExecutor(folder=p["submitit_folder"], max_num_timeout=int(p.get("max_num_timeout", 0)))
    base = {"timeout_min": p.get("timeout_min"), "tasks_per_node": p.get("tasks_per_node") or 1,
            "gpus_per_node": int(p.get("gpus_per_node") or 0), "nodes": p.get("nodes") or 1,
            "stderr_to_stdout": bool(p.get("stderr_to_stdout", False))}
    executor.update_parameters(**{k: v for k, v in base.items() if v is not None})
    return executor


def _new_call(p: Plan, t: Target) -> Any:
    """The job's call with its new overrides, pinned to its run directory."""
    overrides = t.overrides + _pins(p.sweep.path.absolute(), t.run_dir.absolute())
    if p.scheduler == "lsf":
        from hydra_plugins.pipeline_launchers import SweepJob

        fn = t.call.function
        return SweepJob(Path(fn.payload), overrides, fn.job_dir_key, fn.job_num, fn.job_id)
    return (overrides, *t.call.args[1:])


def _submit_batch(p: Plan, executor: Any, on_start: Callable[[Target], None]) -> None:
    """LSF and Slurm: one array; local: processes, at most max_parallel at a time (waits for them)."""
    calls = [_new_call(p, t) for t in p.targets]
    if p.scheduler == "lsf":
        jobs = executor.submit_array(calls)
    elif p.scheduler == "slurm":
        from hydra_plugins.pipeline_launchers.slurm_launcher import SlurmManifestLauncher

        jobs = SlurmManifestLauncher.submit_array(executor, p.launcher, calls)
    else:
        return _run_local(p, executor, calls, on_start)
    for t, job in zip(p.targets, jobs, strict=True):
        t.job = job
        on_start(t)


def _run_local(p: Plan, executor: Any, calls: list[Any], on_start: Callable[[Target], None]) -> None:
    from hydra_plugins.pipeline_launchers.local_launcher import POLL_S, parallelism

    n_parallel, slots = parallelism(p.launcher.params)
    free = list(range(n_parallel))
    running: dict[int, int] = {}
    nxt = 0
    while nxt < len(calls) or running:
        while nxt < len(calls) and free:
            slot = free.pop(0)
            if slots[slot]:
                executor.update_parameters(visible_gpus=slots[slot])
            t = p.targets[nxt]
            t.job = executor.submit(p.launcher, *calls[nxt])
            running[nxt] = slot
            on_start(t)
            nxt += 1
        for k in [k for k in running if p.targets[k].job.done()]:
            free.append(running.pop(k))
        if running:
            time.sleep(POLL_S)


def _log_paths(p: Plan, job: Any) -> tuple[str, str]:
    one_log = bool(p.launcher.params.get("stderr_to_stdout", False))
    return str(job.paths.stdout), str(job.paths.stdout if one_log else job.paths.stderr)


def _update_manifest(p: Plan, targets: Sequence[Target], record: dict[str, Any] | None = None,
                     aggregate_id: str | None = None) -> None:
    from pipeline import atomic

    data = rundir.read_manifest(p.sweep.path) or {}
    by_num = {t.num: t for t in targets if t.job is not None}
    for job in data.get("jobs", []):
        t = by_num.get(job.get("job_num"))
        if t is None:
            continue
        stdout, stderr = _log_paths(p, t.job)
        job.update(job_id=str(t.job.job_id), stdout=stdout, stderr=stderr, overrides=list(t.overrides),
                   run_dir=str(t.run_dir))
    if record is not None:
        arrays: dict[str, list[int]] = {}  # one bsub/sbatch array (several above LSF's max_array_size)
        for t in targets:
            if t.job is not None and p.scheduler != "local":
                arrays.setdefault(base_id(str(t.job.job_id), p.scheduler), []).append(t.num)
        for base, nums in arrays.items():
            data.setdefault("arrays", []).append({"job_id": base, "size": len(nums), "first_job_num": min(nums),
                                                  "job_nums": nums, "rerun": True})
        data.setdefault("reruns", []).append(record)
    if aggregate_id is not None:
        rundir.set_aggregate_job(data, aggregate_id)
    atomic.write_json(rundir.manifest_path(p.sweep.path), data)


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


def _aggregate_job(p: Plan, executor: Any) -> str | None:
    """LSF, not waiting: a new aggregation job after the rerun array and the jobs still pending/running."""
    if p.scheduler != "lsf" or p.wait or not p.launcher.params.get("aggregate", True):
        return None
    ids = [base_id(str(t.job.job_id), "lsf") for t in p.targets]
    ids += [base_id(str(st.run.job_id), "lsf") for st in p.statuses
            if st.state in (R.PENDING, R.RUNNING, R.REQUEUED) and st.run.job_id and st.run.job_id not in ids]
    arrays = [{"job_id": i} for i in dict.fromkeys(ids)]
    return p.launcher.submit_aggregate(executor, p.sweep.path.absolute(), arrays, False)


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
    return R.FAILED, R.first_line(final.get("error")) or "failed"


def execute(p: Plan, dry_run: bool = False, out: Callable[[str], None] = print) -> int:
    """Archive, submit in one batch, update sweep.json, print one line per job; the exit code."""
    executor = _executor(p)  # every check before anything moves
    if dry_run:
        for t in p.targets:
            out(_line(p, t, True))
        return 0
    for t in p.targets:
        _archive(t)

    def started(t: Target) -> None:
        _update_manifest(p, [t])
        out(_line(p, t, False))

    try:
        _submit_batch(p, executor, started if p.scheduler == "local" else (lambda t: None))
    except BaseException as e:
        for t in p.targets:
            if t.job is None:
                _restore(t)
        if isinstance(e, Exception) and not isinstance(e, RerunError):
            raise RerunError(f"submission failed: {R.first_line(e) or type(e).__name__}", 1) from None
        raise
    if p.scheduler != "local":
        for t in p.targets:
            out(_line(p, t, False))
    _update_manifest(p, p.targets, _record(p), _aggregate_job(p, executor))
    sweep = shlex.quote(str(p.sweep.path))
    if not p.wait:
        out(f"sweep.json updated; follow with: pipeline status {sweep}")
        return 0
    if p.scheduler != "local":
        for t in p.targets:
            with contextlib.suppress(Exception):  # a failure shows in the run directory
                t.job.results()
    failed = 0
    for t in p.targets:
        state, said = _final_state(t)
        failed += state != R.COMPLETED
        out(f"job {t.num}: {state} ({said})")
    _aggregate_results(p, out)
    return 1 if failed else 0


def _aggregate_results(p: Plan, out: Callable[[str], None]) -> None:
    """After a rerun that waited: refresh ``SWEEP/results`` like a finished sweep does."""
    try:
        sweep = R.load_sweep(p.sweep.path)
        R.aggregate(sweep, "val_macro_f1")
        out(f"results: {p.sweep.path / 'results'}   compare: pipeline results {shlex.quote(str(p.sweep.path))}")
    except Exception as e:  # noqa: BLE001 - the rerun itself is done
        print(f"warning: could not aggregate {p.sweep.path}: {R.first_line(e)}", file=sys.stderr)


@contextlib.contextmanager
def _locked(sweep_dir: Path) -> Iterator[None]:
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
    """``pipeline rerun``: the exit code (RerunError for one-line failures)."""
    path = Path(path)
    if not path.is_dir():
        raise RerunError(f"{path}: no such directory")
    if dry_run:
        return execute(plan(path, overrides, jobs), dry_run=True, out=out)
    with _locked(path):
        return execute(plan(path, overrides, jobs), out=out)
