"""Following a sweep: ``pipeline status``, ``pipeline watch`` and ``pipeline logs``.

The job states come from one scheduler query merged with the run directories
(:mod:`pipeline.launch.sweep_status`); the tables from :mod:`pipeline.results.views`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from pipeline import rundir
from pipeline.cli.common import console, disk_line, fail, load_sweeps, metric_for, split_columns, warn, write


def status(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory or a single run directory."),
    metric: str | None = typer.Option(None, "--metric", "-m", help="Validation metric shown as 'best' "
                                      "(default: val_<trainer.monitor> of the runs)."),
    no_scheduler: bool = typer.Option(False, "--no-scheduler", help="Do not ask the scheduler; run dirs only."),
    columns: str | None = typer.Option(None, "--columns", "-c", help="Columns to show, comma-separated: job, "
                                       "job_id, state, scheduler, runtime, epoch, step, eta, best, note."),
) -> None:
    """Each job's state, progress, ETA and best metric.

    One line per job: scheduler id, state, runtime, epoch, step/total, ETA, best val metric so far.
    ETAs come from the job's progress.json: the mean step time since its last (re)start.

    Asks the scheduler once for the whole sweep (bjobs / sacct / pid check). Exit code 1 if any job
    failed or has a corrupt metrics.json.
    """
    from pipeline.launch import sweep_status as S
    from pipeline.results import extras, views
    from pipeline.results.tables import UnknownColumnError

    (sw,) = load_sweeps([sweep])
    metric = metric_for(metric, [sw])
    answer = S.Answer(sw.scheduler) if no_scheduler else S.query_sweep(sw)
    if answer.warning:
        warn(answer.warning)
    rows = S.sweep_status(sw, answer, metric)
    out = console()
    panels = [line for panel in extras.sweep_panels(sw, answer) for line in panel]
    try:
        views.print_status(out, sw.path, rows, metric, f"{sw.path}  ({sw.scheduler})", split_columns(columns),
                           panels)
    except UnknownColumnError as e:
        fail(str(e))
    out.print(views.count_line([st.state for st in rows]))
    out.print(disk_line(sw.runs))
    agg = S.aggregate_state(sw, answer)
    if agg:
        out.print(f"aggregate job {sw.meta.get('aggregate_job_id')}: {agg}")
    if S.has_failures(rows) or S.workers_failed(sw, answer):
        raise typer.Exit(1)


def watch(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory."),
    metric: str | None = typer.Option(None, "--metric", "-m", help="Validation metric shown, last and best "
                                      "(default: val_<trainer.monitor> of the runs)."),
    interval: float | None = typer.Option(None, "--interval", "-i",
                                          help="Seconds between refreshes (one scheduler query each). "
                                               "Default: 1 for local sweeps, 10 on a cluster."),
) -> None:
    """Follow a sweep live until every job has ended.

    Then prints the results table (exit 1 if any job failed). One row per job: state, step/total with a
    bar, samples/s, ETA, latest and best validation metric; the sweep's totals and best run at the top.
    Not on a terminal: one plain line per change.
    """
    from pipeline.results import views
    from pipeline.results import watch as W
    from pipeline.results.compare import run_table
    from pipeline.rundir import BAD_STATES

    (sw,) = load_sweeps([sweep])
    metric = metric_for(metric, [sw])
    try:
        snap = W.watch(sweep, metric, interval)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    views.print_results(console(), run_table(snap.sweep.runs, metric), str(sw.path))
    if any(j.state in BAD_STATES for j in snap.jobs):
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------------- logs


def _run_finished(run: Any) -> bool:
    return run.run_dir is not None and rundir.metrics_json(run.run_dir).is_file()


def _follow(path: Path, run: Any, n: int | None, poll: float = 0.5, idle_after_end: float = 1.0) -> None:
    """Print the tail, then what is appended, until Ctrl-C or the run has ended and the log is quiet."""
    from pipeline.results.logs import tail_lines

    try:
        while not path.exists():  # a pending job: wait for its log to appear
            if _run_finished(run):
                fail(f"{path} does not exist and the run has ended", 1)
            time.sleep(poll)
        sys.stdout.write(tail_lines(path, n))
        sys.stdout.flush()
        pos = path.stat().st_size
        quiet_since = None
        while True:
            size = path.stat().st_size
            if size < pos:  # truncated (requeued job): start over
                pos = 0
            if size > pos:
                with open(path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read(size - pos)
                pos = size
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
                quiet_since = None
            elif _run_finished(run):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= idle_after_end:
                    return
            time.sleep(poll)
    except KeyboardInterrupt:
        return


def _find_run(sw: Any, job: str) -> Any:
    for run in sw.runs:
        if run.label == job or run.name == job or (run.job_id and run.job_id == job):
            return run
    fail(f"no job {job!r} in {sw.path} (jobs: {', '.join(r.label for r in sw.runs) or 'none'})")


def _failed_logs(sw: Any, lines: int | None) -> None:
    """The tail of every failed job's log, under a line that says what failed."""
    from pipeline.launch import sweep_status as S
    from pipeline.results.logs import FAILURE_TAIL_LINES, log_tail
    from pipeline.rundir import BAD_STATES

    answer = S.query_sweep(sw)
    if answer.warning:
        warn(answer.warning)
    failed = [st for st in S.sweep_status(sw, answer) if st.state in BAD_STATES]
    if not failed:
        print(f"no failed jobs in {sw.path}")
        return
    for st in failed:
        log, tail = log_tail(st.run, FAILURE_TAIL_LINES if lines is None else lines)
        print(f"==> job {st.run.label} ({st.run.job_id or 'no job id'}) {st.state.upper()}: "
              f"{st.note or 'no error recorded'}  [{log or 'no log found'}]")
        if log:
            write(tail)


