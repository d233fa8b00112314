"""A running job's output as the scheduler shows it, for ``pipeline logs`` before the log file exists.

LSF writes a job's ``-o`` file only when the job ends (unless ``LSB_STDOUT_DIRECT=Y``); meanwhile ``bpeek``
shows what the job has printed. This is the one place the CLI talks to a scheduler about logs; which
command (if any) shows a running job's output is the sweep's scheduler backend's answer
(:meth:`pipeline.launch.backend.Backend.peek_command`).
"""

from __future__ import annotations

import subprocess
from typing import Any

from pipeline.cli.common import warn, write
from pipeline.errors import first_line


def peek_command(sweep: Any, job_id: str, follow: bool) -> list[str] | None:
    """The command that shows a running job's output (LSF: ``bpeek [-f] ID``); None: the scheduler has none."""
    from pipeline.launch.sweep_status import sweep_backend

    be = sweep_backend(sweep)
    return be.peek_command(job_id, follow) if be is not None else None


def live_output(sweep: Any, run: Any, follow: bool, lines: int | None) -> bool:
    """Print (or follow) an unfinished job's output through its scheduler; False when it has no such view
    or did not answer (the caller then reads the log files)."""
    argv = peek_command(sweep, run.job_id, follow) if run.job_id else None
    return _peek(argv, follow, lines) if argv else False


def _peek(argv: list[str], follow: bool, n: int | None) -> bool:
    """Run the peek command (its last ``n`` lines; ``follow``: until the job ends or Ctrl-C); True if it
    answered."""
    name, job_id = argv[0], argv[-1]
    try:
        if follow:
            return subprocess.run(argv).returncode == 0
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired) as e:
        warn(f"{name} {job_id}: {e}")
        return False
    except KeyboardInterrupt:
        return True
    if p.returncode != 0:
        warn(f"{name} {job_id}: {first_line(p.stderr or p.stdout) or f'exit code {p.returncode}'}")
        return False
    text = p.stdout
    if n:
        text = "".join(text.splitlines(keepends=True)[-n:])
    write(text)
    return True
