"""Everything the training loop reports, behind one call per step and one per evaluation.

:meth:`StepLog.step` counts the step's samples and seconds (``samples/s`` in ``metrics.json``) and sends the
step to ``progress.json`` (:mod:`pipeline.train.progress`), the progress bar on a terminal (plain log lines
every ``trainer.log_every_steps`` in job logs), ``metrics.jsonl``'s train lines and the tracker at the same
interval, and the attempt's heartbeat (``attempts.json``). :meth:`StepLog.evaluated` sends a validation
result to ``metrics.jsonl``, the tracker and the log; :meth:`StepLog.evaluating` times an evaluation for
the ETA. Evaluations and checkpoint writes are not training: the GPU sampler
(:mod:`pipeline.train.gpu_use`) pauses during them. :meth:`StepLog.close` ends the bar and the sampler and
returns the run's GPU figures.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline import atomic, rundir
from pipeline.train.progress import ProgressFile

log = logging.getLogger(__name__)

#: steps at the start of an attempt left out of samples/s (allocator and kernel warm-up)
WARMUP_STEPS = 2


def epoch_label(state: Any, epochs: int) -> str:
    """The epoch the latest step belongs to, 1-based, over the total: ``1/2`` for every step of the first
    epoch and for the evaluation at its end (``state.epoch`` counts finished epochs)."""
    current = state.epoch + (1 if state.batch else 0)
    return f"{max(current, 1)}/{epochs}" if epochs else str(max(current, 1))


def fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items())


class StepLog:
    """The side channels of one attempt's loop: progress file, bar/log lines, ``metrics.jsonl``, tracker,
    heartbeat and GPU use."""

    def __init__(self, run_dir: Path, trainer: Any, job: Any, state: Any, attempt: Any, tracker: Any,
                 gpu: Any = None) -> None:
        self.run_dir, self.attempt, self.tracker, self.gpu = run_dir, attempt, tracker, gpu
        self.log_every, self.epochs = max(1, trainer.log_every_steps), job.epochs
        self.progress_file = ProgressFile(
            run_dir, job.total_steps, job.epochs, state.step, state.attempt,
            trainer.eval_every_steps if trainer.eval_every_steps > 0 else job.steps_per_epoch,
            len(job.val_set), len(job.test_set), gpu=gpu.progress if gpu else None)
        self.bar = ProgressBar(job.total_steps, state.step, self.log_every, self.progress_file.eta, job.epochs)

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()  # a failed or stopped loop too: the bar ends, the sampler thread stops

    def step(self, state: Any, loss: float, lr: float, samples: int, seconds: float) -> None:
        state.step_time += seconds  # every step: samples/s over whole epochs
        if state.step > self.bar.start + WARMUP_STEPS:
            state.train_samples += samples
            state.train_time += seconds
        self.progress_file.update(state.step, state.epoch, self.bar.rate)
        self.bar.update(state, loss, lr, samples, seconds)
        if state.step % self.log_every == 0:
            atomic.append_jsonl(rundir.metrics_jsonl(self.run_dir), {
                "split": "train", "epoch": state.epoch, "step": state.step, "loss": loss, "lr": lr,
                "samples_per_s": self.bar.rate, "time": time.time()})
            self.tracker.log({"train/loss": loss, "train/lr": lr}, state.step)
        self.attempt.beat(state.step)

    def evaluated(self, state: Any, metrics: dict[str, float]) -> None:
        atomic.append_jsonl(rundir.metrics_jsonl(self.run_dir), {
            "split": "val", "epoch": state.epoch, "step": state.step, **metrics, "time": time.time()})
        self.tracker.log({f"val/{k}": v for k, v in metrics.items()}, state.step)
        log.info("eval step %d epoch %s: %s", state.step, epoch_label(state, self.epochs), fmt(metrics))

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """An evaluation (with its best-checkpoint save): timed for the ETA, no GPU samples."""
        started = time.time()
        with self.not_training():
            yield
        self.progress_file.evaluated(time.time() - started)

    def not_training(self) -> contextlib.AbstractContextManager:
        """A checkpoint write or an evaluation: the GPU sampler pauses."""
        return self.gpu.paused() if self.gpu else contextlib.nullcontext()

    def close(self) -> dict[str, Any] | None:
        """End the bar and the GPU sampler; the run's GPU figures (None on CPU)."""
        self.bar.close()
        gpu, self.gpu = self.gpu, None
        return gpu.finish() if gpu else None


class ProgressBar:
    """A rich progress bar on a terminal; plain log lines every ``log_every`` steps in job logs."""

    def __init__(self, total: int, start: int, log_every: int, eta: Any = None, epochs: int = 0) -> None:
        self.total, self.start, self.log_every, self.epochs = total, start, max(1, log_every), epochs
        self.eta = eta  # () -> seconds left (pipeline.train.progress: steps and evaluations since the (re)start)
        self.rate = 0.0
        self._bar = None
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
            self._task = self._bar.add_task("train", total=total, completed=start, info="")
            self._bar.start()

    def update(self, state: Any, loss: float, lr: float, samples: int, seconds: float) -> None:
        inst = samples / max(seconds, 1e-9)
        self.rate = inst if self.rate == 0 else 0.9 * self.rate + 0.1 * inst
        info = f"loss={loss:.4f} lr={lr:.2e} {self.rate:.1f} samples/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=state.step, info=info)
        elif state.step % self.log_every == 0 or state.step == self.total:
            eta = (self.eta() if self.eta else None) or 0
            log.info("step %d/%d epoch %s %s eta %.0fs", state.step, self.total, epoch_label(state, self.epochs),
                     info, eta)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
