"""Download a Hugging Face hub model once, on a machine with internet, so jobs can load it offline.

    pipeline prefetch bert-base-uncased          # into $HF_HOME/hub (on DTU: HF_HOME=/work3/$USER/hf)

Compute nodes may have no internet: jobs then run with ``HF_HUB_OFFLINE=1`` and ``from_pretrained`` finds
the model in the same cache. Only the files ``from_pretrained`` needs are fetched (config, tokenizer,
weights as safetensors, else PyTorch ``.bin``), not the TF/Flax/ONNX copies that many hub repos carry.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import ModelError, first_line

#: config, tokenizer and vocabulary files, and the weights in the format transformers prefers
FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]
FALLBACK_WEIGHTS = ["pytorch_model*.bin"]


def _has_weights(folder: str) -> bool:
    return any(Path(folder).glob("*.safetensors")) or any(Path(folder).glob("pytorch_model*.bin"))


def prefetch(model_id: str, cache_dir: str | None = None) -> str:
    """The local folder of ``model_id`` (HF cache layout), downloaded first if the cache lacks it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:  # already cached: no network at all
        folder = snapshot_download(model_id, cache_dir=cache_dir, local_files_only=True, allow_patterns=FILES)
        if _has_weights(folder):
            return folder
    except Exception:  # not (completely) in the cache
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        raise ModelError(f"'{model_id}' is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading "
                         f"it: run `HF_HUB_OFFLINE=0 pipeline prefetch {model_id}` on a machine with internet")
    try:
        folder = snapshot_download(model_id, cache_dir=cache_dir, allow_patterns=FILES)
        if not _has_weights(folder):
            folder = snapshot_download(model_id, cache_dir=cache_dir, allow_patterns=FILES + FALLBACK_WEIGHTS)
    except (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError) as e:
        raise ModelError(f"'{model_id}' is not a model you can download from the Hugging Face hub "
                         f"({type(e).__name__}): check the id, or set HF_TOKEN for a private or gated one") from None
    except Exception as e:  # no network, proxy, DNS, timeouts, disk full ...
        first = first_line(e) or type(e).__name__
        raise ModelError(f"could not download '{model_id}' from the Hugging Face hub ({first[:200]}): offline? "
                         "run `pipeline prefetch` on a machine with internet (on DTU a login node) with HF_HOME "
                         "pointing where the jobs look (e.g. /work3/$USER/hf)") from None
    if not _has_weights(folder):
        raise ModelError(f"'{model_id}' on the hub has no PyTorch weights (.safetensors or pytorch_model.bin)")
    return folder
