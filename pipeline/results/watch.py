"""``pipeline watch SWEEP``: a live view of a sweep until every job has ended.

Each refresh reads the run directories (``metrics.json``, ``metrics.jsonl``, ``progress.json``) and asks
the scheduler once for the whole sweep (:func:`pipeline.launch.sweep_status.query_sweep`; states come from
:func:`pipeline.launch.sweep_status.sweep_status`, never decided here). On a terminal it is a rich ``Live``
table, one row per job (state, step/total with a bar, samples/s, ETA, latest and best validation
metric) under the sweep's totals and best run so far; elsewhere (a pipe, a job log, CI) it prints one
plain line per change: a job's state, a new evaluation, a job that finished.

The local launcher shows the same view while it blocks (:class:`SweepView`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.launch import sweep_status as S
from pipeline.results import extras
from pipeline.results.metrics import curve_key, default_mode, varying_params
from pipeline.results.runs import NotASweepError, Run, Sweep, load_sweep
from pipeline.results.tables import wrap
from pipeline.results.views import STATE_STYLE, as_given, count_line, duration, gpu_cell
from pipeline.rundir import COMPLETED, CORRUPT, FAILED, MISSING, PENDING, PRUNED, REQUEUED, RUNNING
from pipeline.train import progress as P

#: run-directory states after which nothing changes (as in pipeline.launch.sweep_status)
ENDED = (COMPLETED, PRUNED, FAILED, CORRUPT)
#: seconds between refreshes for a scheduler this project does not know (else its backend's ``poll_s``: one
#: scheduler query each, so cluster sweeps are asked less often)
DEFAULT_INTERVAL = 10.0


@dataclass
class JobView:
    """What one row shows."""

    label: str
    state: str
    ended: bool
    step: int | None = None
    total: int | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None
    latest: float | None = None  # the latest validation value of the metric
    best: float | None = None
    evals: int = 0  # validation lines so far (a new one is a change worth a plain line)
    runtime_s: float | None = None
    config: str = ""  # the job's varying overrides
    note: str | None = None
    gpu: str = ""  # a running job's GPU use (utilisation, memory), from progress.json


@dataclass
class Snapshot:
    sweep: Sweep
    metric: str
    jobs: list[JobView]
    warning: str | None = None
    taken: float = field(default_factory=time.time)
    panels: list[extras.Panel] = field(default_factory=list)  # lines above the job table (extras.sweep_panels)
    workers_left: int = 0  # a study's workers that may still run trials (a study is not over while one may)

    @property
    def done(self) -> bool:
        return all(j.ended for j in self.jobs) and not self.workers_left

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for j in self.jobs:
            out[j.state] = out.get(j.state, 0) + 1
        return out

    def best_job(self) -> JobView | None:
        scored = [j for j in self.jobs if j.best is not None]
        if not scored:
            return None
        pick = max if default_mode(self.metric) == "max" else min
        return pick(scored, key=lambda j: j.best)  # type: ignore[arg-type, return-value]


# --------------------------------------------------------------------------------------------- reading


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _launcher_waiting(sweep: Sweep) -> bool:
    """A local sweep whose launcher (recorded in sweep.json) is still alive starts the remaining jobs."""
    meta = sweep.meta or {}
    be = S.sweep_backend(sweep)
    return be is not None and be.blocking and bool(meta.get("launcher_pid")) and _alive(meta["launcher_pid"])


def _val_values(run: Run, key: str) -> list[float]:
    return [float(ln[key]) for ln in run.jsonl()
            if ln.get("split") == "val" and isinstance(ln.get(key), (int, float))]


def job_view(st: S.JobStatus, metric: str, keys: list[str], waiting: bool, gone_if_missing: bool) -> JobView:
    """One row. ``waiting``: the local launcher is alive and will start jobs it lists without a job id;
    ``gone_if_missing``: a job with no run directory has ended (the scheduler no longer lists it, or the
    local launcher has exited)."""
    run = st.run
    state = st.state
    if state == MISSING and not run.job_id and waiting:
        state = PENDING  # listed by the local launcher, not started yet
    ended = state in ENDED or (state == MISSING and gone_if_missing)
    view = JobView(label=run.label, state=state, ended=ended, best=st.best, note=as_given(st.note, run.sweep_dir),
                   runtime_s=st.runtime_s,
                   config=" ".join(f"{k.rsplit('.', 1)[-1]}={run.params[k]}" for k in keys if k in run.params))
    vals = _val_values(run, curve_key(metric))
    view.evals, view.latest = len(vals), (vals[-1] if vals else None)
    if run.state in (COMPLETED, PRUNED) and run.final is not None:
        steps = run.metrics.get("steps")
        view.step = view.total = int(steps) if steps is not None else None
        view.samples_per_s = run.metrics.get("train_samples_per_s")
        view.latest = view.latest if view.latest is not None else run.metrics.get(metric)
        view.eta_s = 0.0
        return view
    prog = P.read(run.run_dir)
    step = prog.get("step", st.step)
    view.step = int(step) if isinstance(step, (int, float)) else None
    total = prog.get("total_steps")
    view.total = int(total) if isinstance(total, (int, float)) else None
    view.samples_per_s = prog.get("samples_per_s")
    if state == RUNNING:
        view.eta_s = P.eta_now(prog)
        view.gpu = gpu_cell(prog.get("gpu"))
    return view


def snapshot(path: Path, metric: str, ask_scheduler: bool = True) -> Snapshot:
    """Read the sweep and ask its scheduler once."""
    sweep = load_sweep(path)
    answer = S.query_sweep(sweep) if ask_scheduler else S.Answer(sweep.scheduler)
    statuses = S.sweep_status(sweep, answer, metric)
    keys = varying_params(sweep.runs)
    waiting = _launcher_waiting(sweep)
    be = S.sweep_backend(sweep)
    if be is not None and be.blocking:  # local processes: nothing starts once the launcher has exited
        gone = not waiting
    else:
        gone = answer.answered and answer.complete
    jobs = [job_view(st, metric, keys, waiting, gone) for st in statuses]
    return Snapshot(sweep=sweep, metric=metric, jobs=jobs, warning=answer.warning,
                    panels=extras.sweep_panels(sweep, answer), workers_left=_workers_left(sweep, answer))


def _workers_left(sweep: Sweep, answer: S.Answer) -> int:
    """A study's workers that may still run trials (pending, running, requeued; or unknown while the scheduler
    does not answer): the sweep is not over while any is, even before a worker has made its first trial."""
    study = S.study_of(sweep, answer)
    if study is None:
        return 0
    from pipeline.search.status import ALIVE_WORKER_STATES

    return sum(w.state in ALIVE_WORKER_STATES for w in study.workers)


# ------------------------------------------------------------------------------------------- rendering


def number(v: float | None, digits: int = 4) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _elapsed(sweep: Sweep, now: float) -> float | None:
    created = (sweep.meta or {}).get("created")
    try:
        return max(0.0, now - datetime.fromisoformat(str(created)).timestamp()) if created else None
    except ValueError:
        return None


def summary_lines(snap: Snapshot) -> list[str]:
    """The lines above the table: sweep, counts, elapsed and ETA; the best run so far."""
    counts = snap.counts()
    parts: list[str] = []
    elapsed = _elapsed(snap.sweep, snap.taken)
    if elapsed is not None:
        parts.append(f"elapsed {duration(elapsed)}")
    etas = [j.eta_s for j in snap.jobs if j.state == RUNNING and j.eta_s is not None]
    if etas:
        more = " (running jobs)" if counts.get(PENDING) else ""
        parts.append(f"ETA {duration(max(etas))}{more}")
    lines = [f"{snap.sweep.path} ({snap.sweep.scheduler})", count_line([j.state for j in snap.jobs])]
    if parts:
        lines.append("  ".join(parts))
    best = snap.best_job()
    if best is not None:
        lines.append(f"best {snap.metric} {number(best.best)}: job {best.label}"
                     + (f" ({best.config})" if best.config else ""))
    return lines


def bar_text(step: int | None, total: int | None, width: int) -> str:
    """``███████░░░`` for step/total (plain characters: the same in a terminal and in a log)."""
    if not total or step is None or width <= 0:
        return ""
    filled = int(round(width * min(step, total) / total))
    return "█" * filled + "░" * (width - filled)


def shown_jobs(jobs: list[JobView], max_rows: int | None) -> list[JobView]:
    """At most ``max_rows`` rows, in job order: running jobs first, then failed, pending, the rest."""
    if max_rows is None or len(jobs) <= max_rows:
        return jobs
    rank = {RUNNING: 0, FAILED: 1, CORRUPT: 1, REQUEUED: 2, PENDING: 2}
    keep = {id(j) for j in sorted(jobs, key=lambda j: rank.get(j.state, 3))[:max(1, max_rows)]}
    return [j for j in jobs if id(j) in keep]


def _widths(rows: list[tuple[JobView, str]], width: int) -> dict[str, int]:
    """Column widths for ``width`` terminal columns, in display order: the fixed ones, GPU when a job
    reports it, then the progress bar and the config (the varying overrides) where there is room."""
    w = {
        "job": max([3, *(len(j.label) for j, _ in rows)]),
        "state": max([5, *(len(j.state) for j, _ in rows)]),
        "step": max([4, *(len(s) for _, s in rows)]),
        "progress": 0, "samples/s": 9, "ETA": 8,
        "GPU": max([3, *(len(j.gpu) for j, _ in rows)]) if any(j.gpu for j, _ in rows) else 0,
        "last": 6, "best": 6,
    }
    gap = 2  # columns are two spaces apart
    used = sum(w.values()) + gap * sum(1 for v in w.values() if v)
    config_w = max([0, *(len(j.config) for j, _ in rows)])
    min_bar = 10
    if config_w > 0 and width - used - min_bar - 2 * gap >= min(config_w, 16):
        w["config"] = min(config_w, width - used - min_bar - 2 * gap)
        used += w["config"] + gap
    room = width - used - gap
    if room >= 6:  # a bar narrower than that says nothing the step column does not
        w["progress"] = min(30, room)
    return {name: v for name, v in w.items() if v}


def table(snap: Snapshot, width: int, max_rows: int | None = None) -> Any:
    """The job table for a terminal ``width`` columns wide (at most ``max_rows`` jobs); no cell wraps."""
    from rich.table import Table
    from rich.text import Text

    rows = [(j, f"{j.step}/{j.total}" if j.step is not None and j.total else
             ("" if j.step is None else str(j.step))) for j in shown_jobs(snap.jobs, max_rows)]
    widths = _widths(rows, width)
    t = Table(box=None, padding=(0, 1), pad_edge=False, collapse_padding=False, expand=False,
              header_style="bold")
    for name, w in widths.items():
        justify = "left" if name in ("state", "progress", "config") else "right"
        t.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis", min_width=w, max_width=w)
    for j, step in rows:
        cells = {"job": j.label, "state": Text(j.state.upper() if j.state in ENDED else j.state,
                                               style=STATE_STYLE.get(j.state, "")),
                 "step": step, "progress": bar_text(j.step, j.total, widths.get("progress", 0)),
                 "samples/s": number(j.samples_per_s, 1), "ETA": duration(j.eta_s) if j.state == RUNNING else "",
                 "GPU": j.gpu, "last": number(j.latest), "best": number(j.best), "config": j.config}
        t.add_row(*(cells[name] for name in widths))
    return t


def failure_lines(snap: Snapshot, width: int) -> list[str]:
    """``job 3 FAILED: <note>`` per failed job, wrapped to ``width`` without breaking a `quoted command`."""
    return [line for j in snap.jobs if j.state in (FAILED, CORRUPT) and j.note
            for line in wrap(f"job {j.label} {j.state.upper()}: {j.note}", width)]


def render(snap: Snapshot, width: int, height: int | None = None) -> Any:
    """The whole view; on a terminal ``height`` lines high, a big sweep shows the jobs that matter most."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text(line) for line in summary_lines(snap)]
    parts += [Text(line) for panel in snap.panels for line in panel]
    parts.append(Text(f"last, best: {snap.metric}", style="dim"))
    failures = failure_lines(snap, width)
    max_rows = None if height is None else max(3, height - len(parts) - 3 - min(len(failures), 5))
    parts.append(table(snap, width, max_rows))
    hidden = len(snap.jobs) - len(shown_jobs(snap.jobs, max_rows))
    if hidden:
        parts.append(Text(f"... {hidden} more jobs not shown (pipeline status lists them all)", style="dim"))
    parts += [Text(line, style="red", no_wrap=True, overflow="ignore") for line in failures]
    if snap.warning:
        parts.append(Text(f"warning: {snap.warning}", style="yellow"))
    return Group(*parts)


