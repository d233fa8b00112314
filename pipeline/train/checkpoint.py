"""Checkpoints: ``checkpoints/last`` (everything needed to resume exactly) and ``checkpoints/best``.

``last/state.pt`` is one explicit dict (model, optimizer, scheduler, scaler, counters, best-so-far, RNG
states, config); ``best/`` is a Hugging Face ``save_pretrained`` folder (model + tokenizer + id2label), so
``AutoModelForSequenceClassification.from_pretrained(best)`` loads it anywhere. Both are built in a temp
folder and swapped in by ``atomic.write_dir``: a kill mid-write leaves the previous copy loadable.
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import atomic, faults, rundir
from pipeline.errors import PipelineError

STATE_FILE = "state.pt"


class CheckpointError(PipelineError):
    """The output file system refused a checkpoint (full, read-only, gone)."""


def last_dir(run_dir: Path) -> Path:
    return rundir.checkpoint_dir(run_dir, rundir.LAST_CHECKPOINT)


def best_dir(run_dir: Path) -> Path:
    return rundir.checkpoint_dir(run_dir, rundir.BEST_CHECKPOINT)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_last(run_dir: Path, state: dict[str, Any]) -> None:
    def fill(tmp: Path) -> None:
        faults.hit("checkpoint_write")  # tests: die with the new copy half written
        try:
            torch.save(state, tmp / STATE_FILE)
        except RuntimeError as e:  # torch reports a full disk as "unexpected pos ..."
            st = os.statvfs(tmp)
            if st.f_bavail * st.f_frsize < 64 << 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from e
            raise

    _write(last_dir(run_dir), fill)
    faults.hit("after_checkpoint")


def _write(folder: Path, fill: Any) -> None:
    """``atomic.write_dir`` with a disk-full or read-only error turned into a one-line message."""
    try:
        atomic.write_dir(folder, fill)
    except (OSError, RuntimeError) as e:  # torch.save reports ENOSPC as RuntimeError
        reason = getattr(e, "strerror", None) or str(e).strip().splitlines()[0]
        raise CheckpointError(
            f"could not write checkpoint {folder}: {reason}; the previous checkpoint is intact - free space "
            f"on that file system or point PIPELINE_OUTPUT_ROOT elsewhere, then rerun to resume"
        ) from e


def load_last(run_dir: Path) -> dict[str, Any] | None:
    """The resume state, or None if this run dir has none (a fresh start)."""
    folder = atomic.resolve_dir(last_dir(run_dir))
    if folder is None or not (folder / STATE_FILE).is_file():
        return None
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)


def save_best(run_dir: Path, model: Any, tokenizer: Any, info: dict[str, Any]) -> None:
    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic.write_json(tmp / "best.json", info)

    _write(best_dir(run_dir), fill)
