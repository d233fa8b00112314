"""Reading run directories and building the compare tables (pure functions, synthetic runs)."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest

from pipeline.results import compare, formats, metrics
from pipeline.results.runs import (
    NotASweepError,
    Run,
    load_sweep,
    load_sweeps,
    overrides_to_params,
    parse_overrides,
    requested_gpus,
    sweep_labels,
)
from tests.results.make_runs import grid_sweep, write_run


@pytest.fixture
def grid(tmp_path):
    """2 lr × 2 seeds, completed, 1 GPU per job requested through hydra.yaml's launcher."""
    expected = grid_sweep(tmp_path / "sweep", gpus=1, wall_time_s=1800.0)
    return tmp_path / "sweep", expected


def test_overrides_parse_plain_and_quoted():
    assert parse_overrides("- trainer.lr=1e-4\n- seed=0\n") == ["trainer.lr=1e-4", "seed=0"]
    assert parse_overrides("[]\n") == []
    assert parse_overrides("- 'data.text_columns=[title,text]'\n- seed=1\n") == [
        "data.text_columns=[title,text]", "seed=1"]
    assert overrides_to_params(["+a=1", "++b.c=x=y", "~d"]) == {"a": "1", "b.c": "x=y", "d": "~"}


def test_requested_gpus_from_launcher_block(tmp_path):
    write_run(tmp_path / "r", ["seed=0"], hydra_gpus=2)
    assert requested_gpus(tmp_path / "r" / ".hydra" / "hydra.yaml") == 2
    write_run(tmp_path / "s", ["seed=0"])
    assert requested_gpus(tmp_path / "s" / ".hydra" / "hydra.yaml") is None


def test_run_table_ranks_and_marks_best(grid):
    path, expected = grid
    sweep = load_sweep(path)
    table = compare.run_table(sweep.runs)
    assert table.params == ["trainer.lr", "seed"]  # only what varies
    best = table.rows[table.best]
    top = max(expected.values(), key=lambda e: e["val_macro_f1"])
    assert best["job"] == str(next(k for k, e in expected.items() if e is top))
    assert best["val_macro_f1"] == pytest.approx(top["val_macro_f1"])
    values = [r["val_macro_f1"] for r in table.rows]
    assert values == sorted(values, reverse=True)
    assert [r["rank"] for r in table.rows] == [1, 2, 3, 4]


def test_mode_min_and_all_params(grid):
    path, _ = grid
    runs = load_sweep(path).runs
    table = compare.run_table(runs, "val_loss")
    assert table.mode == "min"
    losses = [r["val_loss"] for r in table.rows]
    assert losses == sorted(losses)
    assert compare.run_table(runs, all_params=True).params == ["trainer.lr", "seed"]
    write_run(path / "9", ["trainer.lr=1e-4", "seed=5", "model=tiny"])
    runs = load_sweep(path).runs
    assert "model" in compare.run_table(runs).params  # varies now (absent elsewhere)


def test_by_seed_mean_and_sample_std(grid):
    path, expected = grid
    table = compare.seed_table(load_sweep(path).runs)
    assert len(table.rows) == 2
    assert "seed" not in table.params
    for row in table.rows:
        vals = [e["val_macro_f1"] for e in expected.values() if e["lr"] == row["trainer.lr"]]
        assert row["n"] == 2
        assert row["val_macro_f1_mean"] == pytest.approx(statistics.mean(vals))
        assert row["val_macro_f1_std"] == pytest.approx(statistics.stdev(vals))
        tvals = [e["test_macro_f1"] for e in expected.values() if e["lr"] == row["trainer.lr"]]
        assert row["test_macro_f1_mean"] == pytest.approx(statistics.mean(tvals))
        assert row["test_macro_f1_std"] == pytest.approx(statistics.stdev(tvals))
        assert row["gpu_hours"] == pytest.approx(2 * 0.5)  # summed over seeds
    best = table.rows[table.best]
    assert best["trainer.lr"] == "2e-4"
    md = formats.to_markdown(table)
    mean, std = best["val_macro_f1_mean"], best["val_macro_f1_std"]
    assert f"{mean:.4f} ± {std:.4f}" in md


def test_gpu_hours_and_total(grid):
    path, _ = grid
    table = compare.run_table(load_sweep(path).runs)
    assert all(r["gpu_hours"] == pytest.approx(1800.0 * 1 / 3600) for r in table.rows)
    assert table.total_gpu_hours == pytest.approx(2.0)
    assert "total: 2.000 GPU hours over 4 runs" in formats.to_markdown(table)


def test_gpus_from_sweep_json_win(tmp_path):
    grid_sweep(tmp_path / "s", scheduler="lsf", gpus=2, wall_time_s=3600.0)
    runs = load_sweep(tmp_path / "s").runs
    assert {r.gpus for r in runs} == {2}
    assert compare.run_table(runs).total_gpu_hours == pytest.approx(8.0)


def test_cpu_runs_cost_zero_gpu_hours(tmp_path):
    grid_sweep(tmp_path / "s")
    assert compare.run_table(load_sweep(tmp_path / "s").runs).total_gpu_hours == 0.0


