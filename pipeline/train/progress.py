"""``<run dir>/progress.json``: where a training job is and how fast it goes, for ETAs.

The training loop writes it (atomically, at most about once a second) from the first step of each attempt
on; ``pipeline status`` and ``pipeline watch`` read it::

    {"step": 120, "total_steps": 400, "epoch": 1, "epochs": 3, "attempt": 1,
     "start_step": 0, "start_time": 1764419338.2, "time": 1764419398.9,
     "seconds_per_step": 0.431, "seconds_per_eval": 6.2, "samples_per_s": 31.6, "eta_s": 141.7,
     "gpu": {"util": 91.5, "mem_gb": 3.2, "peak_mem_gb": 9.41, "mem_total_gb": 79.19}}

``gpu`` is there on a CUDA device only (:mod:`pipeline.train.gpu_use`): the utilisation is the mean since
the previous write, memory is torch's allocator in GiB.

The ETA is measured since the last (re)start of the job: the steps left times the mean training time per
step, plus the evaluations left (validation at every eval point, and the test split at the end) times the
mean time of an evaluation with its checkpoint save. Before the first evaluation of an attempt its time
is estimated from the training throughput (a forward pass over the split, ~1/3 of a training step per
example). A single step's time, what run.log's ETA once used, left out every evaluation and said 11 s
when ~78 s remained.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import rundir

#: an evaluation example costs about a third of a training example (forward pass only)
EVAL_COST = 1 / 3


def evals_left(step: int, total: int, eval_every: int) -> int:
    """Validation runs still to come once ``step`` is done (the loop evaluates after the step it has just
    counted): every ``eval_every`` steps, and one at the last step."""
    if step > total:
        return 0
    every = max(1, eval_every)
    at = total // every - (max(step, 1) - 1) // every
    return at + (0 if total % every == 0 else 1)


class ProgressFile:
    """Writes ``progress.json`` for one attempt of a run (at most every ``every_s`` seconds)."""

    def __init__(self, run_dir: Path, total_steps: int, epochs: int, start_step: int, attempt: int,
                 eval_every: int, val_size: int, test_size: int, every_s: float = 1.0,
                 gpu: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = rundir.progress_json(run_dir)
        self.gpu = gpu  # () -> the "gpu" entry, called at each write
        self.total, self.epochs, self.start_step, self.attempt = total_steps, epochs, start_step, attempt
        self.eval_every, self.val_size, self.test_size = eval_every, val_size, test_size
        self.start_time = time.time()
        self.every_s = every_s
        self.eval_time, self.evals = 0.0, 0
        self.step, self.epoch, self.rate = start_step, 0, 0.0
        self._written = 0.0
        self.update(start_step, 0, None, force=True)

    def evaluated(self, seconds: float) -> None:
        """One validation run (and its checkpoint save) took ``seconds``."""
        self.eval_time += seconds
        self.evals += 1

    def seconds_per_step(self, now: float) -> float | None:
        """Mean training time per step since the (re)start, evaluations left out; None before a step."""
        done = self.step - self.start_step
        if done <= 0:
            return None
        return max(0.0, now - self.start_time - self.eval_time) / done

    def seconds_per_eval(self, per_step: float | None) -> float | None:
        """Mean time of a validation run so far, else an estimate from the training throughput."""
        if self.evals:
            return self.eval_time / self.evals
        if self.rate > 0:
            return self.val_size / self.rate * EVAL_COST
        return None

    def eta(self, now: float | None = None) -> float | None:
        now = time.time() if now is None else now
        per_step = self.seconds_per_step(now)
        if per_step is None:
            return None
        per_eval = self.seconds_per_eval(per_step) or 0.0
        test = per_eval * self.test_size / max(1, self.val_size)
        return (max(0, self.total - self.step) * per_step
                + evals_left(self.step, self.total, self.eval_every) * per_eval + test)

    def update(self, step: int, epoch: int, samples_per_s: float | None, force: bool = False) -> None:
        from pipeline import atomic

        self.step, self.epoch, self.rate = step, epoch, samples_per_s or self.rate
        now = time.time()
        if not force and step < self.total and now - self._written < self.every_s:
            return
        per_step = self.seconds_per_step(now)
        per_eval = self.seconds_per_eval(per_step)
        eta = self.eta(now)
        data = {
            "step": step, "total_steps": self.total, "epoch": epoch, "epochs": self.epochs,
            "attempt": self.attempt, "start_step": self.start_step, "start_time": round(self.start_time, 3),
            "time": round(now, 3), "seconds_per_step": None if per_step is None else round(per_step, 4),
            "seconds_per_eval": None if per_eval is None else round(per_eval, 3),
            "samples_per_s": round(self.rate, 2) if self.rate else None,
            "eta_s": None if eta is None else round(eta, 1),
        }
        if self.gpu is not None:
            data["gpu"] = self.gpu()
        atomic.write_json(self.path, data)
        self._written = now


def read(run_dir: Path | None) -> dict[str, Any]:
    """``progress.json`` as a dict ({} when absent or torn)."""
    if run_dir is None:
        return {}
    try:
        data = json.loads(rundir.progress_json(run_dir).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def eta_now(progress: dict[str, Any]) -> float | None:
    """Seconds left for a running job as of the file's last write (the job rewrites it about every second
    while it steps; during an evaluation the estimate holds still rather than counting down to zero)."""
    eta = progress.get("eta_s")
    return max(0.0, float(eta)) if isinstance(eta, (int, float)) else None
