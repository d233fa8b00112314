"""A study's worker: one scheduler job that asks the study for a trial, trains it in ``<sweep>/<number>/``,
tells the study how it ended, and asks again, until the study has ``trials`` finished (completed + pruned).

Each worker slot (its array index) keeps a record, ``study_workers/<slot>.json``, saying which trial it holds.
What a worker does next is decided by :func:`decide`, a pure function of the study's trials, the records,
the held trial's run directory and the settings, under a lock that one worker at a time holds
(:func:`pipeline.search.study.ask_lock`: read, decide, ask, write the record):

    the slot holds     its run directory               decision
    a RUNNING trial    metrics.json completed/pruned   TELL that state (the worker died before telling)
    a RUNNING trial    metrics.json failed             TELL FAIL
    a RUNNING trial    checkpoints/last                RESUME it (a requeue; a rerun after a kill)
    a RUNNING trial    no checkpoint                   RETRY it from the start, in the same run directory
    no RUNNING trial   -                               STOP when finished >= trials;
                                                       STOP with an error when failed >= max_failed;
                                                       STOP when finished + held by other slots >= trials;
                                                       else ASK a new trial

Why the study stays exact:

- a trial is finished once (``tell`` skips a finished trial) and only its holder tells it;
- a new trial is asked only while finished + held < trials, and asks are serialised by the lock, so the
  study never has more than ``trials`` finished; a worker stops only when the rest is finished or held;
- a requeued worker (run limit: the trial saved ``checkpoints/last``) resumes *its* trial; a worker killed
  outright keeps holding its trial until its slot runs again (``pipeline rerun --failed``), which resumes or
  retries it in the same run directory, so no trial is lost or counted twice;
- the record says ``asking: n`` before the ask and ``trial: n`` after: a worker killed between the two
  finds trial n RUNNING and held by nobody, and takes it up (asks are serialised: n is the number it got);
- a trial whose run raised (not a prune, not a kill) is told FAIL and does not count: it is **replaced**
  by a new ask, not retried (a failure that repeats would repeat); after ``max_failed`` failed trials the
  workers stop asking and end with an error.

Optuna's step for a trial's intermediate values is the evaluation number (1, 2, ...: with per-epoch
evaluation, the epoch), counted from ``metrics.jsonl``, so that pruners compare trials after the same
number of evaluations whatever their batch size, and a resumed trial reports the numbers it would have.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline import atomic, rundir
from pipeline.errors import PipelineError, first_line
from pipeline.search.study import (
    COMPLETE,
    FAIL,
    FINISHED,
    PRUNED,
    RUNNING,
    SweepStudy,
    TrialView,
    ask_lock,
    params_text,
)

log = logging.getLogger(__name__)

#: ``on_eval(step, val_metrics) -> prune?``: called by training after every validation evaluation
OnEval = Callable[[int, dict[str, float]], bool]
#: ``run_point(overrides, trial_number, on_eval) -> best validation value``: trains one trial in its run dir
RunPoint = Callable[[list[str], int, OnEval], float]

STOP, TELL, RESUME, RETRY, ASK = "stop", "tell", "resume", "retry", "ask"
#: how a run directory says its run ended (``metrics.json`` "status"), as against stopped (killed, given up)
ENDED = (rundir.COMPLETED, rundir.PRUNED, rundir.FAILED)


class StudyFailed(PipelineError):
    """Too many trials of the study failed: the workers stop asking."""


@dataclass(frozen=True)
class WorkerRecord:
    """``study_workers/<slot>.json``: the trial this worker slot holds."""

    slot: int
    trial: int | None = None  # the trial it holds (asked, or taken up)
    asking: int | None = None  # written just before an ask: the number that ask gets


@dataclass(frozen=True)
class RunView:
    """What a worker reads of its trial's run directory."""

    checkpoint: bool = False  # checkpoints/last exists
    status: str | None = None  # metrics.json "status"
    value: float | None = None  # metrics.json val[monitor]


@dataclass(frozen=True)
class Decision:
    action: str  # stop | tell | resume | retry | ask
    trial: int | None = None
    state: str | None = None  # tell: COMPLETE | PRUNED | FAIL
    value: float | None = None  # tell COMPLETE: the trial's value
    reason: str = ""
    failed: bool = False  # stop: because too many trials failed


# ------------------------------------------------------------------------------------------ decisions


