"""The environment of a sweep's jobs, built in one place for every scheduler (and for ``pipeline rerun``).

Each backend delivers it its own way (LSF: ``export`` lines of the job script; Slurm: the script's setup
lines; local processes: the environment of the submit call, restored after it), so the Hydra process's own
``os.environ`` is never changed.

- ``PYTHONPATH``: the repository root first, so a job can import ``hydra_plugins.pipeline_launchers`` to
  unpickle its launcher (a namespace package that setuptools does not install);
- ``PIPELINE_GPUS``: the GPUs a job asked for (``gpus_per_node``), when > 0: the job refuses to train on the
  CPU instead (:mod:`pipeline.train.doctor`);
- ``OMP_NUM_THREADS``: for jobs that share this machine (local processes), the cores divided by the jobs
  running at once, unless this process already has it set;
- ``HF_HUB_OFFLINE=1`` unless the config sets ``model.download=true``: jobs load models from the cache;
- ``TMPDIR``: ``<paths.output_root>/.tmp`` (created at submission), on the output root's file system rather
  than a node's small local disk or the home quota.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.launch.payload import plugin_pythonpath

#: the jobs' temporary directory, under the output root
JOB_TMP_DIR = ".tmp"


def core_share(at_once: int) -> int:
    """Threads per job when ``at_once`` jobs share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, at_once))


def job_env(config: Any, params: Mapping[str, Any], at_once: int | None = None) -> dict[str, str]:
    """The variables every job of a launch gets. ``config``: the sweep's config (None: only what the
    launcher settings say); ``at_once``: jobs sharing this machine (None: they run elsewhere)."""
    env = {"PYTHONPATH": plugin_pythonpath()}
    gpus = int(params.get("gpus_per_node") or 0)
    if gpus > 0:
        env["PIPELINE_GPUS"] = str(gpus)
    if at_once is not None:
        env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or str(core_share(at_once))
    if config is None:
        return env
    model = config.get("model") or {}
    if not model.get("download", False):
        env["HF_HUB_OFFLINE"] = "1"
    root = (config.get("paths") or {}).get("output_root")
    if root:
        env["TMPDIR"] = str(Path(str(root)).absolute() / JOB_TMP_DIR)
    return env


def make_tmpdir(env: Mapping[str, str]) -> None:
    """Create the jobs' ``TMPDIR`` (at submission, so the first job finds it)."""
    if env.get("TMPDIR"):
        Path(env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