def test_failed_running_corrupt_missing_rows(tmp_path):
    path = tmp_path / "s"
    jobs = []
    for num, state in enumerate(("completed", "failed", "running", "corrupt")):
        ov = [f"trainer.lr={num}e-4", "seed=0"]
        write_run(path / str(num), ov, state=state, torn_line=state == "running")
        jobs.append({"job_num": num, "job_id": None, "overrides": ov})
    jobs.append({"job_num": 4, "job_id": None, "overrides": ["trainer.lr=9e-4", "seed=0"]})
    (path / "sweep.json").write_text(json.dumps({"scheduler": "local", "jobs": jobs, "gpus_per_job": 0}))
    runs = load_sweep(path).runs
    states = {r.label: r.state for r in runs}
    assert states == {"0": "completed", "1": "failed", "2": "running", "3": "corrupt", "4": "missing"}
    table = compare.run_table(runs)
    by_job = {r["job"]: r for r in table.rows}
    assert by_job["1"]["error"] == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert by_job["3"]["error"].startswith("metrics.json does not parse")
    assert by_job["4"]["trainer.lr"] == "9e-4"  # params of a missing run come from sweep.json
    assert table.rows[table.best]["job"] == "0"
    assert table.rows[0]["job"] == "0"  # ranked runs first, then the rest by state
    cols, rows = formats.human_rows(table)
    states_shown = [r[cols.index("state")] for r in rows]
    assert {"COMPLETED", "FAILED", "RUNNING", "CORRUPT", "MISSING"} <= set(states_shown)


def test_torn_last_line_is_skipped(tmp_path):
    write_run(tmp_path / "r", ["seed=0"], state="running", curve=[0.5, 0.6], torn_line=True)
    run = load_sweep(tmp_path / "r").runs[0]
    assert [v for _, v in run.curve("macro_f1")] == [0.5, 0.6]
    assert len(run.jsonl()) == 2 * 3


def test_unknown_metric_lists_present():
    run = Run(sweep="s", sweep_dir=None, job_num=0, name="0", run_dir=None, state="completed",
                metrics={"val_macro_f1": 0.5, "custom_x": 1.0})
    with pytest.raises(metrics.UnknownMetricError, match="custom_x"):
        metrics.check_metric("val_f2", [run])
    metrics.check_metric("custom_x", [run])
    metrics.check_metric("test_accuracy", [])  # standard names are fine before any run finished


def test_single_run_dir_is_a_sweep_of_one(tmp_path):
    write_run(tmp_path / "runs" / "2024-01-01_10-00-00", ["seed=0"])
    sweep = load_sweep(tmp_path / "runs" / "2024-01-01_10-00-00")
    assert sweep.single_run and len(sweep.runs) == 1 and sweep.runs[0].state == "completed"


def test_not_a_sweep(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotASweepError):
        load_sweep(tmp_path / "empty")
    with pytest.raises(NotASweepError):
        load_sweep(tmp_path / "nope")


def test_multi_sweep_side_by_side(tmp_path):
    grid_sweep(tmp_path / "a" / "sweep1")
    grid_sweep(tmp_path / "b" / "sweep2", lrs=("5e-5",))
    sweeps = load_sweeps([tmp_path / "a" / "sweep1", tmp_path / "b" / "sweep2"])
    runs = [r for s in sweeps for r in s.runs]
    table = compare.run_table(runs)
    assert table.multi_sweep and "sweep" in table.human_columns()
    assert {r["sweep"] for r in table.rows} == {"sweep1", "sweep2"}
    by_seed = compare.seed_table(runs)
    assert len(by_seed.rows) == 3
    # same directory names: labels fall back to the paths given
    grid_sweep(tmp_path / "c" / "sweep1")
    labels = sweep_labels([tmp_path / "a" / "sweep1", tmp_path / "c" / "sweep1"])
    assert labels == [str(tmp_path / "a" / "sweep1"), str(tmp_path / "c" / "sweep1")]


def test_formats_parse(grid):
    import pandas as pd

    path, expected = grid
    write_run(path / "4", ["trainer.lr=3e-4", "seed=0"], state="failed")
    runs = load_sweep(path).runs
    for table in (compare.run_table(runs), compare.seed_table(runs)):
        df = pd.read_csv(io.StringIO(formats.to_csv(table)))
        assert len(df) == len(table.rows)
        assert "best" in df.columns and df["best"].sum() == 1
        data = json.loads(formats.to_json(table))
        assert len(data["rows"]) == len(table.rows) and data["metric"] == "val_macro_f1"
        assert data["rows"][data["best"]]["best"] is True
        md = formats.to_markdown(table).splitlines()
        assert md[0].startswith("| best |") and set(md[1]) <= set("|-:") and "---" in md[1]
        assert all(line.count("|") == md[0].count("|") for line in md[2:2 + len(table.rows)])
        tex = formats.to_latex(table)
        assert tex.startswith("\\begin{tabular}") and tex.rstrip().endswith("\\end{tabular}")
        assert "val\\_macro\\_f1" in tex and "\\textbf{" in tex
    rows = list(csv.DictReader(io.StringIO(formats.to_csv(compare.run_table(runs)))))
    failed = next(r for r in rows if r["state"] == "failed")
    assert failed["error"].startswith("RuntimeError: CUDA out of memory")
    top = max(expected.values(), key=lambda e: e["val_macro_f1"])
    assert float(rows[0]["val_macro_f1"]) == pytest.approx(top["val_macro_f1"])


def test_latex_escapes():
    assert formats.latex_escape("a_b & 50% #1 ± x") == r"a\_b \& 50\% \#1 $\pm$ x"


def test_csv_writes_counts_as_integers(grid):
    path, _ = grid
    rows = list(csv.DictReader(io.StringIO(formats.to_csv(compare.run_table(load_sweep(path).runs)))))
    assert rows[0]["steps"] == "30" and rows[0]["epochs"] == "3" and rows[0]["best_step"] == "30"
    assert rows[0]["wall_time_s"].isdigit() and rows[0]["train_samples_per_s"] == "45.6"
    assert rows[0]["val_macro_f1"] != "" and "." in rows[0]["val_macro_f1"]