# ----------------------------------------------------------------------------------------- plain lines


def plain_line(j: JobView, metric: str) -> str:
    """One line about a job, for logs: ``job 2 finished: COMPLETED val_macro_f1=0.8123 in 0:00:41``."""
    if j.ended:
        if j.state == COMPLETED:
            return (f"job {j.label} finished: COMPLETED {metric}={number(j.latest)} best={number(j.best)} "
                    f"in {duration(j.runtime_s)} ({j.step} steps)")
        return f"job {j.label} finished: {j.state.upper()}" + (f": {j.note}" if j.note else "")
    parts = [f"job {j.label} {j.state}"]
    if j.step is not None:
        parts.append(f"step {j.step}/{j.total}" if j.total else f"step {j.step}")
    if j.latest is not None:
        parts.append(f"{metric}={number(j.latest)} best={number(j.best)}")
    if j.samples_per_s:
        parts.append(f"{j.samples_per_s:.1f} samples/s")
    if j.eta_s is not None and j.state == RUNNING:
        parts.append(f"ETA {duration(j.eta_s)}")
    return " ".join(parts)


def _change_key(j: JobView) -> tuple:
    return (j.state, j.evals, j.ended)


def changes(before: dict[str, tuple], snap: Snapshot) -> list[str]:
    """Plain lines for the jobs whose state changed or that logged a new evaluation; updates ``before``."""
    out = []
    for j in snap.jobs:
        key = _change_key(j)
        if before.get(j.label) != key:
            before[j.label] = key
            out.append(plain_line(j, snap.metric))
    return out


