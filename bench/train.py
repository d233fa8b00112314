"""End-to-end: our ``run.py`` (A) against the Hugging Face Trainer, defaults (B) and best settings (C).

    python -m bench.train --short                 # 300 BBC rows, 1 epoch, 512 tokens: a quick check
    python -m bench.train --max-rows 600 --epochs 3 --variants A,C --seeds 0,1,2   # what docs/performance.md reports
    python -m bench.train --short --variants A,A-fp32,A-static --reps 2   # ablations of A

One job for every variant: MiniLM (offline), BBC news split by ``pipeline.data.data.load_splits``, max_length 512,
batch size 16, the same epochs, learning rate, schedule, seed, evaluation after each epoch and test of the
best checkpoint (see ``bench/hf_trainer_job.py`` for what B and C share with A and what is the Trainer's own).
Each variant runs as a fresh subprocess with a cold token cache (A-warm: warm) and
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` set (A-nomalloc: unset and no re-exec), timed from spawn
to exit. Repetitions alternate the variants (A B C A B C ...), so a noisy machine hurts them alike; the
report gives medians and the ratios of medians against B and C, and for each ``A-*`` ablation its ratio
to A. Results are read from what each run writes (``metrics.json`` of the run dir; the Trainer job's JSON),
never from logs.

Variants: A, A-fp32 (trainer.precision=fp32), A-static (no dynamic padding, no length grouping), A-nomalloc,
A-sdpa (trainer.cpu_kernels=dropout: transformers' SDPA instead of ``pipeline.models.cpu_kernels.cpu_attention``),
A-torchdropout (trainer.cpu_kernels=attention: ``nn.Dropout`` instead of ``FastDropout``), A-stock
(trainer.cpu_kernels=none),
A-threads1 / A-threads4 (OMP_NUM_THREADS=1/4; 4 oversubscribes a 2-core machine, as torch's default does on
a shared cluster node), A-evalbs16 (trainer.eval_batch_size=16), A-warm (token cache warm), B, C, C-fp32
(C without bf16), C-compile (C with torch_compile).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}

A_ABLATIONS: dict[str, dict] = {  # name -> extra overrides / env of an A run
    "A": {},
    "A-fp32": {"overrides": ["trainer.precision=fp32"]},
    "A-static": {"overrides": ["trainer.dynamic_padding=false", "trainer.group_by_length=false"]},
    "A-nomalloc": {"env": {"PIPELINE_NO_REEXEC": "1"}, "unset": list(MALLOC_ENV)},
    "A-threads1": {"env": {"OMP_NUM_THREADS": "1"}},
    "A-threads4": {"env": {"OMP_NUM_THREADS": "4"}},
    "A-evalbs16": {"overrides": ["trainer.eval_batch_size=16"]},
    "A-sdpa": {"overrides": ["trainer.cpu_kernels=dropout"]},
    "A-torchdropout": {"overrides": ["trainer.cpu_kernels=attention"]},
    "A-stock": {"overrides": ["trainer.cpu_kernels=none"]},
    "A-warm": {"warm": True},
}
HF_VARIANTS: dict[str, list[str]] = {
    "B": ["--variant", "defaults"],
    "C": ["--variant", "best"],
    "C-fp32": ["--variant", "best", "--no-bf16"],
    "C-compile": ["--variant", "best", "--compile"],
}
VARIANTS = [*A_ABLATIONS, *HF_VARIANTS]


@dataclass
class Result:
    variant: str
    wall_s: float
    train_samples_per_s: float | None
    val: dict
    test: dict
    startup_s: float | None = None
    cpu_s: float | None = None
    extra: dict = field(default_factory=dict)


def job_overrides(max_rows: int | None, epochs: int, max_length: int, seed: int) -> list[str]:
    """The Hydra overrides that define the benchmarked job (shared by A, B and C)."""
    return [*([f"data.max_rows={max_rows}"] if max_rows else []), f"trainer.epochs={epochs}",
            f"trainer.max_length={max_length}", "trainer.batch_size=16", "trainer.eval_every_steps=0",
            f"seed={seed}", "model=minilm"]


def _env(spec: dict) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in spec.get("unset", [])}
    for k in spec.get("unset", []):
        env.pop(k, None)
    if not spec.get("unset"):
        env.update(MALLOC_ENV)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("PIPELINE_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(spec.get("env", {}))
    return env


def run_variant(name: str, job: list[str], work: Path, rep: int, log_dir: Path) -> Result:
    """One run of one variant in a fresh subprocess; wall time from spawn to exit."""
    tag = f"{name}-{rep}"
    log = log_dir / f"{tag}.log"
    if name in A_ABLATIONS:
        spec = A_ABLATIONS[name]
        root = work / ("A-warm-cache" if spec.get("warm") else tag)
        if spec.get("warm") and not (root / ".cache").is_dir():  # fill the cache once, untimed
            _spawn([sys.executable, str(ROOT / "run.py"), *job, "trainer.max_steps=1", "trainer.epochs=1",
                    f"paths.output_root={root}", f"hydra.run.dir={root}/fill"], _env(spec), log_dir / "fill.log")
        run_dir = root / "run" if not spec.get("warm") else root / tag
        cmd = [sys.executable, str(ROOT / "run.py"), *job, *spec.get("overrides", []),
               f"paths.output_root={root}", f"hydra.run.dir={run_dir}"]
        wall, cpu = _spawn(cmd, _env(spec), log)
        m = json.loads((run_dir / "metrics.json").read_text())
        if m.get("status") != "completed":
            raise RuntimeError(f"{tag} did not complete ({m.get('error')}): see {log}")
        rate = m["train_size"] * m["epochs"] / m["train_time_s"] if m.get("train_time_s") else None
        extra = {"precision": m["precision"], "steps": m["steps"]}
        return Result(name, wall, rate, m["val"], m["test"], m.get("startup_s"), cpu, extra)
    out = work / f"{tag}.json"
    cmd = [sys.executable, "-m", "bench.hf_trainer_job", *HF_VARIANTS[name], "--out", str(out), *job]
    wall, cpu = _spawn(cmd, _env({}), log)
    r = json.loads(out.read_text())
    shutil.rmtree(out.with_suffix(".trainer"), ignore_errors=True)
    return Result(name, wall, r["train_samples_per_s"], r["val"], r["test"], r.get("startup_s"), cpu,
                  {"bf16": r["bf16"], "compile": r["compile"]})


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run to completion: (wall seconds, CPU seconds of the process and its children)."""
    c0, t0 = _children_cpu(), time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}: see {log}")
    return wall, cpu


