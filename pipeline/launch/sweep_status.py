"""Job states of a sweep: one scheduler query for the whole sweep, merged with the run directories.

The run directory is the ground truth (``metrics.json`` says completed or failed); the scheduler only
tells apart what the files cannot: pending vs. running vs. died without writing ``metrics.json``. A
scheduler that fails or has forgotten the jobs (``bjobs`` forgets finished jobs after a while) costs a
warning, never the answer. The scheduler is asked through its backend in :mod:`pipeline.launch`, and
each job's state is decided by :func:`pipeline.launch.state.decide`.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import rundir
from pipeline.launch import S_DONE, S_EXIT, Answer, Runner, SchedJob, run_command
from pipeline.launch.backend import Backend, backend
from pipeline.launch.state import FINAL_STATES, decide
from pipeline.results.results import BAD_STATES, RUNNING, Run, Sweep, curve_key, default_mode


def sweep_backend(sweep: Sweep, runner: Runner = run_command) -> Backend | None:
    """The backend of the sweep's scheduler (None: not a scheduler this project knows)."""
    try:
        return backend(sweep.scheduler, runner=runner)
    except ValueError:
        return None


def query_ids(sweep: Sweep, be: Backend) -> list[str]:
    """The ids one query needs: the arrays (and plain jobs) of runs that have not finished, and the
    current aggregation job (its results/ may be written while it still runs)."""
    ids: list[str] = []
    for run in sweep.runs:
        if run.state not in FINAL_STATES and run.job_id:
            base = be.base_id(str(run.job_id))
            if base not in ids:
                ids.append(base)
    if (sweep.meta or {}).get("study"):  # a study's workers (a worker between trials has no run directory)
        from pipeline.search.status import worker_ids

        ids += [i for i in dict.fromkeys(be.base_id(j) for j in worker_ids(sweep.meta)) if i not in ids]
    agg = (sweep.meta or {}).get("aggregate_job_id")
    if agg and str(agg) not in ids:
        ids.append(str(agg))
    return ids


def query_sweep(sweep: Sweep, runner: Runner = run_command) -> Answer:
    """At most one scheduler query (plus the fallback form where LSF rejects the first)."""
    be = sweep_backend(sweep, runner)
    if be is None:
        return Answer(sweep.scheduler)
    return be.query(query_ids(sweep, be), sweep.meta or {})


def requeue_age(sweep: Sweep, run: Run, now: float | None = None) -> float | None:
    """Seconds since this run's job asked to be requeued (its marker in the submitit folder)."""
    folder = (sweep.meta or {}).get("submitit_folder")
    be = sweep_backend(sweep)
    if not folder or not run.job_id or be is None:
        return None
    return rundir.requeue_age(folder, be.file_stem(run.job_id), now)


@dataclass
class JobStatus:
    run: Run
    state: str
    sched: str = ""  # the scheduler's word, when it was asked
    runtime_s: float | None = None
    epoch: float | None = None
    step: float | None = None
    best: float | None = None
    note: str | None = None


_LOG_ERRORS = (
    re.compile(r"\bTERM_[A-Z_]+"),  # LSF's termination reason (TERM_RUNLIMIT, TERM_MEMLIMIT, ...)
    re.compile(r"DUE TO TIME LIMIT|CANCELLED AT|oom[-_ ]kill|Out Of Memory", re.IGNORECASE),  # Slurm
    re.compile(r"^\w*(Error|Exception|Interrupt)\b|Killed"),  # Python's last line, the kernel's kill
)


def error_from_log(*paths: str | Path | None) -> str | None:
    """The most telling error line in the tail of a job log (for jobs that left no metrics.json)."""
    for p in paths:
        if not p:
            continue
        try:
            with open(p, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 65536))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        lines = [ln.strip() for ln in tail.splitlines()]
        for pat in _LOG_ERRORS:
            hits = [ln for ln in lines if pat.search(ln)]
            if hits:
                return hits[-1][:200]
    return None


