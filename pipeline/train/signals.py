"""Stopping on a signal: SIGUSR2 (the scheduler's run-limit warning), SIGTERM or SIGINT (a kill).

While training, :class:`GracefulStop` routes these to :func:`request_checkpoint`; the loop checks
:func:`stop_requested` at each step boundary, saves ``checkpoints/last`` and calls :meth:`GracefulStop.hand_on`:
USR2 goes on to whoever handled it before (submitit requeues the job); a kill signal, or USR2 with nobody to
requeue, ends the run, and the process exits non-zero.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from pipeline.errors import first_line

log = logging.getLogger(__name__)

_stop_signals: list[int] = []

#: ``metrics.json`` status of a run stopped by a kill signal (or the run limit, where nothing requeues it)
KILLED = "killed"
#: ``metrics.json`` status of a run whose requeue was refused (submitit: timed out too many times)
GAVE_UP = "gave_up"
#: ``attempts.json`` status of an attempt that handed over to a requeue
REQUEUED = "requeued"


def request_checkpoint(signum: int = signal.SIGUSR2, frame: Any = None) -> None:
    """Ask the loop to save ``checkpoints/last`` at the next step boundary, then stop (signal-safe)."""
    _stop_signals.append(signum)


class GracefulStop:
    """Routes SIGUSR2/SIGTERM/SIGINT to ``request_checkpoint`` while training; remembers the old handlers."""

    SIGNALS = (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)

    def __enter__(self) -> GracefulStop:
        _stop_signals.clear()
        self.previous: dict[int, Any] = {}
        if _in_main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, request_checkpoint)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def hand_on(self, record: Callable[[str, str | None], None]) -> None:
        """After the checkpoint: USR2 goes to the previous handler (submitit requeues the job); a kill
        signal, or USR2 with nobody to requeue, ends the run. ``record(status, error)`` writes what
        happened (``metrics.json`` unless requeued, and the attempt's record) before the process exits."""
        # a USR2 wins over a kill signal that came with it (Slurm preempts with TERM, then USR2)
        sig = signal.SIGUSR2 if signal.SIGUSR2 in _stop_signals else _stop_signals[0]
        name = signal.Signals(sig).name
        prev = self.previous.get(sig, signal.SIG_DFL)
        log.warning("stopping on %s after checkpointing; the next start resumes", name)
        if sig == signal.SIGUSR2 and callable(prev):
            record(REQUEUED, None)
            self.__exit__()
            try:
                prev(sig, None)  # submitit: requeue, then exit
            except Exception as e:  # noqa: BLE001 - the requeue was refused: the run ends here
                record(GAVE_UP, first_line(e) or type(e).__name__)
            raise SystemExit(128 + sig)
        record(KILLED, name)
        self.__exit__()
        if sig == signal.SIGUSR2 or prev == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
        raise SystemExit(128 + sig)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def stop_requested() -> bool:
    """A stop signal came since training started (checked at each step boundary)."""
    return bool(_stop_signals)
