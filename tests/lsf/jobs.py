"""Functions the executor tests submit (the jobs import this module, so it stays light)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise RuntimeError(message)


def die(code: int = 3) -> None:
    """Exit without a result pickle (what a killed or crashed job leaves behind)."""
    time.sleep(0.2)
    os._exit(code)


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


class Resumable:
    """Counts to ``total``, one step per 0.1 s, keeping its progress in ``state``; at the warning signal it
    stops at the next step boundary, then hands the signal to the handler that was there before (the
    way ``pipeline.train.train.fit`` does), which checkpoints and requeues."""

    def __init__(self, state: str, total: int, slow_checkpoint_s: float = 0.0) -> None:
        self.state = state
        self.total = total
        self.slow_checkpoint_s = slow_checkpoint_s

    def __call__(self) -> dict[str, Any]:
        path = Path(self.state)
        step = int(path.read_text()) if path.exists() else 0
        starts = path.with_suffix(".starts")
        starts.write_text(str(int(starts.read_text()) + 1 if starts.exists() else 1))
        stop: list[int] = []
        previous = signal.signal(signal.SIGUSR2, lambda s, f: stop.append(s))
        try:
            while step < self.total:
                time.sleep(0.1)
                step += 1
                path.write_text(str(step))
                if stop:
                    signal.signal(signal.SIGUSR2, previous)
                    previous(stop[0], None)  # checkpoint + requeue + exit
        finally:
            signal.signal(signal.SIGUSR2, previous)
        return {"step": step, "starts": int(starts.read_text()), "job": os.environ.get("LSB_JOBID"),
                "index": os.environ.get("LSB_JOBINDEX")}

    def checkpoint(self) -> Any:
        import submitit

        time.sleep(self.slow_checkpoint_s)
        return submitit.helpers.DelayedSubmission(self)
