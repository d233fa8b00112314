"""The seam for what a kind of sweep adds (a study, issue 21): panels above the job table of status and
watch, files and report sections in results/. A grid sweep adds nothing; here a stand-in kind adds some."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipeline.cli.cli import app
from pipeline.results import extras
from pipeline.results import watch as W
from pipeline.results.aggregation import aggregate
from tests.results.make_runs import grid_sweep

PANEL = ["study: 3 finished (1 pruned) of 8, 1 running", "best so far: trial 2, lr=3e-5 (val_macro_f1 0.81)"]


@pytest.fixture
def with_extras(monkeypatch):
    monkeypatch.setattr(extras, "sweep_panels", lambda sweep, answer=None: [PANEL])
    monkeypatch.setattr(extras, "report_extras", lambda sweep, metric: [extras.ReportExtra(
        files={"trials.csv": "trial,state\n0,completed\n"},
        sections=[extras.ReportSection("Trials", '<table id="trials"><tr><td>0</td></tr></table>')])])


def test_a_grid_sweep_adds_nothing(tmp_path):
    grid_sweep(tmp_path / "s")
    from pipeline.results.runs import load_sweep

    sweep = load_sweep(tmp_path / "s")
    assert extras.sweep_panels(sweep) == [] and extras.report_extras(sweep, "val_macro_f1") == []


def test_status_and_watch_print_panels_above_the_job_table(tmp_path, with_extras):
    grid_sweep(tmp_path / "s")
    out = CliRunner().invoke(app, ["status", str(tmp_path / "s"), "--no-scheduler"], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["job"])
    assert lines[1:3] == PANEL and header > 2
    snap = W.snapshot(tmp_path / "s", "val_macro_f1", ask_scheduler=False)
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    Console(file=buf, width=80, color_system=None).print(W.render(snap, 80))
    text = buf.getvalue().splitlines()
    assert text.index(PANEL[0]) < next(i for i, line in enumerate(text) if line.split()[:1] == ["job"])


def test_aggregate_writes_the_extra_files_and_report_sections(tmp_path, with_extras):
    grid_sweep(tmp_path / "s")
    paths = aggregate(tmp_path / "s")
    assert paths["trials.csv"].read_text() == "trial,state\n0,completed\n"
    html = paths["report.html"].read_text()
    assert '<section><h2>Trials</h2><table id="trials">' in html
    assert html.index("Configurations (mean") < html.index("<h2>Trials</h2>") < html.index("<h2>Plots</h2>")
