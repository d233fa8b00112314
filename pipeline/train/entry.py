"""What a training job does around ``fit``: one-line errors for bad input, the GPU check's exit code.

(What ``run.py`` does before Hydra starts, the malloc re-exec and the command-line check, is
:mod:`pipeline.cli.run_command_line`.)
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.train.train import OnEval

log = logging.getLogger(__name__)


def quiet_submitit_copy() -> None:
    """In a submitit job, print submitit's lines once: its logger has its own stdout handler, and Hydra's
    root handler (configured for the job) would print every one of them a second time."""
    sub = logging.getLogger("submitit")
    if sub.handlers:
        sub.propagate = False


def run_job(cfg: Any, *, started: float | None = None, on_eval: OnEval | None = None) -> float:
    """Run ``fit`` (``started`` and ``on_eval`` as :func:`pipeline.train.train.fit` takes them); a
    PipelineError becomes one logged line (and exit 2 for a single run); a job that cannot use the GPUs it
    was given exits 1, in a sweep too."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from pipeline.errors import PipelineError
    from pipeline.train.doctor import GpuUnusable
    from pipeline.train.train import fit

    quiet_submitit_copy()
    try:
        return fit(cfg, started=started, on_eval=on_eval)
    except GpuUnusable as e:
        # the node, not the config, is wrong: the job must end failed (exit 1) for the scheduler too, not as a
        # sweep job that "completed" with a failed result (metrics.json holds the line for pipeline status)
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except PipelineError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", e)
        if HydraConfig.get().mode == RunMode.RUN:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        raise
