"""CPU training kernels for BERT-family models: attention with dropout and dropout masks, in fewer passes.

Opt-in by config (``trainer.cpu_kernels``), applied only to CPU training where they were measured faster
(``python -m bench.step``: 1.5x per step at 128 tokens, 2.3x at 512 on 2 cores, bf16):

    auto       both kernels when training on the CPU (the default), none on a GPU
    all        both kernels (still only on the CPU: a GPU has fused SDPA kernels with dropout)
    attention  only :func:`cpu_attention`
    dropout    only ``FastDropout``
    none       transformers' SDPA attention and ``nn.Dropout``, as HF Trainer runs them

Both compute the same function of their inputs as the textbook ones (``tests/test_cpu_kernels.py`` checks
outputs and gradients in float64) but draw their own dropout masks, so a run resumes exactly only under the
choice that started it. They lean on transformers' attention registry (``AttentionInterface``,
``masking_utils``, ``set_attn_implementation``) and on ``torch._softmax_backward_data``: where any of these
is missing, :func:`apply` logs why and trains with the stock modules instead of failing.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

CHOICES = ("auto", "all", "attention", "dropout", "none")
CPU_ATTENTION = "pipeline_cpu"  # the name it is registered under in transformers' AttentionInterface
MASK_CHUNKS = 8  # a dropout mask is drawn in this many chunks, each from its own generator (see keep_mask)


@dataclass(frozen=True)
class Applied:
    """Which kernels a model trains with (recorded in ``run_info.json``)."""

    attention: bool
    dropout: bool


def wanted(choice: str, device: str) -> tuple[bool, bool]:
    """(attention, dropout) for a ``trainer.cpu_kernels`` choice on ``device``: a pure function."""
    if choice not in CHOICES:
        raise ValueError(f"trainer.cpu_kernels={choice!r} is not one of: {', '.join(CHOICES)}")
    if device != "cpu" or choice == "none":
        return False, False
    return choice in ("auto", "all", "attention"), choice in ("auto", "all", "dropout")


def apply(model: Any, choice: str, device: str, attention_in_use: str = "sdpa") -> Applied:
    """Put the kernels ``choice`` asks for into ``model`` (in memory only: checkpoints are unchanged).
    ``attention_in_use``: the implementation the model was built with (``pipeline.models.model.build``)."""
    attention, dropout = wanted(choice, device)
    return Applied(attention=attention and use_cpu_attention(model, attention_in_use),
                   dropout=dropout and use_fast_dropout(model) > 0)


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
                  dropout: float = 0.0, **kwargs: Any) -> tuple[Any, Any]:
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
    kwargs) goes to transformers' SDPA path unchanged, and a request for the attention weights
    (``output_attentions``) goes to the eager path, which returns them.
    """
    import torch

    extra = {k: v for k, v in kwargs.items() if v is not None and k not in ("is_causal", "position_ids")}
    if extra.get("output_attentions"):
        from transformers.models.bert.modeling_bert import eager_attention_forward

        return eager_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                       **kwargs)
    if (not module.training or dropout <= 0 or query.device.type != "cpu" or getattr(module, "is_causal", False)
            or kwargs.get("is_causal") or key.shape[1] != query.shape[1] or query.dim() != 4
            or set(extra) - {"output_attentions"}):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

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


def use_cpu_attention(model: Any, attention_in_use: str = "sdpa") -> bool:
    """Train ``model`` with :func:`cpu_attention` (BERT-family models built with SDPA attention, which
    ``attention_in_use`` names); False if it cannot.

    ``set_attn_implementation`` changes the in-memory model only (config.json does not record it), so
    checkpoints load anywhere with the default attention.
    """
    import torch

    if attention_in_use != "sdpa":
        return False
    try:
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: F401
        from transformers.masking_utils import sdpa_mask
        from transformers.models.bert.modeling_bert import eager_attention_forward  # noqa: F401

        if not hasattr(torch, "_softmax_backward_data"):
            raise ImportError("torch._softmax_backward_data is gone")
        AttentionInterface.register(CPU_ATTENTION, cpu_attention)
        AttentionMaskInterface.register(CPU_ATTENTION, sdpa_mask)
        model.set_attn_implementation(CPU_ATTENTION)
    except (ImportError, ValueError, NotImplementedError, AttributeError) as e:
        log.info("CPU attention kernel not available with this transformers/torch (%s): keeping SDPA", e)
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

    Dropout modules hold no state, so checkpoints are unchanged.
    """
    import torch

    fast = _fast_dropout_class()
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                setattr(parent, name, fast(child.p))
                swapped += 1
    return swapped
