"""Start-up: process start to the first optimizer step of ``run.py``, with a cold and a warm token cache.

    python -m bench.startup                 # 3 x (cold, warm), full BBC, MiniLM, max_length 512
    python -m bench.startup --reps 5 --importtime

Each repetition runs ``run.py`` twice in a fresh output root: cold (empty token cache: the CSV is read,
cleaned, split and tokenised) and then warm (the cache that run wrote). The job logs its own start-up
(``start-up X s to the first step (... imports/config/preflight, ... data, ... model)``, measured from the
process's start time in /proc, so the re-exec of ``run.py`` is included) and writes ``metrics.jsonl`` after
step 1 (``trainer.log_every_steps=1``); the bench then kills it, so no evaluation runs. Reported, as medians:

* ``to_first_step``: process start -> the first step begins (all set-up; what the 8 s target is about),
  with its parts;
* ``first_step_done``: spawn -> step 1 finished (set-up plus one training step of 16 x up to 512 tokens).

``--importtime`` adds one warm run under ``python -X importtime`` and lists the slowest top-level imports.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
STARTUP_LINE = re.compile(r"start-up ([\d.]+) s to the first step \(([\d.]+) s imports/config/preflight, "
                          r"([\d.]+) s data, ([\d.]+) s model\)")


def parse_startup(log_text: str) -> dict[str, float] | None:
    """The start-up line ``pipeline.train.train`` logs before its first step, as numbers."""
    m = STARTUP_LINE.search(log_text)
    if not m:
        return None
    total, imports, data, model = map(float, m.groups())
    return {"to_first_step": total, "imports_config_preflight": imports, "data": data, "model": model}


def env() -> dict[str, str]:
    e = {**os.environ, **MALLOC_ENV}
    e.setdefault("HF_HUB_OFFLINE", "1")
    e.setdefault("PIPELINE_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    return e


def one_run(root: Path, name: str, overrides: list[str], timeout: float, prefix: list[str] | None = None,
            stderr_to: Path | None = None) -> dict[str, float]:
    """Start run.py, wait for the step-1 row of metrics.jsonl, kill it; the timings."""
    run_dir = root / name
    cmd = [*(prefix or [sys.executable]), str(ROOT / "run.py"), *overrides, "trainer.log_every_steps=1",
           f"paths.output_root={root}", f"hydra.run.dir={run_dir}"]
    err = open(stderr_to, "w") if stderr_to else subprocess.DEVNULL
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=err,
                            start_new_session=True)
    rows = run_dir / "metrics.jsonl"
    done_at = None
    try:
        while time.time() - t0 < timeout and proc.poll() is None:
            if rows.is_file():
                for line in rows.read_text().splitlines():
                    row = json.loads(line) if line.strip().endswith("}") else {}
                    if row.get("split") == "train" and row.get("step") == 1:
                        done_at = row["time"]
                if done_at:
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if stderr_to:
            err.close()
    log_text = (run_dir / "run.log").read_text() if (run_dir / "run.log").is_file() else ""
    parts = parse_startup(log_text)
    if done_at is None or parts is None:
        raise RuntimeError(f"{name}: no first step within {timeout:.0f} s (exit {proc.returncode}); see {run_dir}")
    return {**parts, "first_step_done": done_at - t0}


def import_profile(stderr_file: Path, top: int = 12) -> list[tuple[str, float]]:
    """Slowest top-level imports (cumulative seconds) from ``python -X importtime`` output."""
    out = []
    for line in stderr_file.read_text().splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        name = parts[2]  # " " + two spaces per nesting level + the module name
        if name.startswith(" ") and not name.startswith("  "):
            out.append((name.strip(), int(parts[1]) / 1e6))
    return sorted(out, key=lambda x: -x[1])[:top]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the first step")
    p.add_argument("--importtime", action="store_true", help="also profile imports (one warm run)")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default outputs/bench/startup-<time>.json)")
    p.add_argument("overrides", nargs="*", help="more Hydra overrides for run.py")
    args = p.parse_args(argv)
    overrides = [f"trainer.max_length={args.max_length}", *args.overrides]
    out = args.out or ROOT / "outputs" / "bench" / f"startup-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    imports: list[tuple[str, float]] = []
    try:
        for rep in range(args.reps):
            root = work / f"rep{rep}"
            for kind in ("cold", "warm"):  # the cold run fills this root's token cache
                r = one_run(root, kind, overrides, args.timeout)
                runs[kind].append(r)
                print(f"  rep {rep} {kind}: first step at {r['to_first_step']:.2f} s "
                      f"(imports/config/preflight {r['imports_config_preflight']:.2f}, data {r['data']:.2f}, "
                      f"model {r['model']:.2f}); step 1 done at {r['first_step_done']:.2f} s", flush=True)
        if args.importtime:
            trace = work / "importtime.txt"
            one_run(work / "rep0", "importtime", overrides, args.timeout, [sys.executable, "-X", "importtime"],
                    trace)
            imports = import_profile(trace)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {kind: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for kind, rs in runs.items()}
    print("\n| cache | to first step (s) | imports/config/preflight | data | model | step 1 done (s) |")
    print("|---|---|---|---|---|---|")
    for kind, m in med.items():
        print(f"| {kind} | {m['to_first_step']:.2f} | {m['imports_config_preflight']:.2f} | {m['data']:.2f} "
              f"| {m['model']:.2f} | {m['first_step_done']:.2f} |")
    if imports:
        print("\nslowest top-level imports (cumulative s, warm run under -X importtime):")
        for name, sec in imports:
            print(f"  {sec:6.2f}  {name}")
    command = "python -m bench.startup " + " ".join(argv if argv is not None else sys.argv[1:])
    out.write_text(json.dumps({"command": command, "overrides": overrides, "reps": args.reps,
                               "time": datetime.now().isoformat(timespec="seconds"), "median": med,
                               "runs": runs, "imports": imports}, indent=2) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
