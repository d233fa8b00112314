"""On one GPU: our training loop against the HF Trainer, MiniLM and a bert-base-sized BERT, bf16 and fp16.

    bench/gpu.sh                      # pipeline doctor, the gpu-marked tests, then this (< 8 min, offline)
    python -m bench.gpu [--dry-run] [--out outputs/bench/gpu.json]

Each (model, precision, loop) runs as a fresh subprocess on the same job: BBC news, 800 rows (the project's
split), 1 epoch, max_length 256, batch size 32, lr 5e-5, seed 0. ``ours`` is ``pipeline.train.train.fit`` (what
``run.py`` runs), ``hf`` is ``bench/hf_trainer_job.py --variant best`` (the Trainer with dynamic padding and
length grouping: the same settings). Models, both offline: ``minilm`` (pretrained, from the PyPI package)
and ``bert-base`` (12 layers, 768 hidden, 3072 FFN: bert-base's shape, initialised from that config; its
speed and memory are bert-base's, its accuracy is not meant to be).

Reported: training samples/s over whole epochs (evaluation excluded, warm-up steps included: both loops
alike), peak GPU memory (``torch.cuda.max_memory_allocated``), GPU utilisation (NVML, sampled a few times a
second by ``pipeline.train.gpu_use``: the run's ``metrics.json`` "gpu" for ours, the same sampler around
the whole Trainer run for HF) with the share of samples below ``LOW_UTIL_PCT`` and any warning, MFU =
samples/s x FLOPs per sample / the GPU's dense bf16 peak (fp16 on a V100, which has no bf16), test accuracy,
and ours/HF per model and precision. FLOPs per training sample: 6 N T + 12 L h T^2 (N the non-embedding
parameters, L layers, h hidden, T the sample's tokens after truncation, averaged over the training split):
the useful work, padding not counted.

``--dry-run`` runs the same code on the CPU with tiny settings (a test runs it, so that it does not rot): the
same two models with bert-base shrunk to 2 tiny layers, 30 rows (2 steps), 32 tokens, bf16 only (fp16 needs CUDA),
no MFU (no peak known). Its figures are CPU figures of a few steps: they check the plumbing, nothing else.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

from pipeline.train.gpu_use import LOW_UTIL_PCT

ROOT = Path(__file__).resolve().parent.parent
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}

JOB = ["data.max_rows=800", "trainer.epochs=1", "trainer.max_length=256", "trainer.batch_size=32",
       "trainer.eval_batch_size=64", "trainer.lr=5e-5", "trainer.eval_every_steps=0", "seed=0"]
DRY_JOB = ["data.max_rows=30", "trainer.epochs=1", "trainer.max_length=32", "trainer.batch_size=16",
           "trainer.eval_batch_size=16", "trainer.lr=5e-5", "trainer.eval_every_steps=0", "seed=0",
           "trainer.device=cpu"]


def _bert(hidden: int, layers: int, heads: int, ffn: int) -> list[str]:
    return ["model=tiny", f"model.tiny.hidden_size={hidden}", f"model.tiny.num_hidden_layers={layers}",
            f"model.tiny.num_attention_heads={heads}", f"model.tiny.intermediate_size={ffn}"]


MODELS = {"minilm": ["model=minilm"], "bert-base": _bert(768, 12, 12, 3072)}
DRY_MODELS = {"minilm": ["model=minilm"], "bert-base": _bert(64, 2, 2, 128)}

#: dense (no sparsity) tensor-core peaks in TFLOP/s, bf16 (V100: fp16, it has no bf16), from NVIDIA's data
#: sheets; matched against torch.cuda.get_device_name in this order
PEAK_TFLOPS = [("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
               ("A40", 149.7), ("A10", 125.0), ("L4", 121.0), ("V100", 125.0), ("RTX 6000 Ada", 364.0)]


def peak_tflops(gpu_name: str | None) -> float | None:
    for key, value in PEAK_TFLOPS:
        if gpu_name and key in gpu_name:
            return value
    return None


def flops_per_sample(layers: int, hidden: int, ffn: int, lengths: list[int]) -> float:
    """6 N T + 12 L h T^2, averaged over the samples' token counts T (N: non-embedding parameters)."""
    n = layers * (4 * hidden * hidden + 2 * hidden * ffn)
    mean_t = sum(lengths) / len(lengths)
    mean_t2 = sum(x * x for x in lengths) / len(lengths)
    return 6 * n * mean_t + 12 * layers * hidden * mean_t2


# ------------------------------------------------------------------------------------ one run (subprocess)


