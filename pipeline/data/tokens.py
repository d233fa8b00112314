"""Token-length statistics of texts under a model's tokenizer: one function, one set of percentiles, for
the data report (``pipeline data``, preflight, ``run_info.json``) and the DVC prepare stage (``stats.json``).

The tokenizer is read from the model's ``tokenizer.json`` with the ``tokenizers`` library (no torch or
transformers import, so preflight stays fast); lengths are untruncated and count ``[CLS]``/``[SEP]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: the percentiles of every token-length summary
PERCENTILES = (50, 90, 95, 99)


def tokenizer_file(model_cfg: Any) -> Path | None:
    """The model's ``tokenizer.json``: in its folder, or in the Hugging Face cache for a hub id."""
    from pipeline.models.model import offline_minilm_path

    path = model_cfg.get("path")
    folder = Path(offline_minilm_path()) if not path or not model_cfg.get("pretrained", True) else \
        Path(str(path)).expanduser()
    if folder.is_dir():
        return folder / "tokenizer.json" if (folder / "tokenizer.json").is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(str(path), "tokenizer.json")
    except Exception:  # no cache, odd id: the statistics go without token lengths
        return None
    return Path(hit) if isinstance(hit, str) else None


def token_lengths(texts: list[str], model_cfg: Any) -> tuple[np.ndarray, str] | None:
    """Untruncated token counts (with [CLS]/[SEP]) and the tokenizer's name; None without a tokenizer.json."""
    file = tokenizer_file(model_cfg)
    if file is None:
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(file))
    tok.no_truncation()  # sentence-transformers ship tokenizer.json with truncation at 128 switched on
    tok.no_padding()
    lengths = np.fromiter((len(e.ids) for e in tok.encode_batch(texts)), dtype=np.int64, count=len(texts))
    return lengths, f"{model_cfg.get('name')} tokenizer"


def length_stats(lengths: np.ndarray, limits: Sequence[int]) -> dict[str, Any]:
    """``p50 p90 p95 p99 mean max`` of the lengths, and ``over_<n>``: the share longer than each limit
    (the texts ``trainer.max_length=n`` truncates)."""
    out: dict[str, Any] = {f"p{p}": int(np.percentile(lengths, p)) for p in PERCENTILES}
    out.update({"mean": round(float(lengths.mean()), 1), "max": int(lengths.max())})
    out.update({f"over_{n}": round(float((lengths > n).mean()), 4) for n in limits})
    return out
