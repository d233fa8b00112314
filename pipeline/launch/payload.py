"""One pickle per sweep for what every job shares, one small callable per job.

hydra-submitit-launcher pickles the launcher (config, Hydra context, task function) and Hydra's singleton
state into every job's pickle: 50-200 KB each, so a 2,500-job sweep writes hundreds of MB and spends most
of its submission time pickling. Here the launcher and the singleton state go once into
``<submitit folder>/launcher_<uuid>.pkl``, and each job runs a :class:`SweepJob` (its overrides, job number
and that file's path; about 1 KB), for every scheduler.

``SweepJob`` lives in ``pipeline`` (installed), so a job unpickles it anywhere; it then puts the repository
root on ``sys.path`` before it loads the payload, whose launcher is a class of the Hydra plugin
``hydra_plugins.pipeline_launchers`` (a namespace package setuptools does not install). ``pipeline rerun``
reads the same files.
"""

from __future__ import annotations

import functools
import os
import sys
import uuid
from pathlib import Path
from typing import Any

#: the directory that holds ``hydra_plugins/pipeline_launchers`` (the repository root)
PLUGIN_ROOT = str(Path(__file__).resolve().parents[2])


def plugin_pythonpath(current: str | None = None) -> str:
    """PYTHONPATH with the plugin's root first (for the jobs' environment)."""
    current = os.environ.get("PYTHONPATH", "") if current is None else current
    parts = [p for p in current.split(os.pathsep) if p and p != PLUGIN_ROOT]
    return os.pathsep.join([PLUGIN_ROOT, *parts])


def plugins_importable() -> None:
    """Make ``hydra_plugins.pipeline_launchers`` importable in this process (before unpickling a launcher)."""
    if (Path(PLUGIN_ROOT) / "hydra_plugins" / "pipeline_launchers").is_dir() and PLUGIN_ROOT not in sys.path:
        sys.path.insert(0, PLUGIN_ROOT)


def write(folder: Path, launcher: Any, singleton_state: Any) -> Path:
    import cloudpickle

    from pipeline import atomic

    path = folder / f"launcher_{uuid.uuid4().hex}.pkl"
    atomic.write_bytes(path, cloudpickle.dumps((launcher, singleton_state)))
    return path


@functools.lru_cache(maxsize=2)
def load(path: str) -> tuple[Any, Any]:
    """(launcher, Hydra's singleton state) of a sweep."""
    import pickle

    plugins_importable()
    with open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301 - our own file, written by the launcher


class SweepJob:
    """The callable a scheduler job runs for one sweep point; checkpointable (submitit requeues it).

    ``started``: ``time.time()`` when this point began inside a job that runs several
    (:class:`pipeline.launch.packing.PackedJob`); its start-up is measured from there."""

    def __init__(self, payload: Path | str, overrides: list[str], job_dir_key: str, job_num: int,
                 job_id: str | None = None) -> None:
        self.payload = str(payload)
        self.overrides = list(overrides)
        self.job_dir_key = job_dir_key
        self.job_num = job_num
        self.job_id = job_id or f"job_id_for_{job_num}"

    def __call__(self, started: float | None = None) -> Any:
        launcher, state = load(self.payload)
        return launcher(self.overrides, self.job_dir_key, self.job_num, self.job_id, state, started=started)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Run this job again after a requeue; ``pipeline.train.train.fit`` resumes from checkpoints/last."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)

    def __repr__(self) -> str:
        return f"SweepJob(#{self.job_num}: {' '.join(self.overrides)})"