def job_status(run: Run, sj: SchedJob | None, answered: bool, metric: str, now: float,
               complete: bool = False, requeue_age: float | None = None, packed: bool = False) -> JobStatus:
    """Merge one run's files with what the scheduler said about it (the state: ``state.decide``)."""
    st = JobStatus(run=run, state=run.state, sched=sj.raw if sj else "", note=run.error)
    key = curve_key(metric)
    better = max if default_mode(metric) == "max" else min
    if run.state in FINAL_STATES and run.final is not None:
        st.runtime_s = run.metrics.get("wall_time_s")
        st.epoch = run.metrics.get("epochs")
        st.step = run.metrics.get("steps")
        st.best = run.metrics.get(metric)
    d = decide(run.state, run.run_dir is not None, bool(run.job_id), sj, answered, complete, requeue_age, packed)
    st.state = d.state
    if d.reason:
        log = error_from_log(run.stderr, run.stdout) if d.ended_without_metrics else None
        st.note = d.reason + (f": {log}" if log else "")
    if run.run_dir is not None and (st.epoch is None or st.best is None):
        lines = run.jsonl()
        vals = [ln[key] for ln in lines if ln.get("split") == "val" and isinstance(ln.get(key), (int, float))]
        if vals and st.best is None:
            st.best = float(better(vals))
        for ln in reversed(lines):
            if st.step is None and isinstance(ln.get("step"), (int, float)):
                st.step = ln["step"]
            if st.epoch is None and isinstance(ln.get("epoch"), (int, float)):
                st.epoch = ln["epoch"]
            if st.step is not None and st.epoch is not None:
                break
        if st.runtime_s is None and st.state == RUNNING:
            start = rundir.iso_ts(run.info.get("start_time"))
            if start is None:
                try:
                    start = rundir.hydra_file(run.run_dir).stat().st_mtime
                except OSError:
                    start = None
            if start is not None:
                st.runtime_s = max(0.0, now - start)
    return st


def sweep_status(sweep: Sweep, answer: Answer, metric: str = "val_macro_f1") -> list[JobStatus]:
    """Each run's status. In a study a run is a trial: one its worker still holds follows that worker's
    current job (resubmitted by a rerun, its job id is new), and says so when the worker died."""
    now = time.time()
    study = study_of(sweep, answer)
    if study is not None:
        from pipeline.search.status import job_of

        held = job_of(study, [r.job_num for r in sweep.runs if r.job_num is not None and r.state not in FINAL_STATES])
        for run in sweep.runs:
            run.job_id = held.get(run.job_num, run.job_id)  # type: ignore[arg-type]
    points = Counter(str(run.job_id) for run in sweep.runs if run.job_id)  # > 1: a packed job, a study's worker
    out = []
    for run in sweep.runs:
        sj = answer.jobs.get(str(run.job_id)) if run.job_id else None
        age = requeue_age(sweep, run, now) if run.state not in FINAL_STATES else None
        packed = points[str(run.job_id)] > 1
        out.append(job_status(run, sj, answer.answered, metric, now, answer.complete, age, packed))
        if study is not None and run.job_num is not None:
            from pipeline.search.status import trial_note

            out[-1].note = trial_note(study, run.job_num, out[-1].note, sweep.path)
    return out


#: the last study status per sweep folder, with the answer it was built from (one per scheduler query)
_STUDIES: dict[str, tuple[Answer, Any]] = {}


def study_of(sweep: Sweep, answer: Answer) -> Any:
    """A study's status (:class:`pipeline.search.status.StudyStatus`: its trials, each worker's state) for this
    scheduler answer; None for a grid sweep. Built once per answer: status, its panel and its exit code share it."""
    if not (sweep.meta or {}).get("study"):
        return None
    from pipeline.search.status import open_status

    key = str(sweep.path.absolute())
    hit = _STUDIES.get(key)
    if hit is not None and hit[0] is answer:
        return hit[1]
    status = open_status(sweep, answer, sweep_backend(sweep))
    _STUDIES[key] = (answer, status)
    return status


def aggregate_state(sweep: Sweep, answer: Answer) -> str | None:
    """The current aggregation job (``sweep.json``'s ``aggregate_job_id``, set again by a rerun), as the
    scheduler sees it (:func:`aggregate_decision`)."""
    meta = sweep.meta or {}
    agg = meta.get("aggregate_job_id")
    if not agg:
        return None
    current = rundir.results_are_current(sweep.path, meta)
    return aggregate_decision(answer.jobs.get(str(agg)), answer.answered, answer.complete, current)


def aggregate_decision(job: SchedJob | None, answered: bool, complete: bool, results_current: bool) -> str:
    """``done`` only when the scheduler says the job ended (or a complete answer no longer lists it) and
    ``results/`` was written after the job was submitted: a running aggregation job writes results/ before
    it ends, and a rerun submits a new one while the old results/ is still there."""
    if job is None:
        if answered and complete:
            return "done (results/ written)" if results_current else "ended without writing results/"
        return "unknown (the scheduler did not answer)"
    if job.state == S_DONE:
        return "done (results/ written)" if results_current else f"{job.raw} (no current results/)"
    if job.state == S_EXIT:
        code = f", exit code {job.exit_code}" if job.exit_code else ""
        return f"failed ({job.raw}{code})"
    return job.raw  # PEND, RUN, ... (the scheduler's own word)


def has_failures(statuses: list[JobStatus]) -> bool:
    return any(s.state in BAD_STATES for s in statuses)


def workers_failed(sweep: Sweep, answer: Answer) -> bool:
    """A study with a worker to bring back (``pipeline rerun --failed``); False for a grid sweep."""
    study = study_of(sweep, answer)
    return study is not None and bool(study.failed_workers())
