"""Process-level caches of what every run of a packed job would load again: the tokenizer, the
pretrained weights file and the token cache (``hydra.launcher.runs_per_job``, :mod:`pipeline.launch.packing`).

Each cache is keyed by the file's identity (path, size, mtime), so a changed file is read again. What a
run gets is its own copy where training could change it (the weights are cloned into the new model),
so every run of a pack starts from exactly the weights and RNG state an unpacked run starts from: the
random classification head is still drawn by ``from_pretrained`` after ``torch.manual_seed(seed)``.
A process that runs one point pays nothing extra: it loads each thing once, as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_tokenizers: dict[tuple, Any] = {}
_state_dicts: dict[tuple, Any] = {}
_token_arrays: dict[tuple, dict[str, Any]] = {}
MAX_ENTRIES = 4


def _identity(path: str | Path) -> tuple:
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return (str(path),)
    if p.is_dir():  # a model folder: its files' sizes and mtimes
        files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file())
        return (str(p.resolve()), tuple(files))
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def _remember(cache: dict, key: tuple, value: Any) -> Any:
    if len(cache) >= MAX_ENTRIES:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def tokenizer(source: str) -> Any:
    """``AutoTokenizer.from_pretrained(source)``, once per process per source."""
    from transformers import AutoTokenizer

    key = _identity(source)
    if key not in _tokenizers:
        _remember(_tokenizers, key, AutoTokenizer.from_pretrained(source))
    return _tokenizers[key]


def weights_file(source: str) -> Path | None:
    """The single weights file of a local model folder (safetensors, else PyTorch), None otherwise."""
    folder = Path(source)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    return None


def state_dict(source: str) -> dict[str, Any] | None:
    """A fresh copy of the pretrained weights of a local model folder (read from disk once per process);
    None for a hub id or a sharded checkpoint (``from_pretrained`` reads those itself)."""
    path = weights_file(source)
    if path is None or os.environ.get("PIPELINE_NO_WARM_CACHE"):
        return None
    key = _identity(path)
    if key not in _state_dicts:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded = load_file(str(path))
        else:
            import torch

            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        _remember(_state_dicts, key, loaded)
    return {k: v.clone() for k, v in _state_dicts[key].items()}


def sequence_classifier(source: str, **kwargs: Any) -> Any:
    """``AutoModelForSequenceClassification.from_pretrained(source, **kwargs)``, from the cached weights
    when ``source`` is a local folder with one weights file (the config is read from the folder)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    weights = state_dict(source)
    if weights is None:
        return AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
    config_keys = ("num_labels", "id2label", "label2id")
    config = AutoConfig.from_pretrained(source, **{k: kwargs.pop(k) for k in config_keys if k in kwargs})
    model_class = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)]
    return model_class.from_pretrained(None, config=config, state_dict=weights, **kwargs)


def token_arrays(path: Path) -> dict[str, Any]:
    """Copies of the arrays of a token cache file (``np.load``), read from disk once per process."""
    import numpy as np

    key = _identity(path)
    if key not in _token_arrays:
        with np.load(path) as z:
            arrays = {name: z[name] for name in z.files}
        _remember(_token_arrays, key, arrays)
    return {name: a.copy() for name, a in _token_arrays[key].items()}
