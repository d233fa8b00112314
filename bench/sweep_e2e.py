"""A whole sweep, from the command to the printed table: one sweep point per job (k=1) vs four (k=4).

    python -m bench.sweep_e2e [--points 12] [--steps 3] [--rows 120] [--only local|lsf]

A 12-point sweep (``seed=0..11``) of short real runs (pretrained MiniLM from the PyPI package, a few
optimizer steps each on a few BBC rows) is run four ways, side by side in one run: local processes and
the fake LSF (tests/fake_lsf, 2 execution slots like this 2-core machine), each with
``hydra.launcher.runs_per_job=1`` and ``=4``. Wall time is measured from the ``python run.py -m`` command
to the results table on stdout: local sweeps print it themselves at the end; on LSF the command returns
at once, the aggregation job runs when the array has ended and ``pipeline results`` prints the table.

Printed: wall time to the table per way, the k=4 / k=1 ratio, and the start-up seconds per run (process
or point start to the first optimizer step, from each run's ``metrics.json`` ``startup_s``) for the first
run of a job and for the additional runs of a packed job; and whether every run's metrics are identical
between k=1 and k=4 (they must be: the same seeds, the same initial weights).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE_BIN = ROOT / "tests" / "fake_lsf" / "bin"


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSB_", "FAKE_LSF", "PYTEST_"))}
    env.update({
        "PATH": f"{FAKE_BIN}{os.pathsep}{env.get('PATH', '')}", "FAKE_LSF_DIR": str(work / "lsf"),
        "FAKE_LSF_MAX_RUNNING": "2", "FAKE_LSF_POLL": "0.2", "PIPELINE_OUTPUT_ROOT": str(work / "out"),
        "PIPELINE_DATA_DIR": env.get("PIPELINE_DATA_DIR", str(ROOT.parent / "shared" / "data")),
        "PIPELINE_PROCESSED_DIR": str(work / "processed"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
        "MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296",
    })
    (work / "lsf").mkdir(parents=True, exist_ok=True)
    return env


def _overrides(points: int, steps: int, rows: int) -> list[str]:
    return ["model=minilm", f"data.max_rows={rows}", "trainer.max_length=64", "trainer.batch_size=8",
            "trainer.epochs=1", f"trainer.max_steps={steps}", "trainer.eval_batch_size=32",
            f"seed=range(0,{points})"]


def _wait_results(sweep: Path, timeout: float) -> None:
    """Until the aggregation job has written results/results.json."""
    deadline = time.time() + timeout
    while not (sweep / "results" / "results.json").is_file():
        if time.time() > deadline:
            raise TimeoutError(f"no results in {sweep} after {timeout:.0f} s")
        time.sleep(0.2)


def one(where: str, k: int, points: int, steps: int, rows: int, work: Path, env: dict[str, str]) -> dict:
    sweep = work / "out" / f"{where}_k{k}"
    cluster = ["cluster=lsf", "hydra.launcher.timeout_min=60"] if where == "lsf" else ["cluster=local"]
    argv = [sys.executable, "run.py", "-m", *cluster, *_overrides(points, steps, rows),
            f"hydra.launcher.runs_per_job={k}", f"hydra.sweep.dir={sweep}"]
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{where} k={k}: {r.stderr.strip()[-800:]}")
    table = r.stdout
    if where == "lsf":
        _wait_results(sweep, 1800)
        res = subprocess.run([sys.executable, "-m", "pipeline.cli", "results", str(sweep)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        table = res.stdout
    wall = time.perf_counter() - t0
    if "best by" not in table and "val_macro_f1" not in table:
        raise RuntimeError(f"{where} k={k}: no results table printed:\n{table[-800:]}")
    manifest = json.loads((sweep / "sweep.json").read_text())
    first_nums = {p["job_nums"][0] for p in manifest.get("packs", [])} or set(range(points))
    first, more, metrics = [], [], {}
    for n in range(points):
        m = json.loads((sweep / str(n) / "metrics.json").read_text())
        assert m["status"] == "completed", (where, k, n, m.get("error"))
        (first if n in first_nums else more).append(float(m["startup_s"]))
        metrics[n] = (m["val"], m["test"])
    return {"where": where, "k": k, "wall": wall, "first": first, "more": more, "metrics": metrics}


def _mean(xs: list[float]) -> str:
    return f"{statistics.mean(xs):5.2f}" if xs else "    -"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=12)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=120)
    ap.add_argument("--only", choices=["local", "lsf"], default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-e2e-"))
    env = _env(work)
    wheres = [args.only] if args.only else ["local", "lsf"]
    out: dict[tuple[str, int], dict] = {}
    try:
        # warm the token cache and the page cache once, outside the timings (both ways would share them)
        subprocess.run([sys.executable, "run.py", *_overrides(1, 1, args.rows)[:-1], "seed=0",
                        f"hydra.run.dir={work / 'warmup'}"], cwd=ROOT, env=env, capture_output=True, timeout=600)
        for where in wheres:
            for k in (1, 4):  # side by side: k=1 then k=4 on the same machine state
                r = one(where, k, args.points, args.steps, args.rows, work, env)
                out[(where, k)] = r
                print(f"  {where:<5} k={k}: {r['wall']:6.1f} s to the table", file=sys.stderr, flush=True)
    finally:
        subprocess.run(["bkill", "0"], env=env, capture_output=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{args.points}-point sweep, MiniLM, {args.steps} steps x batch 8 per run, {args.rows} rows, 2 slots")
    print(f"{'where':<6} {'k':>2} {'wall s':>7} {'k4/k1':>6} {'start-up s: first':>18} {'more':>6} "
          f"{'same metrics':>12}")
    for where in wheres:
        base = out[(where, 1)]
        for k in (1, 4):
            r = out[(where, k)]
            ratio = r["wall"] / base["wall"]
            same = "yes" if r["metrics"] == base["metrics"] else "NO"
            print(f"{where:<6} {k:>2} {r['wall']:7.1f} {ratio:6.2f} {_mean(r['first']):>18} {_mean(r['more']):>6} "
                  f"{same:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
