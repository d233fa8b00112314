"""Experiment tracking behind one small interface: ``none`` (default) or ``wandb``.

    python run.py tracking=wandb                         # offline: <run dir>/wandb/offline-run-*/
    wandb sync outputs/multirun/<sweep>/*/wandb/offline-run-*   # later, from a node with internet
    python run.py tracking=wandb tracking.mode=online    # needs WANDB_API_KEY (or `wandb login`)

A wandb run is one training job: project and entity from the config or WANDB_PROJECT/WANDB_ENTITY,
``group`` the sweep (WANDB_RUN_GROUP, else the multirun folder's name, else ``experiment_name``), name the
job's overrides joined, config the resolved Hydra config, a history row at each evaluation and the final
val/test metrics in the summary. The run id is kept in ``<run dir>/wandb_id.txt`` and resumed
(``resume="allow"``), so a requeued job that resumes from ``checkpoints/last`` also continues its wandb
run; offline, each attempt writes one ``offline-run-*`` folder with that id and ``wandb sync`` joins them
in order of start time.

Training never fails because the tracker does: every tracker error becomes one logged warning and the
run goes on untracked. No secret is written anywhere: the API key stays in the environment.
"""

from __future__ import annotations

import logging
import netrc
import os
import secrets
import string
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline import rundir
from pipeline.errors import PipelineError, first_line

log = logging.getLogger(__name__)

MODES = ("offline", "online", "disabled")
DEFAULT_PROJECT = "bert-hpc-pipeline"


class Tracker:
    """The no-op tracker; subclasses send metrics somewhere."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ checks


def wandb_mode(cfg: Any) -> str:
    """``tracking.mode``, unless WANDB_MODE in the environment says otherwise (e.g. a kill switch)."""
    return os.environ.get("WANDB_MODE") or str(cfg.tracking.get("mode") or "offline")


def _has_login(base_url: str) -> bool:
    """``wandb login`` stores the key in ~/.netrc (or $NETRC) under the API host."""
    host = urlparse(base_url).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_tracking(cfg: Any) -> None:
    """Preflight: a tracking setting that cannot work fails here, before any job runs or is submitted."""
    backend = cfg.tracking.backend
    if backend not in ("none", "wandb"):
        raise PipelineError(f"tracking.backend={backend!r} is not one of: none, wandb")
    if backend != "wandb":
        return
    mode = wandb_mode(cfg)
    where = "WANDB_MODE" if os.environ.get("WANDB_MODE") else "tracking.mode"
    if mode not in MODES:
        raise PipelineError(f"{where}={mode!r} is not one of: {', '.join(MODES)}")
    if mode == "online" and not os.environ.get("WANDB_API_KEY") and \
            not _has_login(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")):
        raise PipelineError(
            f"tracking=wandb with {where}=online needs a W&B API key: export WANDB_API_KEY=... (or run "
            "`wandb login` once), or use tracking.mode=offline and `wandb sync` the run folders later"
        )


# ------------------------------------------------------------------------------------------------- wandb


class WandbTracker(Tracker):
    """Forwards to a wandb run; the first error turns it into a no-op with one warning."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self.run is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as e:  # tracking is never worth a failed training run
            log.warning("wandb %s failed (%s: %s); training goes on without tracking", what, type(e).__name__,
                        first_line(e) or type(e).__name__)
            self.run = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.run is not None:
            self._guard("log", self.run.log, dict(metrics), step=int(step))

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            self._guard("summary", self.run.summary.update, dict(values))

    def finish(self) -> None:
        if self.run is not None:
            self._guard("finish", self.run.finish)
            self.run = None


def _hydra_job() -> tuple[str | None, list[str]]:
    """(sweep folder name if this is a multirun job, the job's own overrides) from Hydra, if it runs."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except Exception:  # fit() called without Hydra (tests, notebooks)
        return None, []
    sweep = Path(str(hc.sweep.dir)).name if hc.mode == RunMode.MULTIRUN else None
    return sweep, [str(o) for o in hc.overrides.task]


def run_identity(cfg: Any, run_dir: Path) -> dict[str, Any]:
    """project, entity, group and name of this job's wandb run."""
    sweep, overrides = _hydra_job()
    return {
        "project": cfg.tracking.get("project") or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
        "entity": cfg.tracking.get("entity") or os.environ.get("WANDB_ENTITY") or None,
        "group": os.environ.get("WANDB_RUN_GROUP") or sweep or cfg.get("experiment_name") or None,
        "name": ",".join(overrides) or run_dir.name,
    }


def run_id(run_dir: Path) -> str:
    """The wandb run id of this run dir: made once, kept in ``wandb_id.txt``, reused by every attempt."""
    from pipeline import atomic

    path = Path(run_dir) / rundir.WANDB_ID_TXT
    if path.is_file():
        existing = path.read_text().strip()
        if existing:
            return existing
    alphabet = string.ascii_lowercase + string.digits  # what wandb's own ids use
    new = "".join(secrets.choice(alphabet) for _ in range(8))
    atomic.write_text(path, new + "\n")
    return new


def _start_wandb(cfg: Any, run_dir: Path) -> Tracker:
    import wandb
    from omegaconf import OmegaConf

    mode = wandb_mode(cfg)
    folder = Path(cfg.tracking.get("dir") or run_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)  # wandb itself would fall back to the cwd silently
    ident = run_identity(cfg, run_dir)
    rid = run_id(run_dir)
    run = wandb.init(
        **ident, id=rid, resume="allow", mode=mode, dir=str(folder), job_type="train",
        config=OmegaConf.to_container(cfg, resolve=True),
        settings=wandb.Settings(console="off", quiet=True, save_code=False),
    )
    log.info("wandb run %s (%s, project %s, group %s) in %s", rid, mode, ident["project"], ident["group"],
             getattr(run, "dir", folder))
    return WandbTracker(run)


def start(cfg: Any, run_dir: Path) -> Tracker:
    backend = cfg.tracking.backend
    if backend == "none":
        return Tracker()
    if backend != "wandb":
        raise ValueError(f"tracking.backend={backend!r} is not one of: none, wandb")
    try:
        return _start_wandb(cfg, Path(run_dir))
    except Exception as e:  # wandb missing, bad settings, unwritable folder, no network...
        log.warning("wandb could not start (%s: %s); training goes on without tracking", type(e).__name__,
                    first_line(e) or type(e).__name__)
        return Tracker()
