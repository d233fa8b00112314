"""Checks that run before anything is trained or submitted, in about a second.

Each failure is a ``PipelineError`` whose message names the problem and the fix. The Hydra callback in
``pipeline.launch.callbacks`` runs them at the start of every run and sweep (on the sweep's base config), and the
``fast_basic`` sweeper (the default) runs them for every distinct combination of swept values that a check
reads, and the storage check for all jobs of the sweep, before the launcher submits anything
(``pipeline.launch.sweep_preflight``). Launchers run none.

Imports: pandas and ``tokenizers`` for the data check, ``huggingface_hub`` for a hub model; torch only in
:func:`check_device`, for a run on this machine that asks for CUDA or fp16 (only torch can tell whether a
GPU is visible and what it supports).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)


def check_output_root(root: str) -> None:
    """Create the output root if needed and prove a file can be written there (read-only mounts and
    root's permission bypass make ``os.access`` unreliable)."""
    path = Path(root).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as e:
        raise PipelineError(
            f"output root '{path}' is not writable ({e.strerror or e}): set PIPELINE_OUTPUT_ROOT or "
            f"paths.output_root to a folder you can write (on DTU: /work3/$USER/...)"
        ) from None


def check_device(cfg: Any) -> None:
    """Only where the job will run here: a login node has no GPU, the cluster's nodes do."""
    t = cfg.trainer
    if t.device == "cuda" or t.precision == "fp16":
        from pipeline.train.device import pick_device, pick_precision

        pick_precision(t.precision, pick_device(t.device))


def check_settings(cfg: Any, runs_here: bool = True) -> None:
    """The cheap checks: config values, device (where the job runs here), tracking."""
    from pipeline import config as config_lib
    from pipeline.train.tracking import check_tracking

    try:
        config_lib.check(cfg)
    except ValueError as e:
        raise PipelineError(str(e)) from None
    if runs_here:
        check_device(cfg)
    check_tracking(cfg)


def check_model(cfg: Any) -> None:
    """The model loads where the jobs run: a local folder, or a hub id cached or fetchable
    (``model.download``; :mod:`pipeline.launch.model_source`)."""
    from pipeline.launch import model_source

    model_source.check(cfg.model)


def training_rows(cfg: Any) -> int:
    """Rows of the training split (the split is memoised in the process: a second call is free)."""
    from pipeline.data.data import load_splits

    return len(load_splits(cfg).train)


def check_data(cfg: Any, jobs: str = "") -> int:
    """Reads, cleans and splits ``cfg.data`` (every data problem surfaces here, before any job) and logs
    the data report's line, followed by ``jobs`` (which jobs of a sweep it is about). Returns the number
    of training rows."""
    from pipeline.data import data_report

    rows = training_rows(cfg)
    log.info(" ".join(x for x in (data_report.summary(data_report.for_config(cfg)), jobs) if x))
    return rows


#: fewer optimizer steps than this may fine-tune a pretrained model too little on a small dataset; why 80:
#: docs/results.md, "Default recipe"
MIN_STEPS = 80
#: the settings :func:`short_training` reads besides the data (the sweep preflight keys on them)
SHORT_TRAINING_KEYS = ("trainer.epochs", "trainer.max_steps", "trainer.batch_size", "trainer.grad_accum",
                       "model.pretrained", "model.path")


def short_training(cfg: Any, n_train: int) -> str | None:
    """One warning line when a pretrained model gets fewer than ``MIN_STEPS`` optimizer steps."""
    from pipeline.config import optimizer_steps

    t = cfg.trainer
    _, steps = optimizer_steps(t, n_train)
    if not (cfg.model.pretrained or cfg.model.path) or steps >= MIN_STEPS:
        return None
    if t.max_steps > 0:
        how, knob = "trainer.max_steps", "trainer.max_steps"
    else:
        epochs = f"{t.epochs} epoch" + "s" * (t.epochs != 1)
        how, knob = f"{n_train:,} training rows / batch {t.batch_size * t.grad_accum} x {epochs}", "trainer.epochs"
    return (f"{steps} optimizer step{'s' * (steps != 1)} in all ({how}), fewer than {MIN_STEPS} (docs/results.md, "
            f"\"Default recipe\"): a pretrained model may be fine-tuned too little; raise {knob}")


def is_sweep(cfg: Any) -> bool:
    """True for the base config of a sweep (``-m``), as Hydra's callbacks get it."""
    from omegaconf import OmegaConf

    return OmegaConf.is_config(cfg) and str(OmegaConf.select(cfg, "hydra.mode", default="")).endswith("MULTIRUN")


def output_folder(cfg: Any, sweep: bool = False) -> str:
    """Where the runs are written: Hydra's sweep or run folder, else ``paths.output_root``."""
    from omegaconf import OmegaConf

    folder = OmegaConf.select(cfg, "hydra.sweep.dir" if sweep else "hydra.run.dir", default=None) \
        if OmegaConf.is_config(cfg) else None
    return str(folder or cfg.paths.output_root)


def check_storage(cfg: Any) -> None:
    """One run's footprint against the free space of its output folder (:mod:`pipeline.launch.storage`)."""
    from pipeline.launch import storage

    footprint = storage.run_footprint(cfg)
    if footprint is None:
        return  # a hub model the job downloads: its size is not known here
    warning = storage.check(storage.Estimate([(footprint, 1)], 1), output_folder(cfg))
    if warning:
        log.warning(warning)


def check(cfg: Any, runs_here: bool = True) -> None:
    """Everything that can be known wrong before a job starts. A sweep's storage is checked for all its
    jobs together by the sweep preflight, not here on its base config."""
    check_settings(cfg, runs_here)
    check_model(cfg)
    check_output_root(cfg.paths.output_root)
    if not is_sweep(cfg):
        check_storage(cfg)
    warning = short_training(cfg, check_data(cfg))
    if warning:
        log.warning(warning)
