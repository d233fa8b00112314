"""``pipeline results`` on one grid sweep in every format, recorded before studies were shown
(``tests/results/golden/grid_results.*``), so that a grid's output stays byte-identical.

    python -m tests.results.grid_golden    # rewrite the golden files (only when a grid's output is meant to change)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from typer.testing import CliRunner

from tests.results.make_runs import grid_sweep, write_run

GOLDEN = Path(__file__).parent / "golden"
#: file suffix -> the arguments after ``pipeline results SWEEP`` (table: at 80 columns)
CASES = {"table.txt": [], "by_seed.txt": ["--by-seed"], "md": ["-f", "md"], "csv": ["-f", "csv"],
         "json": ["-f", "json"], "latex": ["-f", "latex"]}


def make_grid(root: Path) -> Path:
    """2 lr x 2 seeds completed, one pruned, one failed, one running run (LSF job ids)."""
    grid_sweep(root, scheduler="lsf")
    write_run(root / "4", ["trainer.lr=3e-4", "seed=0"], state="pruned", curve=[0.5, 0.55])
    write_run(root / "5", ["trainer.lr=3e-4", "seed=1"], state="failed")
    write_run(root / "6", ["trainer.lr=5e-4", "seed=0"], state="running")
    return root


def outputs(root: Path) -> dict[str, str]:
    """What ``pipeline results`` prints for each case, with the sweep's path written as SWEEP."""
    from pipeline.cli.cli import app

    out = {}
    for suffix, args in CASES.items():
        r = CliRunner().invoke(app, ["results", str(root), *args], env={"COLUMNS": "80"})
        assert r.exit_code == 0, r.output
        out[suffix] = r.stdout.replace(str(root), "SWEEP")
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for suffix, text in outputs(make_grid(Path(tmp) / "grid")).items():
            (GOLDEN / f"grid_results.{suffix}").write_text(text)
            print(f"wrote {GOLDEN / f'grid_results.{suffix}'}", file=sys.stderr)


if __name__ == "__main__":
    main()
