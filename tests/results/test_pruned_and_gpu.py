"""New states and fields to show (BRIEF interfaces 1 and 2): pruned runs (a final, good state, counted
apart, sorted after the completed ones, never a failure) and GPU use (metrics.json's "gpu" in csv/json and
the table's footer; progress.json's "gpu" for running jobs in status and watch). No GPU needed."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from pipeline.cli.cli import app
from pipeline.results import watch as W
from pipeline.results.compare import run_table, seed_table
from pipeline.results.formats import footer_lines
from pipeline.results.runs import load_sweep
from tests.results.make_runs import gpu_use, progress_json, write_run

LOW = "GPU busy below 40 % in 80 % of samples: the data loader is likely the bottleneck (raise data.num_workers)"


def run(*args: str, width: int = 80):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})


@pytest.fixture
def study(tmp_path):
    """2 completed and 2 pruned trials; pruned job 3 stopped at a better validation value than any completed."""
    root = tmp_path / "study"
    for n, (state, curve) in enumerate([("completed", [0.6, 0.7, 0.72]), ("pruned", [0.5]),
                                        ("completed", [0.6, 0.7, 0.75]), ("pruned", [0.6, 0.8])]):
        write_run(root / str(n), [f"trainer.lr={n + 1}e-4", "seed=0"], state=state, curve=curve)
    return root


def test_pruned_runs_are_counted_apart_and_sorted_after_completed(study):
    runs = load_sweep(study).runs
    assert [r.state for r in runs] == ["completed", "pruned", "completed", "pruned"]
    assert all(r.error is None for r in runs)
    table = run_table(runs)
    assert [row["job"] for row in table.rows] == ["2", "0", "3", "1"]  # completed by rank, then pruned
    assert [row["rank"] for row in table.rows] == [1, 2, None, None]
    assert table.rows[table.best]["job"] == "2"  # a pruned run is never the best
    lines = footer_lines(table)
    assert lines[0] == "total: 4 runs (2 completed, 2 pruned)"
    assert lines[-1] == "best by val_macro_f1 (max): job 2 = 0.7500"
    configs = seed_table(runs)
    assert [row["state"] for row in configs.rows] == ["1 completed", "1 completed", "1 pruned", "1 pruned"]


def test_cli_shows_pruned_as_a_good_final_state(study):
    out = run("results", str(study))
    assert out.exit_code == 0, out.output
    assert "PRUNED" in out.stdout and "FAILED" not in out.stdout
    assert "total: 4 runs (2 completed, 2 pruned)" in out.stdout
    out = run("status", str(study), "--no-scheduler")
    assert out.exit_code == 0, out.output  # pruned is not a failure
    assert "4 jobs: 2 completed, 2 pruned" in out.stdout
    assert out.stdout.count("PRUNED") == 2 and "RUNNING" not in out.stdout
    out = run("logs", str(study))
    assert out.exit_code == 0 and "no failed jobs" in out.stdout
    snap = W.snapshot(study, "val_macro_f1", ask_scheduler=False)
    assert snap.done and "4 jobs: 2 completed, 2 pruned" in W.summary_lines(snap)


@pytest.fixture
def gpu_sweep(tmp_path):
    root = tmp_path / "gpu"
    write_run(root / "0", ["trainer.lr=1e-4"], hydra_gpus=1, curve=[0.6, 0.7], gpu=gpu_use(83.4, 12.1, 40.0))
    write_run(root / "1", ["trainer.lr=2e-4"], hydra_gpus=1, curve=[0.5, 0.6], gpu=gpu_use(21.0, 3.5, 40.0, LOW))
    return root


def test_gpu_use_in_csv_and_json(gpu_sweep):
    out = run("results", str(gpu_sweep), "-f", "csv")
    rows = {r["job"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert rows["0"]["gpu_util_mean"] == "83.4" and rows["0"]["gpu_peak_mem_gb"] == "12.1"
    assert rows["0"]["gpu_mem_total_gb"] == "40" and rows["0"]["gpu_warning"] == ""
    assert rows["1"]["gpu_warning"] == LOW
    data = json.loads(run("results", str(gpu_sweep), "-f", "json").stdout)
    by_job = {r["job"]: r for r in data["rows"]}
    assert by_job["1"]["gpu_util_mean"] == 21.0 and by_job["1"]["gpu_warning"] == LOW


def test_gpu_use_in_the_table_footer(gpu_sweep):
    out = run("results", str(gpu_sweep))
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())  # rich wraps a long warning at 80 columns
    assert "GPU: mean utilisation 83 %, peak memory 12.1 of 40 GB (best run, job 0)" in text
    assert f"GPU warning, job 1: {LOW}" in text
    assert all(len(line) <= 80 for line in out.stdout.splitlines())
    md = run("results", str(gpu_sweep), "-f", "md").stdout
    assert "GPU: mean utilisation 83 %" in md and "GPU warning, job 1" in md


def test_cpu_sweep_has_no_gpu_columns_or_lines(tmp_path):
    write_run(tmp_path / "cpu" / "0", ["seed=0"])
    out = run("results", str(tmp_path / "cpu"), "-f", "csv")
    assert "gpu_util_mean" not in out.stdout and "gpu_warning" not in out.stdout
    assert "GPU" not in run("results", str(tmp_path / "cpu")).stdout


def _running(tmp_path, util: float | None):
    root = tmp_path / ("gpu" if util is not None else "cpu")
    write_run(root / "0", ["trainer.lr=1e-4"], hydra_gpus=1, gpu=gpu_use())
    write_run(root / "1", ["trainer.lr=2e-4"], state="running", progress=progress_json(util=util))
    return root


@pytest.mark.parametrize("width", [80, 120])
def test_status_and_watch_show_a_gpu_column_for_running_jobs(tmp_path, width):
    root = _running(tmp_path, util=91.5)
    out = run("status", str(root), "--no-scheduler", width=width)
    lines = out.stdout.splitlines()
    assert all(len(line) <= width for line in lines), out.stdout
    header = next(line for line in lines if line.split()[:2] == ["job", "state"])
    assert "GPU" in header.split()
    row = next(line for line in lines if line.lstrip().startswith("1 "))
    assert "92% 3.2G" in row and "120/400" in row
    from rich.console import Console

    buf = io.StringIO()
    snap = W.snapshot(root, "val_macro_f1", ask_scheduler=False)
    Console(file=buf, width=width, color_system=None).print(W.table(snap, width))
    table = buf.getvalue().splitlines()
    assert "GPU" in table[0].split() and all(len(line) <= width for line in table), table
    assert "92% 3.2G" in next(line for line in table if line.lstrip().startswith("1 "))


def test_no_gpu_column_when_no_job_reports_one(tmp_path):
    root = _running(tmp_path, util=None)
    out = run("status", str(root), "--no-scheduler")
    assert "GPU" not in out.stdout
    snap = W.snapshot(root, "val_macro_f1", ask_scheduler=False)
    assert all(j.gpu == "" for j in snap.jobs)