def holders(trials: Sequence[TrialView], records: Mapping[int, WorkerRecord]) -> dict[int, int]:
    """RUNNING trial number -> the slot that holds it: by its record's ``trial``, else (a worker killed
    between asking and recording) by ``asking``. A RUNNING trial in neither is held by nobody."""
    running = {t.number for t in trials if t.state == RUNNING}
    held: dict[int, int] = {}
    ordered = sorted(records.values(), key=lambda r: r.slot)
    for r in ordered:
        if r.trial in running and r.trial not in held:
            held[r.trial] = r.slot
    for r in ordered:
        if r.trial not in running and r.asking in running and r.asking not in held:
            held[r.asking] = r.slot
    return held


def held_trial(slot: int, trials: Sequence[TrialView], records: Mapping[int, WorkerRecord]) -> int | None:
    """The RUNNING trial this slot holds, if any."""
    return next((n for n, s in holders(trials, records).items() if s == slot), None)


def decide(slot: int, trials: Sequence[TrialView], records: Mapping[int, WorkerRecord], run: RunView,
           target: int, max_failed: int) -> Decision:
    """What worker ``slot`` does next (see the module's table). ``run``: the held trial's run directory."""
    mine = held_trial(slot, trials, records)
    if mine is not None:
        if run.status == rundir.COMPLETED and run.value is not None:
            return Decision(TELL, mine, COMPLETE, run.value, "its run completed before it was told")
        if run.status == rundir.PRUNED:
            return Decision(TELL, mine, PRUNED, None, "its run was pruned before it was told")
        if run.status == rundir.FAILED:
            return Decision(TELL, mine, FAIL, None, "its run failed before it was told")
        if run.checkpoint:
            return Decision(RESUME, mine, reason="it holds this trial and its checkpoints/last")
        return Decision(RETRY, mine, reason="it holds this trial, which has no checkpoint: from the start")
    finished = sum(t.state in FINISHED for t in trials)
    failed = sum(t.state == FAIL for t in trials)
    others = sum(1 for s in holders(trials, records).values() if s != slot)
    if finished >= target:
        return Decision(STOP, reason=f"the study has {finished} finished trials of {target}")
    if failed >= max_failed:
        return Decision(STOP, reason=f"{failed} trials failed (max_failed={max_failed}); see their run "
                                     "directories' metrics.json for why", failed=True)
    if finished + others >= target:
        return Decision(STOP, reason=f"{finished} finished and {others} running in other workers make "
                                     f"{target}")
    return Decision(ASK, reason=f"{finished} finished and {others} running in other workers of {target}")


# ------------------------------------------------------------------------------------------ files


