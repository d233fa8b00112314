"""What each command's table shows, as a :class:`pipeline.results.tables.Grid` (the renderer lives there).

``results`` (and the table a blocking sweep prints at its end), ``status`` and ``predict`` all build a
Grid here and print it with :func:`pipeline.results.tables.show`, so they share one set of fitting rules.

``status``'s note column shows what happened (a note up to its first ``;``); a note the table cannot show
whole (how to resume, a long error) is said in full under the table, wrapped to the terminal's width
without breaking a `quoted command`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.results.formats import footer_lines, human_rows
from pipeline.results.tables import Column, Fitted, Grid, show, text_width, wrap
from pipeline.rundir import BAD_STATES, COMPLETED, PRUNED, RUNNING, STATES

#: short headers for the long metric names (``--columns`` takes either)
SHORT_METRIC = {"val_macro_f1": "val_f1", "val_accuracy": "val_acc", "test_macro_f1": "test_f1",
                "test_accuracy": "test_acc", "wall_time_s": "time_s", "train_samples_per_s": "samples/s",
                "gpu_hours": "gpu_h", "best_epoch": "best_ep", "pruned_at_step": "pruned_at"}

STATE_STYLE = {"completed": "green", "pruned": "green", "running": "cyan", "pending": "yellow", "requeued": "yellow",
               "failed": "bold red", "corrupt": "bold magenta", "missing": "dim", "baseline": "blue"}


def metric_header(metric: str) -> str:
    return SHORT_METRIC.get(metric, metric)


def _state_styles() -> dict[str, str]:
    return {**STATE_STYLE, **{k.upper(): v for k, v in STATE_STYLE.items()}}


# ---------------------------------------------------------------------------------------------- results


def _metric_priority(table: Any, name: str) -> int:
    """The ranking metric stays longest; a pruned run's step as long as its state; then validation metrics."""
    if name == table.metric:
        return 7
    return 5 if name == "pruned_at_step" else 1 if name.startswith("val_") else 0


def results_grid(table: Any, title: str | None = None) -> Grid:
    """The compare table (:class:`pipeline.results.compare.Table`, one row per run or per configuration)."""
    names, rows = human_rows(table)
    metrics = set(table.display) | {"gpu_hours"}
    columns = []
    for name in names:
        if name in metrics:
            col = Column(name, metric_header(name), right=True, aliases=(name,), priority=_metric_priority(table, name))
        elif name in table.params:
            col = Column(name, right=False, param=True, priority=6)  # they tell the rows apart
        elif name == "error":
            col = Column(name, text=True, priority=2, min_width=24)
        elif name in (table.id_column, "sweep"):
            ident = name == table.id_column
            col = Column(name, right=ident, keep=ident, priority=6)
        elif name == "best":  # a * on the best row (also the best line under the table)
            col = Column(name, "", priority=6)
        else:  # n, state
            col = Column(name, right=name == "n", priority=5)
        columns.append(col)
    styles = []
    for i, row in enumerate(table.rows):
        state = str(row.get("state", ""))
        styles.append("bold green" if i == table.best else "red" if state in BAD_STATES else
                      "dim" if state in ("missing", "running") else "")
    return Grid(columns=columns, rows=rows, title=title, row_styles=styles)


def print_results(console: Any, table: Any, title: str | None = None, pick: Sequence[str] | None = None) -> None:
    """The compare table, then its footer: totals, GPU use, the best row."""
    show(console, results_grid(table, title), pick, footer=footer_lines(table))


# ----------------------------------------------------------------------------------------------- status


def _num(v: float | None, digits: int = 4) -> str:
    if v is None:
        return ""
    return f"{v:.0f}" if digits == 0 else f"{v:.{digits}f}"


def duration(seconds: float | None) -> str:
    """``1:02:03``; "" for None."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_cells(st: Any) -> tuple[str, str, str]:
    """``pipeline status``'s step (``120/400``), ETA (``0:01:18``) and GPU (``91% 3.2G``) cells of one job
    (:class:`pipeline.launch.sweep_status.JobStatus`); a running job's come from its ``progress.json``."""
    from pipeline.train import progress as P

    prog = {} if st.state != RUNNING else P.read(st.run.run_dir)
    step = prog.get("step", st.step)
    total = prog.get("total_steps") or (st.step if st.state in (COMPLETED, PRUNED) else None)
    text = "" if step is None else (f"{int(step)}/{int(total)}" if total else f"{int(step)}")
    eta = P.eta_now(prog) if prog else None
    return text, duration(eta), gpu_cell(prog.get("gpu"))


