"""A study as ``pipeline status``, ``watch`` and ``rerun`` see it: the study's trials (its journal), each worker
slot's record, ``sweep.json``'s workers (each slot's current job id and logs) and the one scheduler answer.

A worker's state is decided by :func:`worker_state`, a pure function:

    the scheduler says           the worker                                   state
    PEND (after a requeue)       -                                            pending (requeued)
    RUN                          -                                            running
    EXIT, or gone, just after    asked to be requeued (its marker)            requeued
    DONE                         holds a RUNNING trial, study not finished    failed (it ended holding it)
    DONE                         otherwise                                    done
    EXIT                         the study is finished                        done
    EXIT                         otherwise                                    failed
    not listed by a complete     holds a RUNNING trial and the study is not   failed
    answer (ended, forgotten)    finished; else                               done
    no answer                    -                                            unknown

``pipeline rerun SWEEP --failed`` brings back the failed workers (:mod:`pipeline.search.rerun`). A trial held by
a failed worker reads as that worker's job, so its row says it died and what to do; once the worker is
resubmitted the trial follows the new job (pending, then running).

Nothing here imports Optuna until a study is opened; a grid sweep never comes here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import rundir
from pipeline.launch import S_DONE, S_EXIT, S_PENDING, S_RUNNING, Answer, SchedJob

if TYPE_CHECKING:
    from pipeline.launch.backend import Backend

#: a worker's states (besides rundir's pending, running, requeued, failed)
DONE, UNKNOWN = "done", "unknown"
#: worker states that ``pipeline rerun --failed`` resubmits / that may still run trials
RERUN_WORKER_STATES = (rundir.FAILED,)
ALIVE_WORKER_STATES = (rundir.PENDING, rundir.RUNNING, rundir.REQUEUED, UNKNOWN)


# ------------------------------------------------------------------------------------------ sweep.json


def is_study(meta: Any) -> bool:
    """``sweep.json`` of a study (``hydra/sweeper=study``)."""
    return isinstance(meta, Mapping) and isinstance(meta.get("study"), Mapping)


def manifest_workers(meta: Any) -> list[dict[str, Any]]:
    """``sweep.json``'s ``study.workers``: one entry per slot (``slot``, ``job_id``, ``stdout``, ``stderr``)."""
    if not is_study(meta):
        return []
    return [w for w in meta["study"].get("workers") or [] if isinstance(w, dict) and isinstance(w.get("slot"), int)]


def worker_ids(meta: Any) -> list[str]:
    """The workers' current job ids (for the one scheduler query)."""
    return [str(w["job_id"]) for w in manifest_workers(meta) if w.get("job_id")]


# ------------------------------------------------------------------------------------------ decisions


def worker_state(job: SchedJob | None, answered: bool, complete: bool, requeue_age: float | None,
                 holds: int | None, study_over: bool) -> tuple[str, str]:
    """(state, why) of one worker (the module's table). ``holds``: the RUNNING trial its slot holds;
    ``study_over``: the study has its trials finished."""
    held = f"holding trial {holds}" if holds is not None else "holding no trial"
    dies = holds is not None and not study_over
    if requeue_age is not None and requeue_age <= rundir.REQUEUE_GRACE_S and (job is None or job.state == S_EXIT):
        return rundir.REQUEUED, f"requeue requested {requeue_age:.0f} s ago"
    if job is None:
        if not (answered and complete):
            return UNKNOWN, "the scheduler did not answer" if not answered else "not listed by the scheduler"
        return (rundir.FAILED, f"ended {held} (the scheduler no longer lists it)") if dies else (DONE, "")
    if job.state == S_PENDING:
        return (rundir.REQUEUED, "pending again after a requeue") if requeue_age is not None else (rundir.PENDING, "")
    if job.state == S_RUNNING:
        return rundir.RUNNING, ""
    code = f", exit code {job.exit_code}" if job.exit_code and job.exit_code != "0" else ""
    if job.state == S_DONE:
        return (rundir.FAILED, f"{job.raw} {held}") if dies else (DONE, "")
    if job.state == S_EXIT and not study_over:
        return rundir.FAILED, f"{job.raw}{code}, {held}"
    return DONE, f"{job.raw}{code}" if job.state == S_EXIT else ""


# ------------------------------------------------------------------------------------------ the study


@dataclass(frozen=True)
class WorkerStatus:
    slot: int
    job_id: str | None
    state: str  # pending | running | requeued | done | failed | unknown
    sched: str = ""  # the scheduler's word
    trial: int | None = None  # the RUNNING trial it holds
    note: str = ""


@dataclass
class StudyStatus:
    sweep_dir: Path
    name: str
    settings: Any  # StudySettings
    summary: dict[str, Any]  # pipeline.search.study.summarize
    workers: list[WorkerStatus] = field(default_factory=list)

    @property
    def over(self) -> bool:
        """The study has its trials finished (completed + pruned)."""
        return self.summary["finished"] >= self.settings.trials

    @property
    def gave_up(self) -> bool:
        """The workers stopped asking: ``max_failed`` trials failed."""
        return not self.over and self.summary["counts"]["FAIL"] >= self.settings.max_failed

    def holder(self, trial: int) -> WorkerStatus | None:
        return next((w for w in self.workers if w.trial == trial), None)

    def failed_workers(self) -> list[WorkerStatus]:
        return [w for w in self.workers if w.state in RERUN_WORKER_STATES]


