"""What every ``pipeline`` command shares: one-line errors and warnings, the console, reading sweeps and
checking ``--metric`` / ``--mode`` / ``--format``.

Only the standard library and typer at import time; the results reader is imported when a command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

METRIC_HELP = "Metric to rank by: val_macro_f1, val_accuracy, val_loss, test_macro_f1, wall_time_s, gpu_hours, ..."


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, then exit (2: bad input, 1: something failed)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def write(text: str) -> None:
    """``text`` on stdout as it is, ending with a newline."""
    sys.stdout.write(text)
    if text and not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def console(stderr: bool = False) -> Any:
    from pipeline.results.tables import console as make

    return make(stderr)


def load_sweeps(paths: list[Path]) -> list[Any]:
    """The sweeps (or single runs) at ``paths``; exit 2 with one line when one is not a sweep."""
    from pipeline.results.runs import NotASweepError
    from pipeline.results.runs import load_sweeps as load

    try:
        return load(paths)
    except NotASweepError as e:
        fail(str(e))


def check_mode(mode: str | None) -> None:
    if mode is not None and mode not in ("max", "min"):
        fail(f"--mode must be max or min, not {mode!r}")


def check_format(fmt: str, formats: tuple[str, ...]) -> None:
    if fmt not in formats:
        fail(f"--format must be {' or '.join(formats) if len(formats) == 2 else 'one of ' + ', '.join(formats)}, "
             f"not {fmt!r}")


def metric_for(metric: str | None, sweeps: list[Any]) -> str:
    """``--metric``, else what the sweeps' runs monitored (:func:`pipeline.results.metrics.default_metric`);
    one line and exit 2 when none of their runs has it."""
    from pipeline.results.metrics import default_metric

    chosen = metric or default_metric(sweeps)
    check_metric(chosen, [r for sw in sweeps for r in sw.runs])
    return chosen


def check_metric(metric: str, runs: list[Any]) -> None:
    from pipeline.results.metrics import UnknownMetricError
    from pipeline.results.metrics import check_metric as check

    try:
        check(metric, runs)
    except UnknownMetricError as e:
        fail(str(e))


def split_columns(columns: str | None) -> list[str] | None:
    """``--columns a,b`` -> ``["a", "b"]``; None when not given."""
    return [c.strip() for c in columns.split(",") if c.strip()] if columns else None


def disk_line(runs: list[Any]) -> str:
    from pipeline.train.retention import disk_line as line

    return line(runs)
