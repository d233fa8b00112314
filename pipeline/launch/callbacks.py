"""Hydra callbacks (``hydra.callbacks`` in configs/hydra/default.yaml).

``Preflight`` checks the config before a run or sweep starts, so bad input fails in one line before any
job is launched or submitted.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hydra.experimental.callback import Callback


def fail(message: str) -> None:
    """A bad-input error: one line on stderr, exit 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


class Preflight(Callback):
    def _check(self, config: Any, runs_here: bool) -> None:
        from pipeline.errors import PipelineError
        from pipeline.launch import preflight

        try:
            preflight.check(config, runs_here=runs_here)
        except PipelineError as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(str(e))

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, runs_here=True)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from pipeline.launch.backend import runs_here

        self._check(config, runs_here=runs_here(config.hydra.launcher))


class AggregateAtEnd(Callback):
    """At the end of a blocking sweep: write ``<sweep>/results/`` and print the compare table.

    Non-blocking launches (LSF with ``wait: false``) return before any job ran; there a dependent
    scheduler job runs ``pipeline aggregate`` once the arrays have ended.
    """

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        import logging
        from pathlib import Path

        if not config.hydra.launcher.get("wait", True) or config.hydra.launcher.get("dry_run", False):
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            from pipeline.results import results, tables, views

            sweep = results.load_sweep(sweep_dir)
            metric = "val_" + config.trainer.get("monitor", "macro_f1")
            results.aggregate(sweep, metric)
            views.print_results(tables.console(), results.run_table(sweep.runs, metric), str(sweep_dir))
            print(f"results: {sweep_dir / 'results'}   compare: pipeline results {sweep_dir} --by-seed",
                  flush=True)
        except Exception as e:  # the sweep itself succeeded; a table problem must not fail it
            logging.getLogger(__name__).warning("could not aggregate %s: %s", sweep_dir, e)
