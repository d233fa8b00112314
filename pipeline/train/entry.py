"""What ``run.py`` does around ``fit``: process set-up and one-line errors for bad input."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

log = logging.getLogger(__name__)

# glibc returns freed blocks to the OS eagerly by default; training then pays a 7-8 s/step slow start on
# CPU while it keeps mapping and unmapping activations. These must be in the environment when the process
# starts, so run.py re-executes itself once with them set (PIPELINE_NO_REEXEC=1 turns that off).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def reexec_with_malloc_settings() -> None:
    if os.environ.get("PIPELINE_NO_REEXEC") or all(k in os.environ for k in MALLOC_ENV):
        return
    if not sys.argv or not sys.argv[0].endswith(".py"):
        return  # not started as a script (e.g. imported): nothing to re-execute
    env = {**os.environ, **MALLOC_ENV}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def quiet_submitit_copy() -> None:
    """In a submitit job, print submitit's lines once: its logger has its own stdout handler, and Hydra's
    root handler (configured for the job) would print every one of them a second time."""
    sub = logging.getLogger("submitit")
    if sub.handlers:
        sub.propagate = False


#: Hydra flags that bring in other config folders or names: their groups and keys are not ours to check
_OTHER_CONFIGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")


def check_command_line(argv: list[str] | None = None) -> None:
    """``--help`` prints the pipeline's own help; an override naming an unknown key or group option is
    one line on stderr and exit 2, before Hydra composes (see pipeline.launch.overrides_check)."""
    from pathlib import Path

    argv = sys.argv[1:] if argv is None else argv
    config_dir = Path(__file__).resolve().parents[2] / "configs"
    if "--help" in argv or "-h" in argv:
        from pipeline.cli.run_help import help_text

        print(help_text(config_dir))
        sys.exit(0)
    if any(a.split("=", 1)[0] in _OTHER_CONFIGS for a in argv):
        return
    from pipeline.launch.overrides_check import OverrideError, check

    try:
        check(argv, config_dir)
    except OverrideError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


def run_job(cfg: Any, *, started: float | None = None) -> float:
    """Run ``fit``; a PipelineError becomes one logged line (and exit 2 for a single run); a job that cannot
    use the GPUs it was given exits 1, in a sweep too. ``started``: when this run began inside a job that
    runs several (the launcher passes it to a task function that takes it)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from pipeline.errors import PipelineError
    from pipeline.train.doctor import GpuUnusable
    from pipeline.train.train import fit

    quiet_submitit_copy()
    try:
        return fit(cfg, started=started)
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
