"""What ``run.py`` does before Hydra starts: the malloc settings (a re-exec), ``--help``, and one line with
exit 2 for an unknown key or option on the command line (:mod:`pipeline.launch.overrides_check`).

This is the command-line layer (it prints the help of :mod:`pipeline.cli.run_help`); the job itself is
:func:`pipeline.train.entry.run_job`.
"""

from __future__ import annotations

import os
import sys

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
