"""``pipeline --help`` and ``pipeline status`` stay light: no torch, pandas, matplotlib, ... at start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.results.make_runs import grid_sweep, write_run

HEAVY = ("torch", "transformers", "pandas", "numpy", "matplotlib", "sklearn", "scipy", "yaml", "omegaconf",
         "optuna")
PROBE = """
import sys, time
t = time.perf_counter()
from pipeline.cli.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
print("SECONDS=%.3f" % (time.perf_counter() - t), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["status", "SWEEP"], ["results", "SWEEP", "-f", "csv"]])
def test_light_startup(tmp_path, args):
    grid_sweep(tmp_path / "s", scheduler="lsf")
    write_run(tmp_path / "s" / "9", ["trainer.lr=1e-4", "seed=9"], state="running")  # status reads metrics.jsonl
    argv = [a.replace("SWEEP", str(tmp_path / "s")) for a in args]
    p = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    info = dict(line.split("=", 1) for line in p.stderr.splitlines() if line.startswith(("HEAVY=", "SECONDS=")))
    assert info.get("HEAVY") == "", p.stderr
    assert float(info["SECONDS"]) < 2.0  # typically ~0.3 s; generous for loaded CI machines
