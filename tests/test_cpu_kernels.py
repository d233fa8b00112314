"""The CPU training kernels in pipeline.models.cpu_kernels: the textbook functions, with their own masks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pipeline.models import cpu_kernels

TRAINING = SimpleNamespace(training=True, is_causal=False)


def test_drop_mask_rate_is_p_and_depends_only_on_the_global_seed():
    p = 0.1
    torch.manual_seed(0)
    a = cpu_kernels.keep_mask((4, 300, 1001), p) == 0  # odd element count: the last int32 word is half used
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        b = cpu_kernels.keep_mask((4, 300, 1001), p) == 0
    finally:
        torch.set_num_threads(threads)
    assert a.dtype == torch.bool and a.shape == (4, 300, 1001)
    assert torch.equal(a, b), "the mask must not depend on the thread count"
    assert abs(a.float().mean().item() - round(p * 32768) / 32768) < 0.002
    c = cpu_kernels.keep_mask((4, 300, 1001), p) == 0
    assert not torch.equal(a, c), "consecutive masks must differ"
    # both 15-bit halves of each draw are used: neither half is biased
    assert abs(a.flatten()[0::2].float().mean().item() - p) < 0.003
    assert abs(a.flatten()[1::2].float().mean().item() - p) < 0.003


def _reference(q, k, v, mask, drop, p, scale):
    scores = q @ k.transpose(-1, -2) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = scores.softmax(-1).masked_fill(drop, 0) / (1 - p)
    return (probs @ v).transpose(1, 2)


@pytest.mark.parametrize("mask_kind", ["padding", "per-row", "none"])
def test_cpu_attention_matches_eager_attention_forward_and_backward(mask_kind):
    b, h, L, d, p = 3, 4, 9, 8, 0.25
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(b, h, L, d, generator=g, dtype=torch.float64) for _ in range(3))
    mask = None
    if mask_kind == "padding":  # BERT's padding mask: every query row the same
        keep_keys = torch.arange(L)[None, :] < torch.tensor([9, 6, 2])[:, None]
        mask = keep_keys[:, None, None, :].expand(b, 1, L, L).contiguous()
    elif mask_kind == "per-row":
        mask = torch.rand(b, 1, L, L, generator=g) > 0.3
        mask[..., 0] = True
    grad_out = torch.randn(b, L, h, d, generator=g, dtype=torch.float64)

    ins = [t.clone().requires_grad_() for t in (q, k, v)]
    torch.manual_seed(7)
    out, _ = cpu_kernels.cpu_attention(TRAINING, *ins, mask, scaling=0.3, dropout=p)
    out.backward(grad_out)

    torch.manual_seed(7)
    keep = cpu_kernels.keep_mask((b * h, L, L), p)
    assert keep.dtype == torch.uint8 and set(keep.unique().tolist()) == {0, 1}
    drop = (keep == 0).view(b, h, L, L)
    assert drop.any() and not drop.all()
    ref_ins = [t.clone().requires_grad_() for t in (q, k, v)]
    ref = _reference(*ref_ins, mask, drop, p, 0.3)
    ref.backward(grad_out)

    torch.testing.assert_close(out, ref)
    for got, want in zip(ins, ref_ins):
        torch.testing.assert_close(got.grad, want.grad)


def test_cpu_attention_in_eval_is_transformers_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    module = SimpleNamespace(training=False, is_causal=False)
    out, _ = cpu_kernels.cpu_attention(module, q, k, v, None, dropout=0.0)
    want, _ = sdpa_attention_forward(module, q, k, v, None, dropout=0.0)
    torch.testing.assert_close(out, want)


def test_fast_dropout_swaps_every_dropout_and_drops_p_of_the_values():
    from transformers import BertConfig, BertForSequenceClassification

    m = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                 num_attention_heads=2, intermediate_size=32, num_labels=3))
    before = sum(type(x) is torch.nn.Dropout for x in m.modules())
    assert cpu_kernels.use_fast_dropout(m) == before > 0
    assert not any(type(x) is torch.nn.Dropout for x in m.modules())
    ids = torch.randint(0, 50, (2, 7))
    m.eval()
    with torch.no_grad():
        e1, e2 = m(input_ids=ids).logits, m(input_ids=ids).logits
    torch.testing.assert_close(e1, e2)  # eval: dropout is the identity

    drop = next(x for x in m.modules() if isinstance(x, torch.nn.Dropout)).train()
    x = torch.rand(200, 1000) + 1.0
    x.requires_grad_()
    y = drop(x)
    y.sum().backward()
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - drop.p) < 0.01
    torch.testing.assert_close(y[kept], x.detach()[kept] / (1 - drop.p))
    torch.testing.assert_close(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - drop.p)))
    assert (x.grad[~kept] == 0).all()


@pytest.mark.parametrize("choice, device, want", [
    ("auto", "cpu", (True, True)), ("all", "cpu", (True, True)), ("attention", "cpu", (True, False)),
    ("dropout", "cpu", (False, True)), ("none", "cpu", (False, False)),
    ("auto", "cuda", (False, False)), ("all", "cuda", (False, False)),
])
def test_the_config_switch_picks_the_kernels_and_never_applies_them_on_a_gpu(choice, device, want):
    assert cpu_kernels.wanted(choice, device) == want


def test_unknown_choice_is_refused_by_the_config_check_in_one_line():
    from omegaconf import OmegaConf

    from pipeline import config as config_lib

    cfg = OmegaConf.structured(config_lib.Config)
    cfg.trainer.cpu_kernels = "fastest"
    with pytest.raises(ValueError, match=r"trainer.cpu_kernels='fastest' is not one of auto, all, attention"):
        config_lib.check(cfg)
    assert config_lib.CPU_KERNELS == cpu_kernels.CHOICES


def _tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=32, num_labels=3))


def test_none_keeps_the_stock_modules_and_all_swaps_both():
    m = _tiny_bert()
    assert cpu_kernels.apply(m, "none", "cpu") == cpu_kernels.Applied(attention=False, dropout=False)
    assert any(type(x) is torch.nn.Dropout for x in m.modules())
    assert cpu_kernels.apply(m, "all", "cpu") == cpu_kernels.Applied(attention=True, dropout=True)
    assert not any(type(x) is torch.nn.Dropout for x in m.modules())
    # a model built with eager attention (no SDPA for its class): only the dropout kernel applies
    assert cpu_kernels.apply(_tiny_bert(), "all", "cpu", "eager") == cpu_kernels.Applied(attention=False,
                                                                                       dropout=True)


def test_attention_weights_requested_in_training_are_returned_not_none():
    m = _tiny_bert().train()
    cpu_kernels.apply(m, "all", "cpu")
    ids = torch.randint(0, 50, (2, 7))
    out = m(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == 2
    assert all(a is not None and a.shape == (2, 2, 7, 7) for a in out.attentions)


def test_a_transformers_without_the_attention_registry_trains_with_sdpa(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers.masking_utils", None)  # an import of it raises ImportError
    m = _tiny_bert()
    assert cpu_kernels.apply(m, "all", "cpu") == cpu_kernels.Applied(attention=False, dropout=True)
    ids = torch.randint(0, 50, (2, 7))
    m.train()(input_ids=ids, labels=torch.tensor([0, 1])).loss.backward()  # still trains
