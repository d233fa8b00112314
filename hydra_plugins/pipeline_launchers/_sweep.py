"""What the launchers share: the run directories of a sweep's jobs and the manifest writers.

The manifest (``<sweep_dir>/sweep.json``) and its fields are defined by :mod:`pipeline.rundir` (the
run-directory contract); the functions here fill it in from a launcher's state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

log = logging.getLogger(__name__)

DEFAULT_SUBDIR = "${hydra.job.num}"
#: the directory that holds ``hydra_plugins/pipeline_launchers`` (the repository root)
PLUGIN_ROOT = str(Path(__file__).resolve().parents[2])


def plugin_pythonpath(current: str | None = None) -> str:
    """PYTHONPATH with the plugin's root first, for jobs that unpickle the launcher.

    A job imports ``hydra_plugins.pipeline_launchers`` to unpickle its launcher; started from another
    working directory than the repository root it only finds it this way (setuptools' ``find:`` does not
    install namespace packages).
    """
    current = os.environ.get("PYTHONPATH", "") if current is None else current
    parts = [p for p in current.split(os.pathsep) if p and p != PLUGIN_ROOT]
    return os.pathsep.join([PLUGIN_ROOT, *parts])


def run_dirs(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[str | None]:
    """The absolute run directory of each job: ``<sweep dir>/<hydra.sweep.subdir>``.

    The usual subdir (``${hydra.job.num}``) costs nothing; any other (``${hydra.job.override_dirname}``)
    is resolved from each job's own config, one composition per job; None where that fails (the CLI then
    falls back to the job number).
    """
    config = launcher.config
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    raw = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")  # type: ignore[union-attr]
    out: list[str | None] = []
    for k, overrides in enumerate(job_overrides):
        num = initial_job_idx + k
        if raw == DEFAULT_SUBDIR:
            out.append(str(sweep_dir / str(num)))
            continue
        try:
            cfg = launcher.hydra_context.config_loader.load_sweep_config(config, list(overrides))
            with open_dict(cfg.hydra.job):
                cfg.hydra.job.num = num
                cfg.hydra.job.id = f"job_id_for_{num}"
            out.append(str(sweep_dir / str(cfg.hydra.sweep.subdir)))
        except Exception as e:  # noqa: BLE001 - a manifest without this run_dir still works
            log.debug("cannot resolve hydra.sweep.subdir for job %d: %s", num, e)
            out.append(None)
    return out


def arrays_of(job_ids: Sequence[str], initial_job_idx: int, scheduler: str) -> list[dict[str, Any]]:
    """Consecutive jobs of one LSF array (``123[1]``, ``123[2]``) or Slurm array (``456_0``) -> one entry."""
    from pipeline.launch import base_id

    arrays: list[dict[str, Any]] = []
    for k, job_id in enumerate(job_ids):
        base = base_id(str(job_id), scheduler)
        if arrays and arrays[-1]["job_id"] == base:
            arrays[-1]["size"] += 1
        else:
            arrays.append({"job_id": base, "size": 1, "first_job_num": initial_job_idx + k})
    return arrays


def folder_of(folder: str | Path) -> Path:
    """The submitit folder without its per-job part: ``<sweep>/.submitit/%j`` -> ``<sweep>/.submitit``."""
    parts = Path(folder).expanduser().absolute().parts
    kept = []
    for part in parts:
        if any(tag in part for tag in ("%j", "%t", "%A", "%a")):
            break
        kept.append(part)
    return Path(*kept)


def manifest(*, scheduler: str, submitit_folder: str | Path, arrays: list[dict[str, Any]],
             jobs: list[dict[str, Any]], gpus_per_job: int, aggregate_job_id: str | None = None,
             **extra: Any) -> dict[str, Any]:
    from pipeline import rundir

    return rundir.manifest(scheduler=scheduler, submitit_folder=folder_of(submitit_folder), arrays=arrays,
                           jobs=jobs, gpus_per_job=gpus_per_job, aggregate_job_id=aggregate_job_id, **extra)


def write(sweep_dir: Path, data: dict[str, Any], initial_job_idx: int) -> dict[str, Any]:
    """Write ``sweep.json``; a batch after the first (initial_job_idx > 0) is added to what is there."""
    from pipeline import rundir
    from pipeline.launch import packing

    if initial_job_idx > 0 and "packs" in data:
        packing.merge_packs(rundir.read_manifest(sweep_dir), data)
    return rundir.write_manifest(sweep_dir, data, initial_job_idx)


def job_entry(num: int, job_id: str | None, run_dir: str | None, stdout: Path | str | None,
              stderr: Path | str | None, overrides: Sequence[str]) -> dict[str, Any]:
    from pipeline import rundir

    return rundir.job_entry(num, job_id, run_dir, stdout, stderr, overrides)