def run_ours(out: Path, overrides: list[str]) -> None:
    """``pipeline.train.train.fit`` in this process, then its figures, its GPU use and the FLOPs per sample."""
    from transformers import AutoConfig

    from bench.hf_trainer_job import compose
    from pipeline.data import data
    from pipeline.models.model import load_tokenizer
    from pipeline.train.train import fit

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # the run's own log lines
    cfg = compose(overrides)
    run_dir = out.with_suffix(".run")
    fit(cfg, run_dir)
    m = json.loads((run_dir / "metrics.json").read_text())
    model_cfg = AutoConfig.from_pretrained(run_dir / "checkpoints" / "best")
    tokenizer, tokenizer_id = load_tokenizer(cfg.model)
    splits = data.load_splits(cfg)
    enc = data.tokenize_splits(splits, tokenizer, tokenizer_id, cfg.trainer.max_length, cfg.data,
                               cfg.paths.cache_dir)
    lengths = [int(x) for x in enc["train"].lengths]
    gpu = m.get("gpu") or {}  # the run's own record (pipeline.train.gpu_use); absent on CPU
    result = {
        # over whole epochs, every step counted, as the Trainer's figure (and bench.train) counts them
        "train_samples_per_s": m["train_size"] * m["epochs"] / m["train_time_s"] if m["train_time_s"] else None,
        "test_accuracy": m["test"]["accuracy"],
        "precision": m["precision"], "device": m["device"],
        "peak_mem_gb": gpu.get("peak_mem_gb"), "gpu_util": gpu.get("util_mean"),
        "gpu_low_frac": gpu.get("low_util_frac"), "gpu_warning": gpu.get("warning"),
        "flops_per_sample": flops_per_sample(model_cfg.num_hidden_layers, model_cfg.hidden_size,
                                             model_cfg.intermediate_size, lengths),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")


def run_hf(out: Path, overrides: list[str], precision: str) -> None:
    """The HF Trainer on the same job, its GPU sampled by the same sampler as ours (whole run: the Trainer
    gives no hook between its steps and its evaluations)."""
    import torch

    from bench import hf_trainer_job
    from pipeline.train.gpu_use import GpuUse

    flags = {"bf16": ["--bf16"], "fp16": ["--fp16"], "fp32": ["--no-bf16"]}[precision]
    raw = out.with_suffix(".hf.json")
    use = GpuUse.start("cuda") if torch.cuda.is_available() else None
    r = hf_trainer_job.main(["--variant", "best", *flags, "--out", str(raw), *overrides])
    gpu = use.finish() if use else {}
    precision_used = "fp16" if r["fp16"] else "bf16" if r["bf16"] else "fp32"
    out.write_text(json.dumps({"train_samples_per_s": r["train_samples_per_s"], "precision": precision_used,
                               "test_accuracy": r["test"]["accuracy"], "device": r["device"],
                               "peak_mem_gb": r["peak_mem_gb"], "gpu_util": gpu.get("util_mean"),
                               "gpu_low_frac": gpu.get("low_util_frac"), "gpu_warning": gpu.get("warning")},
                              indent=2) + "\n")


# ------------------------------------------------------------------------------------ the whole benchmark


def plan(dry_run: bool, bf16: bool = True) -> list[tuple[str, str, str, list[str]]]:
    """(model, precision, loop, overrides) for every run, in the order they run. ``bf16``: the GPU does bf16
    natively (a V100 only emulates it, slowly: fp16 alone there)."""
    models, job = (DRY_MODELS, DRY_JOB) if dry_run else (MODELS, JOB)
    if dry_run:  # fp16 needs CUDA; bf16 where this CPU has it
        from pipeline.train.device import cpu_has_bf16

        precisions = ["bf16" if cpu_has_bf16() else "fp32"]
    else:
        precisions = ["bf16", "fp16"] if bf16 else ["fp16"]
    return [(name, prec, loop, [*job, *model, f"trainer.precision={prec}"])
            for name, model in models.items() for prec in precisions for loop in ("ours", "hf")]


def spawn(loop: str, precision: str, overrides: list[str], out: Path, log: Path) -> dict:
    env = {**os.environ, **MALLOC_ENV, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("PIPELINE_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    cmd = [sys.executable, "-m", "bench.gpu", "--one", loop, "--precision", precision, "--out", str(out),
           *overrides]
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{loop} {precision} exited {proc.returncode}: see {log}")
    return json.loads(out.read_text())


def table(rows: list[dict], peak: float | None) -> str:
    """Markdown, under 80 columns: one row per run (GPU %: NVML's mean utilisation while training), then
    ours/HF per model and precision, then any low-utilisation warning."""
    lines = ["| model     | prec | loop | samples/s | peak GB | GPU % |   MFU | test acc |",
             "|-----------|------|------|----------:|--------:|------:|------:|---------:|"]
    for r in rows:
        mfu = "-"
        if peak and r.get("flops_per_sample") and r["train_samples_per_s"]:
            mfu = f"{100 * r['train_samples_per_s'] * r['flops_per_sample'] / (peak * 1e12):.1f}%"
        mem = f"{r['peak_mem_gb']:.2f}" if r.get("peak_mem_gb") is not None else "-"
        util = f"{r['gpu_util']:.0f}" if r.get("gpu_util") is not None else "-"
        rate = f"{r['train_samples_per_s']:.1f}" if r["train_samples_per_s"] else "-"
        lines.append(f"| {r['model']:<9} | {r['precision']:<4} | {r['loop']:<4} | {rate:>9} | {mem:>7} "
                     f"| {util:>5} | {mfu:>5} | {r['test_accuracy']:>8.4f} |")
    lines.append("")
    for model in dict.fromkeys(r["model"] for r in rows):
        for prec in dict.fromkeys(r["precision"] for r in rows if r["model"] == model):
            pair = {r["loop"]: r for r in rows if r["model"] == model and r["precision"] == prec}
            ours, hf = pair.get("ours"), pair.get("hf")
            if ours and hf and ours["train_samples_per_s"] and hf["train_samples_per_s"]:
                lines.append(f"{model} {prec}: ours/HF samples/s = "
                             f"{ours['train_samples_per_s'] / hf['train_samples_per_s']:.2f}")
    for r in rows:  # GPU use (pipeline.train.gpu_use): mean utilisation, share of low samples, the warning
        if r.get("gpu_util") is not None:
            tag = f"{r['model']} {r['precision']} {r['loop']}"
            lines.append(f"GPU use {tag}: {r['gpu_util']:.0f}% busy, below {LOW_UTIL_PCT:.0f}% in "
                         f"{100 * (r.get('gpu_low_frac') or 0):.0f}% of samples, peak {r['peak_mem_gb']:.2f} GiB")
            if r.get("gpu_warning"):
                lines += textwrap.wrap(f"  warning: {r['gpu_warning']}", 80, subsequent_indent="    ")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="the same code on the CPU with tiny settings")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default outputs/bench/gpu-<time>.json)")
    p.add_argument("--one", choices=("ours", "hf"), help=argparse.SUPPRESS)  # one run, in a subprocess
    p.add_argument("--precision", default="bf16", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        return run_ours(args.out, args.overrides) if args.one == "ours" else \
            run_hf(args.out, args.overrides, args.precision)

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if gpu is None and not args.dry_run:
        p.error("no usable CUDA GPU (pipeline doctor says why); --dry-run runs the same code on the CPU")
    peak = peak_tflops(gpu)
    out = args.out or ROOT / "outputs" / "bench" / f"gpu-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.with_suffix(".runs")
    work.mkdir(parents=True, exist_ok=True)
    runs = plan(args.dry_run, gpu is None or torch.cuda.is_bf16_supported(including_emulation=False))
    print(f"device: {gpu or 'CPU (dry run)'}; peak {peak or '-'} TFLOP/s; {len(runs)} runs; logs in {work}",
          flush=True)
    rows = []
    for k, (model, prec, loop, overrides) in enumerate(runs, 1):
        t0 = time.time()
        tag = f"{model}-{prec}-{loop}"
        r = spawn(loop, prec, overrides, work / f"{tag}.json", work / f"{tag}.log")
        rows.append({"model": model, "loop": loop, **r, "precision": r["precision"], "wall_s": time.time() - t0})
        print(f"  [{k}/{len(runs)}] {tag}: {r['train_samples_per_s'] or 0:.1f} samples/s "
              f"({time.time() - t0:.0f} s)", flush=True)
    for r in rows:  # both loops train the same model on the same tokens: the FLOPs are ours
        r.setdefault("flops_per_sample", next(o.get("flops_per_sample") for o in rows
                                              if o["model"] == r["model"] and o["loop"] == "ours"))
    report = {"gpu": gpu, "peak_tflops": peak, "torch": torch.__version__, "cuda": torch.version.cuda,
              "dry_run": args.dry_run, "job": DRY_JOB if args.dry_run else JOB,
              "time": datetime.now().isoformat(timespec="seconds"), "runs": rows}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n**{gpu or 'CPU, dry run (no GPU: these are not GPU figures)'}**, torch {torch.__version__} "
          f"(CUDA {torch.version.cuda or 'none'}); job: {' '.join(report['job'])}\n")
    print(table(rows, peak))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
