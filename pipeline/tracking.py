"""Experiment tracking behind one small interface: ``none`` (default) or ``wandb``.

Training never fails because the tracker does: every tracker error becomes a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Tracker:
    """The no-op tracker; subclasses send metrics somewhere."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


def start(cfg: Any, run_dir: Path) -> Tracker:
    backend = cfg.tracking.backend
    if backend == "none":
        return Tracker()
    raise ValueError(f"tracking.backend={backend!r} is not one of: none")