# ----------------------------------------------------------------------------------------------- loops


def _console(file: Any = None) -> Any:
    from rich.console import Console

    return Console(file=file, highlight=False, markup=False)


class SweepView:
    """The live view of one sweep, refreshed on demand (the local launcher calls :meth:`refresh` while
    it waits; :func:`watch` calls it in its own loop). A terminal gets a rich ``Live`` table, anything
    else a plain line per change."""

    def __init__(self, path: Path, metric: str = "val_macro_f1", interval: float = 1.0,
                 live: bool | None = None, file: Any = None, ask_scheduler: bool = True) -> None:
        self.path, self.metric, self.interval, self.ask = Path(path), metric, interval, ask_scheduler
        self.out = file or sys.stdout
        self.console = _console(self.out)
        self.live_mode = self.console.is_terminal if live is None else live
        self._live: Any = None
        self._seen: dict[str, tuple] = {}
        self._last = 0.0
        self.snap: Snapshot | None = None

    def refresh(self, force: bool = False) -> Snapshot | None:
        """Re-read the sweep (at most once per interval unless ``force``) and show what changed."""
        if not force and self.snap is not None and time.monotonic() - self._last < self.interval:
            return self.snap
        self._last = time.monotonic()
        try:
            snap = snapshot(self.path, self.metric, self.ask)
        except NotASweepError:
            return self.snap  # the launcher has not written sweep.json yet
        self.snap = snap
        if self.live_mode:
            self._show_live(snap)
        else:
            for line in changes(self._seen, snap):
                print(line, file=self.out, flush=True)
        return snap

    def _show_live(self, snap: Snapshot) -> None:
        from rich.live import Live

        view = render(snap, self.console.width, self.console.height)
        if self._live is None:
            self._live = Live(view, console=self.console, refresh_per_second=2, transient=False,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        else:
            self._live.update(view, refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def watch(path: Path, metric: str = "val_macro_f1", interval: float | None = None, live: bool | None = None,
          file: Any = None, timeout: float | None = None) -> Snapshot:
    """Refresh until every job has ended (or ``timeout`` seconds); returns the last snapshot."""
    first = snapshot(path, metric, ask_scheduler=False)
    be = S.sweep_backend(first.sweep)
    every = interval if interval is not None else (be.poll_s if be is not None else DEFAULT_INTERVAL)
    view = SweepView(path, metric, every, live, file)
    if not view.live_mode:
        print(f"watching {path} ({first.sweep.scheduler}, {len(first.jobs)} jobs, every {every:g} s)",
              file=view.out, flush=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            snap = view.refresh(force=True)
            assert snap is not None
            if snap.done or (deadline is not None and time.monotonic() > deadline):
                return snap
            time.sleep(every)
    finally:
        view.close()
