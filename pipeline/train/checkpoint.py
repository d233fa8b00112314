"""Checkpoints: ``checkpoints/last`` (everything needed to resume exactly) and ``checkpoints/best``.

``last/state.pt`` is one explicit dict (model, optimizer, scheduler, scaler, counters, best-so-far, RNG
states, config); ``best/`` is a Hugging Face ``save_pretrained`` folder (model + tokenizer + id2label), so
``AutoModelForSequenceClassification.from_pretrained(best)`` loads it anywhere. Both are built in a temp
folder and swapped in by ``atomic.write_dir``: a kill or a full disk mid-write leaves the previous copy
loadable (a full disk or quota raises ``atomic.DiskFull``, which ``fit`` turns into the run's error line).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import atomic, faults, rundir

STATE_FILE = "state.pt"


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
        with open(tmp / STATE_FILE, "wb") as f:  # through Python's file: a full disk keeps its errno
            torch.save(state, f)

    atomic.write_dir(last_dir(run_dir), fill)
    faults.hit("after_checkpoint")


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
        atomic.write_json(tmp / rundir.BEST_JSON, info)

    atomic.write_dir(best_dir(run_dir), fill)
