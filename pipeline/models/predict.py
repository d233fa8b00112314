"""Predictions and evaluation from a fine-tuned checkpoint (``<run>/checkpoints/best``).

Offline: ``HF_HUB_OFFLINE=1`` is set before transformers is imported, so a checkpoint that names a hub
file it does not hold fails at once instead of reaching for the network. torch and transformers are
imported inside the functions (the CLI imports this module lazily anyway).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import rundir
from pipeline.train.device import pick_device

DEFAULT_MAX_LENGTH = 512


class CheckpointNotFoundError(FileNotFoundError):
    """The path is not a checkpoint, a run directory with one, or a sweep with a best run."""


def _is_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file()


def resolve_checkpoint(path: str | os.PathLike, metric: str = "val_macro_f1") -> tuple[Path, Path | None]:
    """``(checkpoint folder, run directory or None)`` for a checkpoint, a run directory or a sweep.

    A sweep resolves to its best completed run by ``metric``.
    """
    from pipeline.atomic import resolve_dir

    path = Path(path)
    if _is_checkpoint(path):
        run_dir = path.parent.parent if path.parent.name == rundir.CHECKPOINTS_DIR else None
        return path, run_dir
    best = resolve_dir(rundir.checkpoint_dir(path, rundir.BEST_CHECKPOINT))
    if best is not None and _is_checkpoint(best):
        return best, path
    if path.is_dir():
        from pipeline.results.results import NotASweepError, best_run, load_sweep

        try:
            sweep = load_sweep(path)
        except NotASweepError:
            sweep = None
        if sweep is not None and not sweep.single_run:
            run = best_run(sweep.runs, metric)
            if run is not None and run.run_dir is not None:
                ckpt = resolve_dir(rundir.checkpoint_dir(run.run_dir, rundir.BEST_CHECKPOINT))
                if ckpt is not None and _is_checkpoint(ckpt):
                    return ckpt, run.run_dir
    raise CheckpointNotFoundError(
        f"{path}: no checkpoint (expected a folder with config.json, a run directory with "
        f"checkpoints/best/, or a sweep with a completed run)"
    )


def run_config(run_dir: Path | None) -> dict[str, Any]:
    """The run's ``.hydra/config.yaml`` as plain data ({} when absent or unreadable)."""
    if run_dir is None:
        return {}
    path = rundir.hydra_file(run_dir)
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def config_max_length(cfg: dict[str, Any]) -> int | None:
    for section in ("trainer", "data", "model"):
        value = (cfg.get(section) or {}).get("max_length") if isinstance(cfg.get(section), dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def saved_max_length(ckpt: Path) -> int | None:
    """``max_length`` the trainer recorded beside the best checkpoint (``best.json``)."""
    import json

    try:
        value = json.loads((ckpt / rundir.BEST_JSON).read_text()).get("max_length")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass
class Classifier:
    tokenizer: Any
    model: Any
    labels: list[str]
    max_length: int
    checkpoint: Path
    run_dir: Path | None

    @classmethod
    def load(cls, path: str | os.PathLike, max_length: int | None = None, device: str | None = None) -> Classifier:
        """Load once, predict many times. ``device``: a torch device ("cpu", "cuda", "cuda:1"), "auto"
        (CUDA when available) or None (CPU): :func:`pipeline.train.device.pick_device`."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # no "Loading weights" progress bars in the CLI's output
        hf_logging.disable_progress_bar()
        ckpt, run_dir = resolve_checkpoint(path)
        tokenizer = AutoTokenizer.from_pretrained(ckpt)
        model = AutoModelForSequenceClassification.from_pretrained(ckpt)
        model.to(pick_device(device, "--device"))
        model.eval()
        id2label = model.config.id2label or {}
        labels = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(model.config.num_labels)]
        max_length = max_length or saved_max_length(ckpt) or config_max_length(run_config(run_dir)) \
            or DEFAULT_MAX_LENGTH
        limit = getattr(model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 0:
            max_length = min(max_length, limit)
        return cls(tokenizer, model, labels, max_length, ckpt, run_dir)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def probabilities(self, texts: list[str], batch_size: int = 32) -> list[list[float]]:
        import torch

        out: list[list[float]] = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                chunk = [normalise(t) for t in texts[i : i + batch_size]]
                batch = self.tokenizer(chunk, truncation=True, max_length=self.max_length,
                                       padding=True, return_tensors="pt").to(self.device)
                logits = self.model(**batch).logits.float()
                out += torch.softmax(logits, dim=-1).tolist()
        return out

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """``[{"text", "label", "probs": {label: p}}]`` in input order."""
        rows = []
        for text, probs in zip(texts, self.probabilities(texts, batch_size), strict=True):
            top = max(range(len(probs)), key=probs.__getitem__)
            rows.append({"text": text, "label": self.labels[top],
                         "probs": dict(zip(self.labels, probs, strict=True))})
        return rows


def normalise(text: str) -> str:
    """Whitespace as training saw it (``pipeline.data.data.normalise``)."""
    try:
        from pipeline.data.data import normalise as data_normalise
    except ImportError:  # pragma: no cover - pipeline.data.data ships with the package
        return " ".join(str(text).split())
    return data_normalise(str(text))


def read_labelled(data_file: Path, text_columns: list[str], label_column: str,
                  label_names: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Texts and string labels of a labelled file, cleaned exactly as training cleans (no dedup)."""
    from pipeline.data.data import clean, load_table

    df = load_table(data_file)
    df, _ = clean(df, text_columns, label_column, dedup=False, source=str(data_file), label_names=label_names)
    return df.text.tolist(), df.label.tolist()


def evaluate(
    path: str | os.PathLike,
    data_file: str | os.PathLike,
    text_columns: list[str] | None = None,
    label_column: str | None = None,
    batch_size: int = 32,
    limit: int | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class scores and the confusion matrix of a checkpoint on a labelled
    CSV/TSV/JSONL/Parquet file, and how many of its texts the run trained on (``overlap``).

    Text and label columns default to the run's ``data.text_columns`` / ``data.label_column``, else
    ``text`` / ``label``; rows are cleaned as training cleans them (``pipeline.data.data.clean``), integer labels
    named by the run's ``data.label_names``. Labels are matched to the model's ``id2label`` by name.
    """
    from sklearn.metrics import accuracy_score, f1_score

    from pipeline.data import data_options
    from pipeline.data.overlap import overlap
    from pipeline.results import class_metrics

    clf = Classifier.load(path)
    data_cfg = run_config(clf.run_dir).get("data") or {}
    data_cfg = data_cfg if isinstance(data_cfg, dict) else {}
    if not text_columns:
        cols = data_cfg.get("text_columns")
        text_columns = [str(c) for c in cols] if isinstance(cols, list) and cols else ["text"]
    label_column = label_column or data_cfg.get("label_column") or "label"

    data_file = Path(data_file)
    texts, labels = read_labelled(data_file, text_columns, label_column, data_options.label_names(data_cfg))
    if limit:
        texts, labels = texts[:limit], labels[:limit]
    index = {label: i for i, label in enumerate(clf.labels)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"{data_file}: labels {unknown[:5]} in column {label_column!r} are not among the "
                         f"model's labels {clf.labels}")
    y_true = [index[label] for label in labels]
    probs = clf.probabilities(texts, batch_size)
    y_pred = [max(range(len(p)), key=p.__getitem__) for p in probs]
    return {
        "checkpoint": str(clf.checkpoint),
        "data": str(data_file),
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "classes": class_metrics.per_class(y_true, y_pred, clf.labels),
        "overlap": overlap(clf.run_dir, texts),
        "text_columns": text_columns,
        "label_column": label_column,
        "max_length": clf.max_length,
    }