def count_line(states: Sequence[str]) -> str:
    """``7 jobs: 6 completed, 1 failed`` (states in their fixed order)."""
    counts = {s: list(states).count(s) for s in set(states)}
    n = len(states)
    return f"{n} job{'' if n == 1 else 's'}: " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts.get(s))


def gpu_cell(gpu: Any) -> str:
    """A running job's GPU use from its ``progress.json``: ``91% 3.2G`` (utilisation, memory in use)."""
    if not isinstance(gpu, dict):
        return ""
    util, mem = gpu.get("util"), gpu.get("mem_gb")
    parts = [f"{util:.0f}%" if isinstance(util, (int, float)) else "",
             f"{mem:.1f}G" if isinstance(mem, (int, float)) else ""]
    return " ".join(p for p in parts if p)


def as_given(note: str | None, sweep_path: Path) -> str | None:
    """``note`` with the sweep's absolute path written as the user gave it (shorter, and what they typed)."""
    full = str(Path(sweep_path).resolve())
    return note.replace(full, str(sweep_path)) if note and full != str(sweep_path) else note


def short_note(note: str | None) -> str:
    """What the note column shows: what happened, up to the first ``;`` (the rest is said under the table)."""
    return (note or "").split("; ", 1)[0]


def status_grid(statuses: Sequence[Any], metric: str, title: str | None = None) -> Grid:
    """One row per job (:class:`pipeline.launch.sweep_status.JobStatus`); a GPU column when a running job
    reports its GPU use."""
    cells = [progress_cells(st) for st in statuses]
    with_gpu = any(gpu for _, _, gpu in cells)
    columns = [
        Column("job", right=True, keep=True, priority=9),
        Column("job_id", "job id", priority=2),
        Column("state", priority=8),
        Column("scheduler", priority=1),
        Column("runtime", right=True, priority=4),
        Column("epoch", right=True, priority=3),
        Column("step", right=True, priority=5),
        Column("eta", "ETA", right=True, priority=5),
        *([Column("gpu", "GPU", right=True, priority=4)] if with_gpu else []),
        Column("best", f"best {metric_header(metric)}", right=True, priority=7, aliases=(f"best {metric}",)),
        Column("note", text=True, priority=6, min_width=20),
    ]
    rows = [[st.run.label, st.run.job_id or "", st.state.upper(), st.sched, duration(st.runtime_s),
             _num(st.epoch, 0), step, eta, *([gpu] if with_gpu else []), _num(st.best), short_note(st.note)]
            for st, (step, eta, gpu) in zip(statuses, cells, strict=True)]
    return Grid(columns=columns, rows=rows, title=title, cell_styles={"state": _state_styles()})


def notes_not_shown(statuses: Sequence[Any], fitted: Fitted, picked: bool) -> list[tuple[str, str]]:
    """``(job, note)`` of the notes the fitted status table did not show whole."""
    keys = [c.key for c in fitted.columns]
    if "note" not in keys and picked:
        return []  # --columns left the notes out on purpose
    width = fitted.widths[keys.index("note")] if "note" in keys else 0
    return [(st.run.label, st.note) for st in statuses
            if st.note and (short_note(st.note) != st.note or text_width(st.note) > width)]


def print_status(console: Any, sweep_path: Path, statuses: Sequence[Any], metric: str, title: str | None = None,
                 pick: Sequence[str] | None = None, header: Sequence[str] = ()) -> None:
    """``pipeline status``'s table: ``header`` lines (panels) above it, the full notes under it."""
    fitted = show(console, status_grid(statuses, metric, title), pick, header=header)
    for job, note in notes_not_shown(statuses, fitted, bool(pick)):
        for line in wrap(f"job {job}: {as_given(note, sweep_path)}", console.width):
            console.print(line, style="red", soft_wrap=True)


# ---------------------------------------------------------------------------------------------- predict


def predict_grid(rows: Sequence[dict[str, Any]], labels: Sequence[str], title: str | None = None) -> Grid:
    """One line per text: label, its probability, the start of the text; the other classes if there is room."""
    columns = [Column("label", keep=True, priority=9), Column("prob", right=True, keep=True, priority=9),
               Column("text", text=True, keep=True, priority=9, min_width=30)]
    columns += [Column(f"p_{lab}", lab, right=True, keep=True, group="the probability of each class")
                for lab in labels]
    cells = [[row["label"], f"{row['probs'][row['label']]:.3f}", " ".join(str(row["text"]).split()),
              *(f"{row['probs'][lab]:.3f}" for lab in labels)] for row in rows]
    return Grid(columns=columns, rows=cells, title=title, hint="a wider terminal or --format json shows it")
