"""Time ``pipeline aggregate`` on N synthetic run directories (target: < 2 s for 1,000 runs).

    python -m bench.aggregate [--n 1000] [--seeds 25] [--no-sweep-json] [--keep]

Builds a sweep of N completed runs (configurations: lr × batch size; ``--seeds`` seeds each) in a temp
dir with the same files the trainer writes (metrics.jsonl with train and val lines, metrics.json,
run_info.json, .hydra/{config,overrides,hydra}.yaml), then times the aggregation twice: in-process
(``pipeline.results.aggregate``, matplotlib import included on the first call) and as the CLI in a fresh
subprocess (what the scheduler's aggregation job runs). Prints seconds.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(root: Path, n: int, seeds: int, sweep_json: bool) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.results.make_runs import lsf_job, val_value, write_run, write_sweep_json

    n_configs = max(1, n // seeds)
    batch_sizes = (8, 16, 32, 64)
    jobs = []
    for num in range(n):
        cfg, seed = divmod(num, seeds)
        cfg %= n_configs
        lr_i, bs = divmod(cfg, len(batch_sizes))
        overrides = [f"trainer.lr={lr_i + 1}e-5", f"trainer.batch_size={batch_sizes[bs]}", f"seed={seed}"]
        curve = [val_value(lr_i % 5, seed % 5, e, 3) for e in (1, 2, 3)]
        write_run(root / str(num), overrides, curve=curve, steps_per_epoch=100, train_lines=5,
                  hydra_gpus=1, job_id=f"1234[{num + 1}]", scheduler="lsf", seed=seed,
                  wall_time_s=1800.0 + num)
        jobs.append(lsf_job(root, num, overrides))
    if sweep_json:
        write_sweep_json(root, "lsf", jobs, gpus=1)


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="number of runs")
    ap.add_argument("--seeds", type=int, default=25, help="seeds per configuration")
    ap.add_argument("--no-sweep-json", action="store_true", help="read GPUs from each hydra.yaml instead")
    ap.add_argument("--keep", action="store_true", help="keep the temp sweep and print its path")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-aggregate-"))
    sweep = tmp / "sweep"
    try:
        t = time.perf_counter()
        build(sweep, args.n, args.seeds, not args.no_sweep_json)
        print(f"built {args.n} runs in {time.perf_counter() - t:.1f} s ({sweep})")

        from pipeline.results import aggregate, load_sweep

        t = time.perf_counter()
        load_sweep(sweep)
        print(f"read runs      (in-process): {time.perf_counter() - t:.3f} s")
        for label in ("first call", "second call"):
            t, c = time.perf_counter(), time.process_time()
            aggregate(sweep)
            print(f"aggregate      (in-process, {label}): {time.perf_counter() - t:.3f} s wall, "
                  f"{time.process_time() - c:.3f} s CPU")

        cpu0 = _children_cpu()
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "pipeline.cli", "aggregate", str(sweep)], cwd=ROOT,
                           capture_output=True, text=True)
        elapsed = time.perf_counter() - t
        if p.returncode != 0:
            print(p.stderr, file=sys.stderr)
            return p.returncode
        print(f"pipeline aggregate (CLI subprocess): {elapsed:.3f} s wall, {_children_cpu() - cpu0:.3f} s CPU "
              f"(target < 2 s for 1,000 runs; wall time grows when other processes share the cores)")
    finally:
        if args.keep:
            print(f"kept {sweep}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
