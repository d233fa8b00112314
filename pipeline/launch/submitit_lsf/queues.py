"""What the cluster's queues can take, checked when a sweep is submitted.

- ``parallelism_line``: a sweep that asks to run more jobs at once than the queue has GPUs for is told, in
  one line, how many run at once and in how many waves (and the sweep's wall time where the minutes per
  run are known). LSF would simply keep the rest pending; the user should know before waiting.
- ``unknown_queue_error``: a ``queue`` or ``aggregate_queue`` that ``bqueues`` does not list is refused
  before anything is submitted (else bsub refuses the aggregation job after the sweep is already in).
- ``list_queues`` runs ``bqueues`` (the one next to ``bsub``); ``check_queues`` puts the two together.

Everything but ``list_queues`` is a pure function of its arguments.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.launch.submitit_lsf.script import LsfConfigError


def _duration(minutes: float) -> str:
    """``150`` -> ``"2 h 30 min"``; ``45`` -> ``"45 min"``."""
    total = math.ceil(minutes)
    hours, mins = divmod(total, 60)
    return f"{hours} h {mins:02d} min" if hours else f"{mins} min"


def parallelism_line(jobs: int, *, queue: str | None, queue_gpus: int | None, gpus_per_job: int,
                     array_parallelism: int, minutes_per_job: float | None = None) -> str | None:
    """One line when fewer of the ``jobs`` array elements can run at once than asked for
    (``min(array_parallelism, jobs)``) because the queue has ``queue_gpus`` GPUs in all; None otherwise
    (a CPU job, an unknown GPU count, or enough GPUs). Other users' jobs only make the waves longer."""
    if not queue_gpus or gpus_per_job <= 0 or jobs <= 0:
        return None
    at_once = queue_gpus // gpus_per_job
    if at_once < 1 or min(array_parallelism, jobs) <= at_once:
        return None
    waves = math.ceil(jobs / at_once)
    line = (f"[lsf] queue {queue or '(default)'} has {queue_gpus} GPUs: at most {at_once} of these {jobs} jobs "
            f"run at once ({gpus_per_job} GPU each), in {waves} waves")
    if minutes_per_job:
        line += f"; at {minutes_per_job:g} min a job the sweep takes at least {_duration(waves * minutes_per_job)}"
    return line


def parallelism_note(params: Mapping[str, Any], jobs: int, runs_per_job: int = 1) -> str | None:
    """``parallelism_line`` from the launcher's settings (``hydra.launcher.*``) for a sweep of ``jobs``
    array elements of ``runs_per_job`` runs each (minutes from ``expected_run_min`` where set)."""
    per_run = params.get("expected_run_min")
    return parallelism_line(
        jobs, queue=params.get("queue"), queue_gpus=params.get("queue_gpus"),
        gpus_per_job=int(params.get("gpus_per_node") or 0),
        array_parallelism=int(params.get("array_parallelism") or 1),
        minutes_per_job=float(per_run) * runs_per_job if per_run else None)


def parse_bqueues(text: str) -> list[str]:
    """Queue names from ``bqueues -w`` output (a ``QUEUE_NAME ...`` header, then one queue a line)."""
    names = []
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] != "QUEUE_NAME":
            names.append(parts[0])
    return names


def unknown_queue_error(wanted: Mapping[str, str | None], listed: Sequence[str]) -> str | None:
    """The one line for the first setting (``queue``, ``aggregate_queue``) naming a queue not in ``listed``."""
    for key, queue in wanted.items():
        if queue and queue not in listed:
            other = "the sweep's own queue" if key == "aggregate_queue" else "the cluster's default queue"
            return (f"No such queue {queue} (hydra.launcher.{key}): this cluster's queues are "
                    f"{', '.join(listed)} (bqueues); set hydra.launcher.{key} to one of them, or null for {other}")
    return None


def list_queues(timeout_s: float = 30.0) -> list[str] | None:
    """The queues ``bqueues -w`` lists, asking the ``bqueues`` next to the ``bsub`` on PATH (so a test's
    fake bsub is never checked against another cluster); None when it cannot tell (no such command, an
    error, no answer): then nothing is refused and bsub stays the judge."""
    bsub = shutil.which("bsub")
    bqueues = Path(bsub).parent / "bqueues" if bsub else None
    if bqueues is None or not bqueues.is_file():
        return None
    try:
        proc = subprocess.run([str(bqueues), "-w"], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    names = parse_bqueues(proc.stdout) if proc.returncode == 0 else []
    return names or None


def check_queues(params: Mapping[str, Any], aggregate: bool) -> None:
    """Refuse (``LsfConfigError``, one line) a ``queue`` or, when an aggregation job is submitted, an
    ``aggregate_queue`` that ``bqueues`` does not list; one ``bqueues`` call, none when no queue is named."""
    wanted = {"queue": params.get("queue")}
    if aggregate:
        wanted["aggregate_queue"] = params.get("aggregate_queue")
    if not any(wanted.values()):
        return
    listed = list_queues()
    line = unknown_queue_error(wanted, listed) if listed else None
    if line:
        raise LsfConfigError(line)
