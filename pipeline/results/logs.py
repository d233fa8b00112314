"""Where a job's log is and its last lines: for ``pipeline logs`` and the failed jobs of ``report.html``.

A job's log: the scheduler's stdout/stderr files named in ``sweep.json``, else ``<run>/run.log``, else any
other ``<run>/*.log``. The scheduler's own live view of a buffered log (LSF's ``bpeek``) is the CLI's
(:mod:`pipeline.cli.scheduler_logs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pipeline import rundir
from pipeline.results.runs import Run

#: lines of a failed job's log that ``pipeline logs SWEEP`` and ``report.html`` show
FAILURE_TAIL_LINES = 20
Stream = Literal["stdout", "stderr"]


def declared_log(run: Run, stream: Stream) -> Path | None:
    """The scheduler's ``stream`` file of the job, as ``sweep.json`` names it (it may not exist yet)."""
    path = run.stderr if stream == "stderr" else run.stdout
    return Path(path) if path else None


def log_paths(run: Run, stream: Stream | None = None) -> list[Path]:
    """Where a job's log may be, in order: the scheduler's ``stream`` file (both, stderr first, for
    None), then ``<run>/run.log`` and the run directory's other ``*.log`` files."""
    streams: tuple[Stream, ...] = (stream,) if stream else ("stderr", "stdout")
    paths = [p for p in (declared_log(run, s) for s in streams) if p is not None]
    if run.run_dir is not None:
        paths.append(run.run_dir / rundir.RUN_LOG)
        paths += sorted(p for p in run.run_dir.glob("*.log") if p.name != rundir.RUN_LOG)
    return paths


def first_log(run: Run) -> Path | None:
    """The first of :func:`log_paths` that holds something."""
    for path in log_paths(run):
        try:
            if path.is_file() and path.stat().st_size > 0:
                return path
        except OSError:
            continue
    return None


def tail_lines(path: Path, n: int | None) -> str:
    """The last ``n`` lines of a file (all of it for n in (None, 0)), reading only the end of big files."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if not n:
            f.seek(0)
            data = f.read()
        else:
            block, data = 65536, b""
            while size > 0 and data.count(b"\n") <= n:
                step = min(block, size)
                size -= step
                f.seek(size)
                data = f.read(step) + data
    text = data.decode("utf-8", "replace")
    if n:
        text = "".join(text.splitlines(keepends=True)[-n:])
    return text


def log_tail(run: Run, lines: int = FAILURE_TAIL_LINES) -> tuple[Path | None, str]:
    """The first non-empty log of ``run`` and its last ``lines`` lines."""
    path = first_log(run)
    if path is None:
        return None, ""
    try:
        return path, tail_lines(path, lines)
    except OSError:
        return None, ""
