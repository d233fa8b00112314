"""``attempts.json``: the wall time of every attempt at a run, so GPU-hours count what the cluster charged.

One record per process that worked on a run directory (a first start, each requeue, each rerun, failed
and killed ones included), appended when the attempt starts and rewritten atomically as it runs: at every
checkpoint, at least every ``HEARTBEAT_S`` seconds of training, and when it ends. A SIGKILLed attempt
thus loses at most one heartbeat of its time, not everything after its last checkpoint. A record::

    {"id": "3f2a...", "start": "2026-12-01T21:00:00+00:00", "wall_s": 812.4, "status": "killed",
     "step": 92, "host": "n-62-20-1", "job_id": "1234[5]"}

``status`` is ``running`` while the attempt runs (and stays so when it was SIGKILLed), then one of
``completed``, ``failed``, ``killed``, ``requeued``, ``gave_up``. ``pipeline results`` sums ``wall_s``
over the records for a run's GPU-hours (requested GPUs x time). ``pipeline rerun`` leaves the file in place
even when it starts a run over: the cluster charged those attempts too.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline import rundir

#: the most attempt time a SIGKILL can lose from the record (``PIPELINE_ATTEMPT_HEARTBEAT_S``: tests)
HEARTBEAT_S = float(os.environ.get("PIPELINE_ATTEMPT_HEARTBEAT_S", "30"))


class Attempt:
    """This process's record in ``<run_dir>/attempts.json``."""

    def __init__(self, run_dir: Path, started: float | None = None) -> None:
        from pipeline.train.run_info import scheduler_job

        self.path = rundir.attempts_json(run_dir)
        self.started = time.time() if started is None else started
        self._written = 0.0
        self.record: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "start": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
            "wall_s": 0.0, "status": "running", "step": None,
            "host": socket.gethostname(), "job_id": scheduler_job()[1], "pid": os.getpid(),
        }
        self._write()

    def beat(self, step: int | None = None, force: bool = False) -> None:
        """Record the time so far (``force``: now, e.g. at a checkpoint; else at most every HEARTBEAT_S)."""
        if step is not None:
            self.record["step"] = step
        if force or time.time() - self._written >= HEARTBEAT_S:
            self._write()

    def end(self, status: str, step: int | None = None) -> None:
        self.record["status"] = status
        self.beat(step, force=True)

    def _write(self) -> None:
        from pipeline import atomic

        self._written = time.time()
        self.record["wall_s"] = round(self._written - self.started, 3)
        records = [r for r in read(self.path.parent) if r.get("id") != self.record["id"]]
        try:
            atomic.write_json(self.path, [*records, self.record])
        except OSError:
            pass  # a full disk must not stop training: the time record is bookkeeping


def read(run_dir: Path) -> list[dict[str, Any]]:
    """The attempt records of a run directory ([] if none or unreadable)."""
    try:
        data = json.loads(rundir.attempts_json(run_dir).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def total_wall_s(run_dir: Path) -> float | None:
    """Seconds over all attempts at the run, None for a run directory without a record (older runs)."""
    records = read(run_dir)
    if not records:
        return None
    return float(sum(r["wall_s"] for r in records if isinstance(r.get("wall_s"), (int, float))))
