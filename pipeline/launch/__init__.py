"""Launching and watching sweeps: what every scheduler backend answers with.

``SchedJob`` (one job as the scheduler reported it, its word mapped onto the generic ``S_*`` states) and
``Answer`` (the outcome of one query) are what :meth:`pipeline.launch.backend.Backend.query` returns; the
backends themselves (one class per scheduler, chosen in one place) are in :mod:`pipeline.launch.backend`.
Job states are then decided in one place, :func:`pipeline.launch.state.decide`.

Nothing here imports submitit: ``pipeline status`` stays fast.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

#: generic scheduler states (each backend maps its own words onto these)
S_PENDING, S_RUNNING, S_DONE, S_EXIT, S_UNKNOWN = "pending", "running", "done", "exit", "unknown"


@dataclass(frozen=True)
class SchedJob:
    """One job (or array element) as the scheduler reported it."""

    job_id: str  # LSF "123" / "123[4]", Slurm "456" / "456_3", local: the pid
    raw: str  # the scheduler's own word (PEND, RUN, EXIT, COMPLETED, alive, ...)
    state: str  # one of S_*
    exit_code: str | None = None
    name: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in (S_DONE, S_EXIT)


@dataclass
class Answer:
    """The outcome of one query. ``answered`` is False when the scheduler could not be asked or failed."""

    scheduler: str
    jobs: dict[str, SchedJob] = field(default_factory=dict)
    answered: bool = False
    # the answer lists every job asked about that has not ended (bjobs -a, squeue), so a job missing from it
    # has ended, even if the scheduler has forgotten it (bjobs does after CLEAN_PERIOD)
    complete: bool = False
    not_found: set[str] = field(default_factory=set)  # ids the scheduler says it does not know (any more)
    warning: str | None = None  # one line for the user when not answered, or when a fallback was used
    commands: list[list[str]] = field(default_factory=list)
    fallback: str | None = None  # the dialect actually used, when the configured one was rejected


#: runs a command: (exit code, stdout, stderr); a missing binary reads as 127, a hang as 124
Runner = Callable[[list[str]], tuple[int, str, str]]


def run_command(argv: list[str], timeout: float = 60.0) -> tuple[int, str, str]:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: no answer within {timeout:.0f} s"
    except OSError as e:
        return 126, "", f"{argv[0]}: {e}"
    return p.returncode, p.stdout, p.stderr
