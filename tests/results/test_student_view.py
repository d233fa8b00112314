"""What a student sees (issue 22, item 8): no GPU-hours talk on CPU, "1 run" and "job 3" in the singular,
status notes that never cut a command in half, and a curves plot that names a band only where it draws one."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pipeline.cli.cli import app
from pipeline.results import watch as W
from pipeline.results.aggregation import sweep_figures
from pipeline.results.runs import load_sweep
from tests.results.make_runs import grid_sweep, write_run

NOTE = "GPU hours include all attempts"


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})


def test_cpu_tables_say_nothing_of_gpu_hours(tmp_path):
    grid_sweep(tmp_path / "cpu")
    grid_sweep(tmp_path / "gpu", gpus=1)
    for fmt in ("table", "md", "latex"):
        out = run("results", str(tmp_path / "cpu"), "-f", fmt)
        assert out.exit_code == 0, out.output
        assert NOTE not in out.stdout and "GPU hours" not in out.stdout and "gpu_h" not in out.stdout, out.stdout
        assert "total: 4 runs (4 completed)" in out.stdout
        out = run("results", str(tmp_path / "gpu"), "-f", fmt)
        assert NOTE in out.stdout and "total: 4.000 GPU hours over 4 runs (4 completed)" in out.stdout
    report = run("aggregate", str(tmp_path / "cpu"))
    assert report.exit_code == 0, report.output
    html = (tmp_path / "cpu" / "results" / "report.html").read_text()
    assert "GPU hours" not in html


def test_one_run_and_one_job_are_singular(tmp_path):
    one = write_run(tmp_path / "run", ["seed=0"])
    out = run("results", str(one))
    assert "total: 1 run (1 completed)" in out.stdout, out.stdout
    grid_sweep(tmp_path / "s", seeds=(0,))
    out = run("results", str(tmp_path / "s"), "--by-seed")
    assert "trainer.lr=2e-4 (job 1) = 0.7500" in out.stdout, out.stdout
    grid_sweep(tmp_path / "t")
    out = run("results", str(tmp_path / "t"), "--by-seed")
    assert "trainer.lr=2e-4 (jobs 2 3) =" in out.stdout, out.stdout


def _killed(root, num: int) -> str:
    """A run stopped by a signal, with the resume command training writes (the sweep's absolute path)."""
    command = f"`pipeline rerun {root.resolve()} --failed`"
    error = (f"killed by SIGTERM at step 40 (attempt 1); checkpoints/last at step 40 is kept: {command} resumes "
             "from it")
    write_run(root / str(num), ["trainer.lr=3e-4", f"seed={num}"], state="failed", error=error)
    return error


def test_status_notes_keep_commands_whole_in_80_columns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid_sweep(tmp_path / "outputs" / "multirun" / "2024-01-01" / "10-00-00")
    sweep = "outputs/multirun/2024-01-01/10-00-00"  # as a student types it
    _killed(tmp_path / sweep, 4)
    out = run("status", sweep, "--no-scheduler")
    assert out.exit_code == 1, out.output
    lines = out.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), out.stdout
    row = next(line for line in lines if line.lstrip().startswith("4 "))
    assert "killed by SIGTERM at step 40" in row and "pipeline" not in row  # what happened
    # the whole note under the table, the command on one line, with the path as given
    assert any(f"`pipeline rerun {sweep} --failed`" in line for line in lines), out.stdout
    assert "job 4: killed by SIGTERM" in out.stdout


def test_watch_failure_notes_keep_commands_whole(tmp_path):
    root = tmp_path / "sweep"
    grid_sweep(root, seeds=(0,))
    _killed(root, 2)
    snap = W.snapshot(root, "val_macro_f1", ask_scheduler=False)
    command = f"`pipeline rerun {root} --failed`"
    lines = W.failure_lines(snap, 60)
    assert lines[0].startswith("job 2 FAILED: killed by SIGTERM")
    assert sum(command in line for line in lines) == 1, lines
    # a command longer than the width gets a line of its own, whole; every other line fits
    assert all(len(line) <= 60 or line.strip() == command for line in lines), lines


def _band_said(fig) -> bool:
    return "band" in fig.axes[0].get_title()


def test_curves_name_a_band_only_where_one_is_drawn(tmp_path):
    one_point = tmp_path / "one"
    for n, (lr, seed) in enumerate([("1e-4", 0), ("1e-4", 1), ("2e-4", 0), ("2e-4", 1)]):
        write_run(one_point / str(n), [f"trainer.lr={lr}", f"seed={seed}"], curve=[0.6 + 0.05 * n], train_lines=1)
    fig = sweep_figures(load_sweep(one_point))["curves.png"]
    val, train = fig.axes
    assert not _band_said(fig) and len(val.collections) == 0  # one point per seed: no band, and none said
    assert all(line.get_marker() == "o" for line in train.get_lines())  # a one-point loss line still shows
    grid_sweep(tmp_path / "many", seeds=(0, 1))
    fig = sweep_figures(load_sweep(tmp_path / "many"))["curves.png"]
    assert _band_said(fig) and len(fig.axes[0].collections) == 2  # one band per configuration


def test_results_json_counts_are_unchanged_by_the_wording(tmp_path):
    """The singular/plural and CPU wording is for people; the json still counts every state."""
    write_run(tmp_path / "run", ["seed=0"])
    out = run("results", str(tmp_path / "run"), "-f", "json")
    assert json.loads(out.stdout)["total"] == {"gpu_hours": 0.0, "runs": 1, "states": {"completed": 1}}


def test_a_sweep_is_ranked_by_what_its_runs_monitored_unless_told(tmp_path):
    """trainer.monitor=loss: the aggregation job (``pipeline aggregate`` without --metric), results, status and
    clean rank by val_loss, lowest first, as the blocking sweep's own table does; --metric still wins."""
    import json as _json

    from pipeline import rundir

    grid_sweep(tmp_path / "s")
    for n, loss in enumerate((0.9, 0.3, 0.5, 0.7)):  # job 1 has the lowest loss, not the best macro-F1
        path = rundir.metrics_json(tmp_path / "s" / str(n))
        final = _json.loads(path.read_text())
        final["monitor"] = "loss"
        final["val"]["loss"] = loss
        path.write_text(_json.dumps(final))
    assert run("aggregate", str(tmp_path / "s")).exit_code == 0
    ranked = _json.loads((tmp_path / "s" / "results" / "results.json").read_text())
    assert (ranked["metric"], ranked["mode"]) == ("val_loss", "min")
    out = run("results", str(tmp_path / "s"))
    assert "best by val_loss (min): job 1 = 0.3000" in out.stdout, out.stdout
    assert "val_loss" in run("status", str(tmp_path / "s"), "--no-scheduler").stdout
    assert "keep   job 1: checkpoints/best (val_loss=0.3000)" in run("clean", str(tmp_path / "s")).stdout
    out = run("results", str(tmp_path / "s"), "--metric", "val_macro_f1")
    assert "best by val_macro_f1 (max)" in out.stdout, out.stdout