def _children_cpu() -> float:
    """CPU time of finished children: less sensitive than wall time to other load on a shared machine."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def summarise(results: list[Result]) -> dict[str, dict]:
    """Medians per variant."""
    out = {}
    for name in dict.fromkeys(r.variant for r in results):
        rs = [r for r in results if r.variant == name]
        med = statistics.median
        rates = [r.train_samples_per_s for r in rs if r.train_samples_per_s]
        out[name] = {
            "n": len(rs), "wall_s": med(r.wall_s for r in rs), "walls": [round(r.wall_s, 2) for r in rs],
            "cpu_s": med(r.cpu_s for r in rs),
            "train_samples_per_s": med(rates) if rates else None,
            "startup_s": med(r.startup_s for r in rs) if all(r.startup_s for r in rs) else None,
            **{f"{s}_{k}": med(getattr(r, s)[k] for r in rs) for s in ("val", "test")
               for k in ("accuracy", "macro_f1")},
            "test_accuracy_mean": statistics.fmean(r.test["accuracy"] for r in rs),
            "test_accuracies": [round(r.test["accuracy"], 4) for r in rs],
            "extra": rs[0].extra,
        }
    return out


def table(summary: dict[str, dict]) -> str:
    """Markdown: one row per variant. Ratios against B, C and (ablations) A: of the median wall times, and
    in brackets of the fastest runs (the least disturbed by other load)."""
    def ratio(a: str, b: str) -> str:
        if b not in summary:
            return ""
        sa, sb = summary[a], summary[b]
        return f"{sa['wall_s'] / sb['wall_s']:.2f} [{min(sa['walls']) / min(sb['walls']):.2f}]"

    rows = ["| variant | runs | wall s median [min] | CPU s | train samples/s | val acc | val F1 | test acc "
            "| test F1 | /B | /C | /A |", "|" + "---|" * 12]
    for name, s in summary.items():
        rate = f"{s['train_samples_per_s']:.2f}" if s["train_samples_per_s"] else "-"
        to_a = ratio(name, "A") if name.startswith("A-") else ""
        rows.append(f"| {name} | {s['n']} | {s['wall_s']:.1f} [{min(s['walls']):.1f}] | {s['cpu_s']:.1f} | {rate} "
                    f"| {s['val_accuracy']:.4f} | {s['val_macro_f1']:.4f} | {s['test_accuracy']:.4f} "
                    f"| {s['test_macro_f1']:.4f} | {ratio(name, 'B')} | {ratio(name, 'C')} | {to_a} |")
    if "A" in summary:
        rows.append("")
        for other in (n for n in summary if n != "A"):
            d = summary["A"]["test_accuracy_mean"] - summary[other]["test_accuracy_mean"]
            rows.append(f"test accuracy, mean over runs: A - {other} = {d:+.4f} "
                        f"(A {summary['A']['test_accuracies']}, {other} {summary[other]['test_accuracies']})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true", help="300 rows, 1 epoch (a quick check)")
    p.add_argument("--reps", type=int, default=1, help="repetitions of each variant, alternating")
    p.add_argument("--max-rows", type=int, default=None, help="BBC rows (stratified subsample; default all)")
    p.add_argument("--epochs", type=int, default=None, help="default 3 (1 with --short)")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default=None,
                   help="comma-separated seeds, one per repetition (replaces --reps/--seed): the reps then also "
                        "compare accuracy over a seed budget, not one seed's luck")
    p.add_argument("--variants", default="A,B,C", help=f"comma-separated, from: {', '.join(VARIANTS)}")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default outputs/bench/train-<time>.json)")
    p.add_argument("--keep", action="store_true", help="keep the run dirs (printed)")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; valid: {', '.join(VARIANTS)}")
    max_rows = args.max_rows or (300 if args.short else None)
    epochs = args.epochs or (1 if args.short else 3)
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed] * args.reps
    args.reps = len(seeds)
    job = job_overrides(max_rows, epochs, args.max_length, seeds[0])
    out = args.out or ROOT / "outputs" / "bench" / f"train-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    log_dir = out.with_suffix(".logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.train " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"job: {' '.join(job)}\nvariants: {', '.join(variants)} x {args.reps} (alternating; seeds "
          f"{', '.join(map(str, seeds))})\nlogs: {log_dir}", flush=True)
    results: list[Result] = []
    try:
        for rep, seed in enumerate(seeds):
            for name in variants:
                r = run_variant(name, job_overrides(max_rows, epochs, args.max_length, seed), work, rep, log_dir)
                results.append(r)
                print(f"  {name:11s} rep {rep}: {r.wall_s:7.1f} s  test acc {r.test['accuracy']:.4f}  "
                      f"train {r.train_samples_per_s or 0:.2f} samples/s", flush=True)
    finally:
        if args.keep:
            print(f"run dirs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary = summarise(results)
    report = {"command": command, "job": job, "variants": variants, "reps": args.reps, "seeds": seeds,
              "time": datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "summary": summary, "runs": [r.__dict__ for r in results]}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(summary))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