def read_records(sweep_dir: Path) -> dict[int, WorkerRecord]:
    """Every worker slot's record in the sweep folder."""
    records: dict[int, WorkerRecord] = {}
    for path in (Path(sweep_dir) / rundir.STUDY_WORKERS_DIR).glob("*.json"):
        try:
            data = json.loads(path.read_bytes())
            record = WorkerRecord(int(data["slot"]), data.get("trial"), data.get("asking"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        records[record.slot] = record
    return records


def write_record(sweep_dir: Path, record: WorkerRecord) -> None:
    atomic.write_json(rundir.study_worker_json(sweep_dir, record.slot),
                      {"slot": record.slot, "trial": record.trial, "asking": record.asking,
                       "host": atomic.HOST, "pid": os.getpid(), "updated": rundir.now_iso()})


def run_view(run_dir: Path, monitor: str) -> RunView:
    """The held trial's run directory: checkpoint, final status and value."""
    checkpoint = atomic.resolve_dir(rundir.checkpoint_dir(run_dir)) is not None
    try:
        done = json.loads(rundir.metrics_json(run_dir).read_bytes())
    except (OSError, ValueError):
        return RunView(checkpoint)
    value = (done.get("val") or {}).get(monitor) if isinstance(done, dict) else None
    return RunView(checkpoint, done.get("status") if isinstance(done, dict) else None,
                   float(value) if isinstance(value, (int, float)) else None)


def set_aside_result(run_dir: Path) -> Path | None:
    """A held trial taken up again: the ``metrics.json`` its stopped attempt left (``killed``, ``gave_up``)
    moves to ``<run dir>/.rerun/<n>/``, so that the run reads as running again; where it went, if anywhere.
    A run that ended (completed, pruned, failed) keeps it: its worker died before telling the study, and the
    worker that takes the trial up tells how it ended instead of training it again."""
    done = rundir.metrics_json(run_dir)
    if not done.is_file() or run_view(run_dir, "").status in ENDED:
        return None
    dest = rundir.new_archive(run_dir)
    os.replace(done, dest / rundir.METRICS_JSON)
    return dest


def eval_number(run_dir: Path, step: int) -> int:
    """How many validation evaluations ``metrics.jsonl`` holds up to ``step`` (this one included)."""
    count = 0
    try:
        lines = rundir.metrics_jsonl(run_dir).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn last line
        if row.get("split") == "val" and int(row.get("step", 0)) <= step:
            count += 1
    return max(count, 1)


# ------------------------------------------------------------------------------------------ the loop


@dataclass(frozen=True)
class Outcome:
    """One trial a worker ran or told."""

    trial: int
    state: str
    value: float | None
    how: str  # ask | resume | retry | tell


def run_worker(study_dir: str | Path, run_point: RunPoint, *, slot: int,
               max_trials: int | None = None) -> list[Outcome]:
    """Run trials of the study in ``study_dir`` as worker ``slot`` until the study needs no more (or this
    worker has run ``max_trials``). Raises StudyFailed when the study has ``max_failed`` failed trials."""
    study = SweepStudy.open(Path(study_dir))
    outcomes: list[Outcome] = []
    while max_trials is None or sum(o.how != TELL for o in outcomes) < max_trials:
        decision, params = _next(study, slot)
        if decision.action == STOP:
            log.info("study worker %d stops: %s", slot, decision.reason)
            if decision.failed:
                raise StudyFailed(f"study {study.sweep_dir}: {decision.reason}")
            break
        if decision.action == TELL:
            state = study.tell(decision.trial, decision.state, decision.value)
            write_record(study.sweep_dir, WorkerRecord(slot))
            log.info("study worker %d: trial %d told %s (%s)", slot, decision.trial, state, decision.reason)
            outcomes.append(Outcome(decision.trial, state, decision.value, TELL))
            continue
        outcomes.append(_run_trial(study, run_point, slot, decision, params))
    return outcomes


def _next(study: SweepStudy, slot: int) -> tuple[Decision, dict[str, Any]]:
    """Under the ask lock: read the records and the study, decide, and ask or take up the trial.

    The records first: a worker that ends a trial tells the study, then clears its record, without this lock.
    Read in this order, a trial told in between is finished in the trials (its stale record no longer counts,
    holding a trial that is not running); read the other way round it would be running in the trials and held
    by nobody, counted neither finished nor held, and this worker would ask one trial too many."""
    settings = study.settings
    with ask_lock(study.sweep_dir, settings.lock):
        records = read_records(study.sweep_dir)
        trials = study.trials()
        mine = held_trial(slot, trials, records)
        run = run_view(study.run_dir(mine), settings.monitor) if mine is not None else RunView()
        decision = decide(slot, trials, records, run, settings.trials, settings.max_failed)
        if decision.action == ASK:
            write_record(study.sweep_dir, WorkerRecord(slot, asking=len(trials)))
            trial = study.ask()
            write_record(study.sweep_dir, WorkerRecord(slot, trial=trial.number))
            return replace(decision, trial=trial.number), trial.params
        if decision.action in (RESUME, RETRY):
            write_record(study.sweep_dir, WorkerRecord(slot, trial=decision.trial))
            set_aside_result(study.run_dir(decision.trial))
        params = next((t.params for t in trials if t.number == decision.trial), {})
        return decision, params


def _run_trial(study: SweepStudy, run_point: RunPoint, slot: int, decision: Decision,
               params: dict[str, Any]) -> Outcome:
    """Train the trial through ``run_point``, reporting each evaluation; tell the study how it ended."""
    number, monitor = int(decision.trial), study.settings.monitor
    run_dir = study.run_dir(number)
    pruned = False

    def on_eval(step: int, metrics: dict[str, float]) -> bool:
        nonlocal pruned
        if not pruned:
            pruned = study.report(number, eval_number(run_dir, step), float(metrics[monitor]))
        return pruned

    log.info("study worker %d: trial %d (%s): %s %s", slot, number, decision.action, params_text(params),
             decision.reason)
    value: float | None
    try:
        value = float(run_point(study.space.overrides(params), number, on_eval))
    except Exception as e:  # noqa: BLE001 - the trial failed; a kill or a requeue (BaseException) goes on up
        log.warning("study worker %d: trial %d failed: %s", slot, number, first_line(e) or type(e).__name__)
        state, value = FAIL, None
    else:  # the run directory is the truth where it says how the run ended (and its value of the monitor)
        view = run_view(run_dir, monitor)
        state = PRUNED if view.status == rundir.PRUNED or (pruned and view.status != rundir.COMPLETED) else COMPLETE
        value = view.value if view.status == rundir.COMPLETED and view.value is not None else value
    state = study.tell(number, state, value)
    write_record(study.sweep_dir, WorkerRecord(slot))
    log.info("study worker %d: trial %d %s (%s=%s)", slot, number, state, monitor, value)
    return Outcome(number, state, value, decision.action)
