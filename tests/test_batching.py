"""Length-grouped, dynamically padded batches."""

from __future__ import annotations

import numpy as np

from pipeline.data.batching import collate, epoch_batches, eval_batches
from pipeline.data.data import Encoded


def _data(lengths: list[int]) -> Encoded:
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.arange(1, offsets[-1] + 1, dtype=np.int32)
    return Encoded(ids, offsets, np.zeros(len(lengths), dtype=np.int64))


def test_epoch_batches_cover_every_example_once_and_are_deterministic():
    lengths = np.random.default_rng(0).integers(5, 500, size=1000)
    a = epoch_batches(lengths, 16, seed=3, epoch=1, group_by_length=True)
    b = epoch_batches(lengths, 16, seed=3, epoch=1, group_by_length=True)
    c = epoch_batches(lengths, 16, seed=3, epoch=2, group_by_length=True)
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    assert all((x == y).all() for x, y in zip(a, b))
    assert any((x != y).any() for x, y in zip(a, c) if len(x) == len(y))


def test_length_grouping_cuts_padding():
    lengths = np.random.default_rng(1).lognormal(5, 0.8, size=2000).astype(int).clip(8, 512)

    def padded(batches):
        return sum(int(lengths[b].max()) * len(b) for b in batches)

    grouped = padded(epoch_batches(lengths, 16, 0, 0, True))
    random_ = padded(epoch_batches(lengths, 16, 0, 0, False))
    assert grouped < 0.8 * random_


def test_collate_pads_to_batch_max_rounded_to_8():
    d = _data([3, 10, 5])
    b = collate(d, np.array([0, 1, 2]), pad_id=0)
    assert b["input_ids"].shape == (3, 16)
    assert b["attention_mask"].sum(1).tolist() == [3, 10, 5]
    assert collate(d, np.array([0, 2]), pad_id=0, pad_to=64)["input_ids"].shape == (2, 64)


def test_eval_batches_longest_first():
    lengths = np.array([5, 50, 20, 7])
    assert eval_batches(lengths, 2)[0].tolist() == [1, 2]
