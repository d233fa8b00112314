"""Batches from token-id arrays: dynamic padding and length grouping, deterministic per (seed, epoch).

Length grouping (as HF's ``LengthGroupedSampler``): shuffle, cut into mega-batches of 50 batches, sort each
by length, cut into batches, shuffle the batch order. Each batch then pads to a similar length, which is
the biggest speed lever on CPU for long-tailed news articles. The order is a pure function of
(seed, epoch), so a resumed run replays the same epoch and skips the batches it already did.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.data.data import Encoded

MEGA = 50


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group_by_length: bool
                  ) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if not group_by_length:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    step = batch_size * MEGA
    for i in range(0, len(order), step):
        mega = order[i:i + step]
        mega = mega[np.argsort(-lengths[mega], kind="stable")]
        batches += [mega[j:j + batch_size] for j in range(0, len(mega), batch_size)]
    perm = rng.permutation(len(batches))
    return [batches[k] for k in perm]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation order: longest first (order does not matter, padding does)."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(data: Encoded, idx: np.ndarray, pad_id: int, pad_to: int | None = None,
            multiple_of: int = 8) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest member (rounded up to ``multiple_of``), or to ``pad_to`` if given."""
    lengths = data.lengths[idx]
    width = int(pad_to) if pad_to else int(-(-lengths.max() // multiple_of) * multiple_of)
    width = max(width, int(lengths.max()))
    ids = np.full((len(idx), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=np.int64)
    for row, i in enumerate(idx):
        seq = data.item(int(i))
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(data.labels[idx]),
    }
