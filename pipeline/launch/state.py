"""A job's displayed state, decided in one place (the table in docs/reliability.md).

Inputs: what the run directory says (``metrics.json``: completed / failed / corrupt; a run directory
without it; no run directory), the one scheduler answer for the sweep, and the requeue marker a job writes
before it asks to be requeued. ``pipeline status``, ``logs``, ``rerun`` and the LSF watcher all call
:func:`decide`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.launch import S_DONE, S_EXIT, S_PENDING, S_RUNNING, SchedJob
from pipeline.rundir import COMPLETED, CORRUPT, FAILED, MISSING, PENDING, PRUNED, REQUEUE_GRACE_S, REQUEUED, RUNNING

#: run-directory states no scheduler answer can change
FINAL_STATES = (COMPLETED, PRUNED, FAILED, CORRUPT)


@dataclass(frozen=True)
class Decision:
    state: str
    #: why, when the files alone do not say it: ``scheduler: EXIT, exit code 1, no metrics.json``
    reason: str | None = None
    #: the job ended without metrics.json: the caller may add the telling line of its log
    ended_without_metrics: bool = False


def decide(files: str, has_run_dir: bool, has_job_id: bool, job: SchedJob | None, answered: bool,
           complete: bool, requeue_age: float | None = None, packed: bool = False) -> Decision:
    """The state of one job.

    ``files``: the run directory's own state (completed, failed, corrupt, running: no metrics.json yet,
    missing: no run directory). ``job``: the scheduler's answer for this job (None: not listed).
    ``complete``: the answer lists every unfinished job asked about (so "not listed" means "ended").
    ``requeue_age``: seconds since the job wrote its requeue marker, None without one.
    ``packed``: the scheduler job runs several sweep points one after another (``runs_per_job`` > 1), so
    its RUN is not this point's: a point without a run directory has not started yet.
    """
    if files in FINAL_STATES:
        return Decision(files)
    requeue_asked = requeue_age is not None and requeue_age <= REQUEUE_GRACE_S
    if job is None:
        if complete and has_run_dir and has_job_id:
            if requeue_asked:
                return Decision(REQUEUED, f"requeue requested {requeue_age:.0f} s ago")
            return Decision(FAILED, "ended without metrics.json (the scheduler no longer lists the job)", True)
        if has_run_dir:
            return Decision(RUNNING)
        return Decision(MISSING, None if answered else "no run directory; scheduler not asked or not answering")
    if job.state == S_PENDING:
        return Decision(REQUEUED if requeue_age is not None else PENDING,
                        "pending again after a requeue" if requeue_age is not None else None)
    if job.state == S_RUNNING:
        if packed and not has_run_dir:
            return Decision(PENDING, "waits for its turn in a packed job")
        return Decision(RUNNING)
    if job.state in (S_EXIT, S_DONE):
        if requeue_asked:  # LSF shows EXIT for a few seconds between brequeue's kill and the new PEND
            return Decision(REQUEUED, f"scheduler: {job.raw} while requeueing (asked {requeue_age:.0f} s ago)")
        code = f", exit code {job.exit_code}" if job.exit_code and job.exit_code != "0" else ""
        return Decision(FAILED, f"scheduler: {job.raw}{code}, no metrics.json", True)
    return Decision(RUNNING if has_run_dir else PENDING)
