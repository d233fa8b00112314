"""Does an evaluation file overlap the run's training split? Compared by hash of the cleaned text.

``pipeline evaluate`` rebuilds the run's split from its saved ``.hydra/config.yaml`` (the same
``pipeline.data.data.load_splits`` the job ran, so the same cleaning and the same seed) and hashes each
training text; a file that shares texts with it scores the model on what it learned from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pipeline import rundir


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def train_hashes(run_dir: Path) -> set[str]:
    """Hashes of the run's training texts (raises OSError/DataError when its data cannot be found)."""
    from omegaconf import OmegaConf

    from pipeline.data.data import load_splits

    path = rundir.hydra_file(run_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing, so the run's training split cannot be rebuilt")
    cfg = OmegaConf.load(path)
    splits = load_splits(cfg)
    return {text_hash(t) for t in splits.train.text}


def overlap(run_dir: Path | None, texts: list[str]) -> dict[str, Any]:
    """``{"checked": bool, "in_train": n, "share": f, "note": why not checked}`` for cleaned ``texts``."""
    if run_dir is None:
        return {"checked": False, "note": "a bare checkpoint folder: no run config to rebuild the split from"}
    try:
        seen = train_hashes(run_dir)
    except Exception as e:  # the data moved, the config is gone: say so, still evaluate
        return {"checked": False, "note": str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}
    hits = sum(1 for t in texts if text_hash(t) in seen)
    return {"checked": True, "in_train": hits, "share": round(hits / max(len(texts), 1), 4)}
