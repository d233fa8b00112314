"""``pipeline aggregate``: every file written, PNGs valid, partial and empty sweeps included."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.cli.cli import app
from pipeline.results import aggregation
from tests.results.make_runs import grid_sweep, lsf_job, write_run, write_sweep_json

FILES = ("runs.csv", "summary.csv", "summary.md", "results.json", "curves.png", "final.png")


def check_png(path):
    import matplotlib.image as mpimg

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024, path
    img = mpimg.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100


def test_aggregate_partial_sweep(tmp_path):
    import pandas as pd

    root = tmp_path / "sweep"
    expected = grid_sweep(root, seeds=(0, 1, 2))
    write_run(root / "6", ["trainer.lr=3e-4", "seed=0"], state="failed")
    write_run(root / "7", ["trainer.lr=3e-4", "seed=1"], state="running", curve=[0.5], torn_line=True)
    write_run(root / "8", ["trainer.lr=3e-4", "seed=2"], state="started")  # .hydra only
    out = CliRunner().invoke(app, ["aggregate", str(root)])
    assert out.exit_code == 0, out.output
    res = root / "results"
    for name in FILES:
        assert (res / name).is_file() and (res / name).stat().st_size > 0, name
        assert str(res / name) in out.stdout
    check_png(res / "curves.png")
    check_png(res / "final.png")
    runs = pd.read_csv(res / "runs.csv")
    assert len(runs) == 9 and set(runs.state) == {"completed", "failed", "running"}
    summary = pd.read_csv(res / "summary.csv", dtype={"trainer.lr": str})
    assert len(summary) == 3
    lr2 = summary[summary["trainer.lr"] == "2e-4"].iloc[0]
    import statistics

    vals = [e["val_macro_f1"] for e in expected.values() if e["lr"] == "2e-4"]
    assert lr2["val_macro_f1_mean"] == pytest.approx(statistics.mean(vals))
    assert lr2["val_macro_f1_std"] == pytest.approx(statistics.stdev(vals))
    assert bool(lr2["best"])
    data = json.loads((res / "results.json").read_text())
    assert data["metric"] == "val_macro_f1" and len(data["runs"]["rows"]) == 9
    md = (res / "summary.md").read_text()
    assert "|---" in md and "± " in md


def test_aggregate_empty_sweep_still_writes(tmp_path):
    root = tmp_path / "sweep"
    root.mkdir()
    write_sweep_json(root, "lsf", [lsf_job(root, n, [f"seed={n}"]) for n in range(3)])
    paths = aggregation.aggregate(root)
    for name in FILES:
        assert paths[name].is_file()
    check_png(paths["curves.png"])
    check_png(paths["final.png"])
    assert "3 missing" in paths["summary.md"].read_text()


def test_aggregate_many_configs_and_out_dir(tmp_path):
    root = tmp_path / "sweep"
    grid_sweep(root, lrs=tuple(f"{i}e-5" for i in range(1, 26)), seeds=(0,))
    paths = aggregation.aggregate(root, metric="val_accuracy", out_dir=tmp_path / "elsewhere")
    assert paths["curves.png"].parent == tmp_path / "elsewhere"
    check_png(paths["curves.png"])
    check_png(paths["final.png"])


def test_curve_band():
    from pipeline.results.plots import band

    steps, mean, lo, hi = band([[(10, 0.5), (20, 0.7)], [(10, 0.7), (20, 0.9)], [(10, 0.6)]])
    assert steps == [10, 20]
    assert mean == pytest.approx([0.6, 0.8]) and lo == [0.5, 0.7] and hi == [0.7, 0.9]


def test_unknown_metric_exit_2(tmp_path):
    grid_sweep(tmp_path / "s")
    out = CliRunner().invoke(app, ["aggregate", str(tmp_path / "s"), "--metric", "bogus"])
    assert out.exit_code == 2 and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "results").exists()
