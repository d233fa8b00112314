"""Hydra callbacks (``hydra.callbacks`` in configs/hydra/default.yaml).

``Preflight`` checks the config before a run or sweep starts, so bad input fails in one line before any
job is launched or submitted.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hydra.experimental.callback import Callback


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


class Preflight(Callback):
    def _check(self, config: Any, runs_here: bool) -> None:
        from pipeline import preflight
        from pipeline.errors import PipelineError

        try:
            preflight.check(config, runs_here=runs_here)
        except PipelineError as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            _fail(str(e))

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, runs_here=True)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, runs_here=config.get("cluster_name", "local") == "local")
