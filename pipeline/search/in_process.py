"""A study's trials trained in this process: ``run_point`` for :func:`pipeline.search.worker.run_worker` that
composes each trial's config with Hydra's public ``compose`` and calls ``pipeline.train.train.fit`` in the
trial's run directory. ``bench/study.py`` and the end-to-end test use it; a study on a scheduler runs its
trials through the launcher instead (each worker job trains its trials as Hydra jobs).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.search.worker import OnEval, RunPoint


def fit_run_point(sweep_dir: str | Path, base: Sequence[str] = ()) -> RunPoint:
    """``run_point(overrides, trial_number, on_eval)``: compose ``base + overrides``, train in
    ``<sweep_dir>/<trial_number>/``; return the best validation value of ``trainer.monitor``."""
    from pipeline.data.prepare import compose
    from pipeline.train.train import fit

    def run_point(overrides: list[str], number: int, on_eval: OnEval) -> float:
        cfg = compose([*base, *overrides])
        run_dir = Path(sweep_dir) / str(int(number))
        _write_hydra_files(run_dir, cfg, [*base, *overrides])
        return fit(cfg, run_dir, on_eval=on_eval, started=time.time())

    return run_point


def _write_hydra_files(run_dir: Path, cfg: Any, overrides: list[str]) -> None:
    """``.hydra/config.yaml`` and ``overrides.yaml``, as a Hydra job writes them (``pipeline results`` reads them)."""
    from omegaconf import OmegaConf

    from pipeline import atomic, rundir

    atomic.write_text(rundir.hydra_file(run_dir, rundir.CONFIG_YAML), OmegaConf.to_yaml(cfg))
    atomic.write_text(rundir.hydra_file(run_dir, rundir.OVERRIDES_YAML), OmegaConf.to_yaml(OmegaConf.create(overrides)))
