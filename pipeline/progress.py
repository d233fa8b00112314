"""``<run dir>/progress.json``: where a training job is and how fast it goes, for ETAs.

The training loop writes it (atomically, at most about once a second) from the first step of each attempt
on; ``pipeline status`` and ``pipeline watch`` read it::

    {"step": 120, "total_steps": 400, "epoch": 1, "epochs": 3, "attempt": 1,
     "start_step": 0, "start_time": 1764419338.2, "time": 1764419398.9,
     "seconds_per_step": 0.506, "samples_per_s": 31.6, "eta_s": 141.7}

``seconds_per_step`` is measured since the last (re)start of the job, evaluations and checkpoints
included: the wall time of this attempt's loop divided by the steps it has made. A single step's time
(what run.log's ETA once used) leaves out the evaluations and checkpoint saves between steps and
undercounts by a factor of several on small runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

FILE = "progress.json"


def seconds_per_step(start_step: int, start_time: float, step: int, now: float) -> float | None:
    """Mean wall time per step since the (re)start; None before the first step of this attempt."""
    done = step - start_step
    if done <= 0:
        return None
    return max(0.0, now - start_time) / done


def eta_seconds(total: int, step: int, per_step: float | None) -> float | None:
    if per_step is None:
        return None
    return max(0, total - step) * per_step


class ProgressFile:
    """Writes ``progress.json`` for one attempt of a run (at most every ``every_s`` seconds)."""

    def __init__(self, run_dir: Path, total_steps: int, epochs: int, start_step: int, attempt: int,
                 every_s: float = 1.0) -> None:
        self.path = Path(run_dir) / FILE
        self.total, self.epochs, self.start_step, self.attempt = total_steps, epochs, start_step, attempt
        self.start_time = time.time()
        self.every_s = every_s
        self._written = 0.0
        self.update(start_step, 0, None, force=True)

    def update(self, step: int, epoch: int, samples_per_s: float | None, force: bool = False) -> None:
        from pipeline import atomic

        now = time.time()
        if not force and step < self.total and now - self._written < self.every_s:
            return
        per_step = seconds_per_step(self.start_step, self.start_time, step, now)
        eta = eta_seconds(self.total, step, per_step)
        atomic.write_json(self.path, {
            "step": step, "total_steps": self.total, "epoch": epoch, "epochs": self.epochs,
            "attempt": self.attempt, "start_step": self.start_step, "start_time": round(self.start_time, 3),
            "time": round(now, 3), "seconds_per_step": None if per_step is None else round(per_step, 4),
            "samples_per_s": None if not samples_per_s else round(samples_per_s, 2),
            "eta_s": None if eta is None else round(eta, 1),
        })
        self._written = now


def read(run_dir: Path | None) -> dict[str, Any]:
    """``progress.json`` as a dict ({} when absent or torn)."""
    if run_dir is None:
        return {}
    try:
        data = json.loads((Path(run_dir) / FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def eta_now(progress: dict[str, Any]) -> float | None:
    """Seconds left for a running job as of the file's last write (the job rewrites it about every second
    while it steps; during an evaluation the estimate holds still rather than counting down to zero)."""
    eta = progress.get("eta_s")
    return max(0.0, float(eta)) if isinstance(eta, (int, float)) else None
