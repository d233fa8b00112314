"""Sweep overhead on the fake LSF: bsub calls, launch time, one status poll, aggregation, for N jobs.

    python -m bench.sweep [--n 10 100 1000 2500]

For each N, a real ``python run.py -m cluster=lsf seed=range(N) ...`` is launched against the fake LSF
(tests/fake_lsf) while one blocker job holds the only execution slot, so the sweep's jobs stay pending
(a busy cluster): what is measured is our own overhead, not training. Reported per N:

- ``bsub`` calls for the arrays (target: ceil(N / max_array_size)) and in all (+1 aggregation job);
- launch wall time: process start to return (Hydra composes every job's config; then pickling, bsub);
- one ``pipeline status`` poll: wall time, ``bjobs`` calls (target: 1), and our own share
  (the poll minus one bare ``bjobs`` of the same jobs: target < 1 s at N=1,000);
- ``pipeline aggregate`` of N synthetic completed run dirs (target: < 2 s at N=1,000; bench.aggregate).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE_BIN = ROOT / "tests" / "fake_lsf" / "bin"


def _env(state: Path, out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSB_", "FAKE_LSF"))}
    env.update({
        "PATH": f"{FAKE_BIN}{os.pathsep}{env.get('PATH', '')}", "FAKE_LSF_DIR": str(state),
        "FAKE_LSF_MAX_RUNNING": "1", "FAKE_LSF_POLL": "0.5", "PIPELINE_OUTPUT_ROOT": str(out),
        "PIPELINE_DATA_DIR": env.get("PIPELINE_DATA_DIR", str(ROOT.parent / "shared" / "data")),
        "HF_HUB_OFFLINE": "1",
    })
    return env


def _calls(state: Path, cmd: str) -> list[dict]:
    log = state / "calls.log"
    if not log.is_file():
        return []
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return [r for r in rows if r.get("cmd") == cmd]


def _timed(argv: list[str], env: dict[str, str], timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t0, r


def one(n: int, max_array: int) -> dict[str, float | int]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-sweep-{n}-"))
    state, out = work / "lsf", work / "out"
    state.mkdir()
    env = _env(state, out)
    try:
        subprocess.run(["bsub", "-J", "blocker", "sleep", "3600"], env=env, check=True, capture_output=True)
        sweep = out / "sweep"
        launch_s, r = _timed([sys.executable, "run.py", "-m", "cluster=lsf", "model=tiny", "data.max_rows=200",
                              f"hydra.sweep.dir={sweep}", f"hydra.launcher.max_array_size={max_array}",
                              f"seed=range(0,{n})"], env)
        if r.returncode != 0:
            raise RuntimeError(f"launch failed: {r.stderr.strip()[-500:]}")
        bsubs = _calls(state, "bsub")[1:]  # minus the blocker
        manifest = json.loads((sweep / "sweep.json").read_text())
        ids = [a["job_id"] for a in manifest["arrays"]]
        arrays = bsubs[:len(bsubs) - (1 if manifest.get("aggregate_job_id") else 0)]
        before = len(_calls(state, "bjobs"))
        status_s, st = _timed([sys.executable, "-m", "pipeline.cli", "status", str(sweep)], env)
        bjobs_calls = len(_calls(state, "bjobs")) - before
        bare_s, _ = _timed(["bjobs", "-a", "-o", "jobid stat job_name exit_code", "-json", *ids], env)
        agg = subprocess.run([sys.executable, "-m", "bench.aggregate", "--n", str(n)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=1800)
        agg_s = _last_seconds(agg.stdout)
        return {"n": n, "bsub_arrays": len(arrays), "bsub_target": math.ceil(n / max_array),
                "bsub_all": len(bsubs), "launch_s": launch_s, "status_s": status_s, "bjobs_calls": bjobs_calls,
                "status_own_s": max(0.0, status_s - bare_s), "aggregate_s": agg_s, "status_rc": st.returncode}
    finally:
        subprocess.run(["bkill", "0"], env=env, capture_output=True)
        subprocess.run(["pkill", "-f", f"FAKE_LSF_DIR={state}"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def _last_seconds(text: str) -> float | None:
    """The CLI figure printed by bench.aggregate (a line like 'cli subprocess: 1.23 s')."""
    for line in reversed(text.splitlines()):
        if "cli" in line.lower() and " s" in line:
            for tok in line.replace("s", " ").split():
                try:
                    return float(tok)
                except ValueError:
                    continue
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 100, 1000, 2500])
    ap.add_argument("--max-array-size", type=int, default=1000)
    args = ap.parse_args(argv)
    header = f"{'N':>6} {'bsub arrays':>11} {'target':>6} {'bsub all':>8} {'launch s':>9} {'status s':>9} " \
             f"{'bjobs':>5} {'own s':>6} {'aggregate s':>11}"
    print(header)
    for n in args.n:
        r = one(n, args.max_array_size)
        agg = f"{r['aggregate_s']:.2f}" if r["aggregate_s"] is not None else "?"
        print(f"{r['n']:>6} {r['bsub_arrays']:>11} {r['bsub_target']:>6} {r['bsub_all']:>8} {r['launch_s']:>9.2f} "
              f"{r['status_s']:>9.2f} {r['bjobs_calls']:>5} {r['status_own_s']:>6.2f} {agg:>11}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