def study_status(sweep_dir: Path, meta: Mapping[str, Any], answer: Answer, be: Backend | None) -> StudyStatus:
    """The study in ``sweep_dir`` with its workers' states (``answer``: the sweep's one scheduler query)."""
    from pipeline.search.study import SweepStudy, summarize
    from pipeline.search.worker import holders, read_records

    study = SweepStudy.open(Path(sweep_dir))
    records = read_records(study.sweep_dir)  # before the trials: see pipeline.search.worker's _next
    trials = study.trials()
    held = {slot: trial for trial, slot in holders(trials, records).items()}
    status = StudyStatus(study.sweep_dir, study.name, study.settings, summarize(trials, study.settings))
    folder = meta.get("submitit_folder")
    for entry in manifest_workers(meta):
        slot, job_id = entry["slot"], str(entry["job_id"]) if entry.get("job_id") else None
        job = answer.jobs.get(job_id) if job_id else None
        age = rundir.requeue_age(folder, be.file_stem(job_id)) if job_id and be is not None else None
        state, note = worker_state(job, answer.answered, answer.complete, age, held.get(slot), status.over)
        status.workers.append(WorkerStatus(slot, job_id, state, job.raw if job else "", held.get(slot), note))
    return status


def open_status(sweep: Any, answer: Answer, be: Backend | None) -> StudyStatus | None:
    """:func:`study_status` of a loaded sweep (``pipeline.results.Sweep``); None for a grid sweep, or a study
    whose files cannot be read (its trials are still shown)."""
    from pipeline.errors import PipelineError

    if not is_study(sweep.meta):
        return None
    try:
        return study_status(sweep.path, sweep.meta, answer, be)
    except (PipelineError, OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------ the panel


def panel(status: StudyStatus, sweep_path: Path, width: int = 80) -> list[str]:
    """The lines above the job table of ``pipeline status`` and ``watch``: the counts of N, the best so far,
    the workers (and what to do about failed ones); each at most ``width`` columns."""
    from pipeline.results.tables import wrap

    s, counts = status.settings, status.summary["counts"]
    lines = [f"study {status.name}: {s.sampler} sampler, {s.pruner} pruner, {s.direction} val_{s.monitor}",
             f"trials: {status.summary['finished']} of {s.trials} finished ({counts['COMPLETE']} completed, "
             f"{counts['PRUNED']} pruned), {counts['RUNNING']} running, {counts['FAIL']} failed"]
    best = status.summary["best"]
    if best is not None:
        from pipeline.search.study import params_text

        lines += [f"best so far: trial {best['number']}, val_{s.monitor} {best['value']:.4f}",
                  f"  {params_text(best['params'])}"]
    lines += _worker_lines(status, sweep_path)
    out = []
    for line in lines:  # each wrapped within width, keeping its own indent
        lead = line[:len(line) - len(line.lstrip())]
        out += [lead + part for part in wrap(line.strip(), width - len(lead))]
    return out


def _worker_lines(status: StudyStatus, sweep_path: Path) -> list[str]:
    by_state: dict[str, list[WorkerStatus]] = {}
    for w in status.workers:
        by_state.setdefault(w.state, []).append(w)
    said = ", ".join(f"{len(ws)} {state}" for state, ws in by_state.items())
    lines = [f"workers: {said or 'none recorded'}"]
    for w in status.failed_workers():
        lines.append(f"  worker {w.slot} (job {w.job_id}) failed: {w.note or w.sched}")
    if status.failed_workers() and not status.gave_up:
        lines.append(f"  bring them back (held trials resume): `pipeline rerun {sweep_path} --failed`")
    if status.gave_up:
        lines.append(f"  the workers stopped: {status.summary['counts']['FAIL']} trials failed "
                     f"(max_failed={status.settings.max_failed}); their metrics.json say why")
    return lines


def trial_note(status: StudyStatus, trial: int, note: str | None, sweep_path: Path) -> str | None:
    """A trial's note when its holder failed: the worker died, and what brings the trial back."""
    w = status.holder(trial)
    if w is None or w.state not in RERUN_WORKER_STATES:
        return note
    said = f"its worker {w.slot} (job {w.job_id}) died; `pipeline rerun {sweep_path} --failed` resumes it"
    return f"{said}; {note}" if note else said


def job_of(status: StudyStatus, trials: Sequence[int]) -> dict[int, str]:
    """Trial number -> the current job id of the worker that holds it (for the held trials among ``trials``)."""
    out: dict[int, str] = {}
    for n in trials:
        w = status.holder(n)
        if w is not None and w.job_id:
            out[n] = w.job_id
    return out