def _job_log(sw: Any, run: Any, err: bool, follow: bool, n: int) -> None:
    """One job's log: the scheduler's file, else its live view (LSF's bpeek), else the run's own logs."""
    from pipeline.cli.scheduler_logs import live_output
    from pipeline.results.logs import declared_log, log_paths, tail_lines

    stream = "stderr" if err else "stdout"
    declared = declared_log(run, stream)
    if declared is not None and declared.is_file():
        return _follow(declared, run, n) if follow else write(tail_lines(declared, n))
    if not _run_finished(run) and live_output(sw, run, follow, n):
        return None
    candidates = log_paths(run, stream)
    for path in candidates:
        if path.is_file():
            if declared is not None:
                warn(f"{declared} does not exist yet; showing {path}")
            return _follow(path, run, n) if follow else write(tail_lines(path, n))
    if follow and declared is not None:
        return _follow(declared, run, n)  # waits for the file to appear
    looked = ", ".join(str(p) for p in candidates) or "nothing to look at"
    fail(f"no log for job {run.label} yet (state {run.state}; looked at {looked})", 1)


def logs(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory or a single run directory."),
    job: str | None = typer.Argument(None, help="Job number (or scheduler id). Omit: tails of all failed jobs."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing what is appended."),
    err: bool = typer.Option(False, "--err", help="The scheduler's stderr file instead of stdout."),
    lines: int | None = typer.Option(None, "--lines", "-n", help="Last N lines (0: all). Default 100; 20 per failure."),
) -> None:
    """Print or follow a job's log (no JOB: the failed jobs' logs).

    The scheduler's stdout/stderr from sweep.json, else <run>/run.log.

    For LSF, while the -o file does not exist yet (LSF writes it at job end), `bpeek` shows the output.
    """
    (sw,) = load_sweeps([sweep])
    if job is None:
        return _failed_logs(sw, lines)
    _job_log(sw, _find_run(sw, job), err, follow, 100 if lines is None else lines)
