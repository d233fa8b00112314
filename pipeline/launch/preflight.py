"""Checks that run before anything is trained or submitted: no torch import, about a second.

Each failure is a ``PipelineError`` whose message names the problem and the fix. The Hydra callback in
``pipeline.launch.callbacks`` runs them at the start of every run and sweep (on the sweep's base config), and the
``fast_basic`` sweeper (the default) runs them for every distinct combination of swept values that a check
reads, before the launcher submits anything (``pipeline.launch.sweep_preflight``). Launchers run none.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from pipeline.data import data_report
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


def check_data(cfg: Any) -> None:
    """Reads, cleans and splits ``cfg.data``: every data problem surfaces here, before any job."""
    from pipeline.data.data import load_splits

    splits = load_splits(cfg)
    log.info(data_report.summary(data_report.for_config(cfg)))
    warning = short_training(cfg, len(splits.train))
    if warning:
        log.warning(warning)


#: fewer optimizer steps than this fine-tune a pretrained model too little on small data: on fake news
#: (784 training rows) MiniLM scored below a TF-IDF baseline after 49 steps and above it after 98
#: (docs/results.md, "Default recipe")
MIN_STEPS = 80


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
    return (f"{steps} optimizer step{'s' * (steps != 1)} in all ({how}): fewer than {MIN_STEPS} fine-tune too "
            f"little on small data (MiniLM on fake news scored below a TF-IDF baseline after 49; "
            f"docs/results.md): raise {knob}")


def check_model(cfg: Any) -> None:
    """The model loads where the jobs run: a local folder, or a hub id cached or fetchable
    (``model.download``; :mod:`pipeline.launch.model_source`)."""
    from pipeline.launch import model_source

    model_source.check(cfg.model)


def check(cfg: Any, runs_here: bool = True) -> None:
    """Everything that can be known wrong before a job starts."""
    check_settings(cfg, runs_here)
    check_model(cfg)
    check_output_root(cfg.paths.output_root)
    check_data(cfg)
