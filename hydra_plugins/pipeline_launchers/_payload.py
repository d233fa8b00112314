"""One pickle per sweep for what every job shares, one small pickle per job.

hydra-submitit-launcher pickles the launcher (config, Hydra context, task function) and Hydra's
singleton state into every job's pickle: 50-200 KB each, so a 2,500-job sweep writes hundreds of MB and
spends most of its submission time pickling. Here the launcher and the singleton state go once into
``<submitit folder>/launcher_<uuid>.pkl``, and each job pickles a ``SweepJob`` (its overrides, job number
and that file's path; about 1 KB).
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import Any


def write(folder: Path, launcher: Any, singleton_state: Any) -> Path:
    import cloudpickle

    from pipeline import atomic

    path = folder / f"launcher_{uuid.uuid4().hex}.pkl"
    atomic.write_bytes(path, cloudpickle.dumps((launcher, singleton_state)))
    return path


@functools.lru_cache(maxsize=2)
def load(path: str) -> tuple[Any, Any]:
    import pickle

    with open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301 - our own file, written by the launcher


class SweepJob:
    """The callable submitit runs for one job of a sweep; checkpointable (submitit requeues it)."""

    def __init__(self, payload: Path, overrides: list[str], job_dir_key: str, job_num: int, job_id: str):
        self.payload = str(payload)
        self.overrides = list(overrides)
        self.job_dir_key = job_dir_key
        self.job_num = job_num
        self.job_id = job_id

    def __call__(self) -> Any:
        launcher, state = load(self.payload)
        return launcher(self.overrides, self.job_dir_key, self.job_num, self.job_id, state)

    def checkpoint(self) -> Any:
        """Run this job again after a requeue; ``pipeline.train.train.fit`` resumes from checkpoints/last."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)

    def __repr__(self) -> str:
        return f"SweepJob(#{self.job_num}: {' '.join(self.overrides)})"
