"""One CPU training step of MiniLM, with and without our CPU kernels, side by side (the ablation per kernel).

    python -m bench.step                      # lengths 128, 256, 512; batch 16; 3 timed steps; 2 reps
    python -m bench.step --lengths 512 --reps 3

Variants, each a fresh subprocess (so one cannot warm the allocator for another), alternating per repetition:

* ``stock``     transformers' SDPA attention and ``nn.Dropout`` (what the HF Trainer runs),
* ``attention`` our :func:`pipeline.models.cpu_kernels.cpu_attention` with ``nn.Dropout``,
* ``ours``      our attention and ``FastDropout`` (what ``run.py`` runs on CPU).

Every step is forward + backward + gradient clipping + fused AdamW on a full batch of one length (no padding),
under the precision ``run.py`` would pick here (bf16 autocast on CPUs with bf16 instructions, else fp32).
Prints seconds per step (median of reps) and the ratios to ``stock``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.train import MALLOC_ENV

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {"stock": "none", "attention": "attention", "ours": "all"}  # -> trainer.cpu_kernels


def one(variant: str, length: int, batch: int, steps: int) -> dict:
    """Time ``steps`` training steps (after 2 untimed ones) in this process, with ``variant``'s kernels."""
    import time
    from types import SimpleNamespace

    import torch

    from pipeline.models import cpu_kernels
    from pipeline.models import model as model_lib
    from pipeline.train.device import autocast, pick_precision

    precision = pick_precision("auto", "cpu")
    model = model_lib.build_model(SimpleNamespace(pretrained=True, path=None), ["a", "b", "c", "d", "e"], 0, 0)
    kernels = cpu_kernels.apply(model, VARIANTS[variant], "cpu")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (batch, length), generator=g)
    labels = torch.randint(0, 5, (batch,), generator=g)

    def step() -> None:
        with autocast("cpu", precision):
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return {"s_per_step": (time.perf_counter() - start) / steps, "precision": precision,
            "fast_attention": kernels.attention, "fast_dropout": kernels.dropout, "threads": torch.get_num_threads()}


def spawn(variant: str, length: int, batch: int, steps: int) -> dict:
    env = {**os.environ, **MALLOC_ENV, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "bench.step", "--child", variant, str(length), str(batch), str(steps)],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", default="128,256,512", help="comma-separated sequence lengths")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="timed steps per run (after 2 warm-up steps)")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        from pipeline.models.model import quiet_transformers

        quiet_transformers()
        variant, *sizes = args.child
        print(json.dumps(one(variant, *map(int, sizes))))
        return
    lengths = [int(x) for x in args.lengths.split(",")]
    times: dict[tuple[int, str], list[float]] = {}
    info = {}
    for length in lengths:
        for _ in range(args.reps):
            for variant in VARIANTS:
                r = spawn(variant, length, args.batch, args.steps)
                times.setdefault((length, variant), []).append(r["s_per_step"])
                info = r
    print(f"batch {args.batch}, precision {info['precision']}, {info['threads']} threads, "
          f"median of {args.reps} reps x {args.steps} steps\n")
    print("| length | " + " | ".join(f"{v} s/step" for v in VARIANTS) + " | stock / attention | stock / ours |")
    print("|---:|" + "---:|" * (len(VARIANTS) + 2))
    for length in lengths:
        med = {v: statistics.median(times[(length, v)]) for v in VARIANTS}
        print(f"| {length} | " + " | ".join(f"{med[v]:.3f}" for v in VARIANTS)
              + f" | {med['stock'] / med['attention']:.2f}x | {med['stock'] / med['ours']:.2f}x |")


if __name__ == "__main__":
    main()
