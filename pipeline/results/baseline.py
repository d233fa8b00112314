"""A TF-IDF + logistic-regression baseline on the same split the runs used.

``fit_baseline(train, val, test)`` is the pure core (DataFrames with ``text`` and ``label``). The glue,
:func:`baseline_for_run`, rebuilds the run's split with ``pipeline.data.data.load_splits(cfg)`` from the run's
saved ``.hydra/config.yaml`` and caches the result per dataset and split settings, so ``pipeline results
--baseline`` fits once per dataset, not once per call.

The regularisation strength C is picked on the validation split (macro-F1), as the fine-tuned runs pick
their best checkpoint on it; the test split is scored once, with that C.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pipeline import rundir

BASELINE_VERSION = 1
C_GRID = (1.0, 10.0, 100.0)
NAME = "tfidf+logreg"


def fit_baseline(train_df: Any, val_df: Any, test_df: Any, c_grid: tuple[float, ...] = C_GRID,
                 max_features: int = 50_000) -> dict[str, Any]:
    """Fit on train, pick C on val (macro-F1), score val and test: ``{"val": {...}, "test": {...}, ...}``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    vec = TfidfVectorizer(sublinear_tf=True, min_df=2, ngram_range=(1, 2), max_features=max_features)
    x_train = vec.fit_transform(train_df["text"].astype(str))
    x_val = vec.transform(val_df["text"].astype(str))
    x_test = vec.transform(test_df["text"].astype(str))
    y_train = train_df["label"].astype(str).to_numpy()
    y_val = val_df["label"].astype(str).to_numpy()
    y_test = test_df["label"].astype(str).to_numpy()

    def scores(model: Any, x: Any, y: Any) -> dict[str, float]:
        pred = model.predict(x)
        probs = model.predict_proba(x)
        return {
            "loss": float(log_loss(y, probs, labels=model.classes_)),
            "accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        }

    best = None
    for c in c_grid:
        model = LogisticRegression(C=c, max_iter=1000, solver="newton-cg").fit(x_train, y_train)
        val = scores(model, x_val, y_val)
        if best is None or val["macro_f1"] > best[1]["macro_f1"]:
            best = (c, val, model)
    assert best is not None, "c_grid is empty"
    c, val, model = best
    return {
        "model": NAME,
        "C": c,
        "features": int(x_train.shape[1]),
        "val": val,
        "test": scores(model, x_test, y_test),
        "sizes": {"train": len(y_train), "val": len(y_val), "test": len(y_test)},
    }


def baseline_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The baseline's numbers under the results table's metric names (``val_macro_f1``, ...)."""
    out = {}
    for split in ("val", "test"):
        for key, value in (result.get(split) or {}).items():
            out[f"{split}_{key}"] = value
    return out


def _load_config(run_dir: Path) -> Any:
    from omegaconf import OmegaConf

    path = rundir.hydra_file(run_dir, rundir.CONFIG_YAML)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved config, so the run's data split cannot be rebuilt")
    return OmegaConf.load(path)


def cache_key(cfg: Any, data_sha256: str | None) -> str:
    """What the split depends on: the data config (file, columns, fractions, split_seed, ...) and data."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg.data, resolve=False)
    spec = {"data": data, "data_sha256": data_sha256, "v": BASELINE_VERSION, "C": list(C_GRID)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def baseline_for_run(run_dir: str | os.PathLike, cache_dir: str | os.PathLike,
                     data_sha256: str | None = None) -> dict[str, Any]:
    """The baseline on ``run_dir``'s split, from ``cache_dir`` when already computed."""
    from pipeline import atomic

    run_dir = Path(run_dir)
    cfg = _load_config(run_dir)
    name = str(cfg.data.get("name", "data"))
    cache = Path(cache_dir) / f"baseline-{name}-{cache_key(cfg, data_sha256)}.json"
    if cache.is_file():
        try:
            return json.loads(cache.read_text())
        except ValueError:
            pass  # a damaged cache is recomputed
    from pipeline.data.data import load_splits

    splits = load_splits(cfg)
    result = fit_baseline(splits.train, splits.val, splits.test)
    result.update({"dataset": name, "data_sha256": splits.data_sha256, "from_run": str(run_dir)})
    try:
        atomic.write_json(cache, result)
    except OSError:
        pass  # a read-only sweep copy: still report the numbers
    return result
