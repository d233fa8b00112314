"""A study (``hydra/sweeper=study``) in ``pipeline results`` and ``pipeline aggregate`` (issue 21): every trial with
its state, parameters, value and the step it was pruned at, one line for the study, Optuna's plots in
``results/`` and in the report; a grid's output unchanged.

Most studies here are made with Optuna's public API and synthetic run directories (tests/results/make_study.py);
``trained_study`` (tests/results/conftest.py) is one of really trained trials."""

from __future__ import annotations

import csv
import io
import json
import shutil
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import rundir
from pipeline.cli.cli import app
from pipeline.results import study_report as SR
from pipeline.results import views
from pipeline.results.aggregation import aggregate
from pipeline.results.runs import load_sweep
from pipeline.search.study import SweepStudy
from tests.results import grid_golden
from tests.results.make_study import ASKED, COMPLETE, PRUNED, RUNNING, curve_for, make_study, typical
from tests.table_fit import assert_fits, render

#: trial order in the typical study's table: completed by val_macro_f1, then pruned, then running, failed
ORDER = ["1", "6", "3", "0", "5", "2", "7", "4"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """tests/results/make_study.py's typical study: 4 completed, 2 pruned, 1 failed, 1 running of 8."""
    root = tmp_path_factory.mktemp("typical") / "study"
    typical(root)
    return root


def cli(*args: str, width: int = 80) -> str:
    r = CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})
    assert r.exit_code == 0, r.output
    return r.stdout


def trial_cells(text: str) -> dict[str, list[str]]:
    """The cells of each row of a terminal trials table, by trial number, top to bottom (the best row starts
    with its *)."""
    return {line.lstrip("* ").split()[0]: line.lstrip("* ").split() for line in text.splitlines()
            if line.lstrip("* ")[:1].isdigit() and len(line.split()) > 1 and "finished" not in line}


def trial_order(text: str) -> list[str]:
    return list(trial_cells(text))


def view_and_table(root: Path, **kw):
    view = SR.read_study(root)
    return view, SR.trial_table(load_sweep(root), view, **kw)


# ------------------------------------------------------------------------------------------ the table


def test_every_trial_is_a_row_with_its_state_parameters_value_and_pruned_step(study):
    view, table = view_and_table(study)
    assert [str(r["trial"]) for r in table.rows] == ORDER
    states = {str(r["trial"]): r["state"] for r in table.rows}
    assert states == {"0": "completed", "1": "completed", "3": "completed", "6": "completed", "2": "pruned",
                      "5": "pruned", "4": "failed", "7": "running"}
    params = {t.number: t.params for t in view.trials}
    for row in table.rows:  # the values Optuna gave the trial, not their text in overrides.yaml
        assert (row["trainer.lr"], row["trainer.batch_size"]) == (params[row["trial"]]["trainer.lr"],
                                                                   params[row["trial"]]["trainer.batch_size"])
    top = table.rows[0]
    assert top["best"] and top["val_macro_f1"] == max(curve_for(1)) and table.best == 0
    assert [r["pruned_at_step"] for r in table.rows if r["state"] == "pruned"] == [10.0, 10.0]
    assert table.display[:2] == ["val_macro_f1", "pruned_at_step"]
    assert table.counts == {"completed": 4, "pruned": 2, "failed": 1, "running": 1}


def test_the_study_line_counts_trials_and_names_the_best_with_its_parameters(study):
    view, table = view_and_table(study)
    best = next(t for t in view.trials if t.number == 1)
    assert table.headline == (
        "study: 6 finished of 8 trials (2 pruned), 1 running, 1 failed; best trial 1: val_macro_f1 0.7850 at "
        f"batch_size={best.params['trainer.batch_size']} lr={best.params['trainer.lr']:.4g}")


@pytest.mark.parametrize("width", (80, 120))
def test_the_terminal_table_fits_and_ends_with_the_study_line(study, width):
    text = cli("results", str(study), width=width)
    assert trial_order(text) == ORDER
    assert_fits(text, width, [["*", "1", "COMPLETED", "0.7850"], ["5", "PRUNED", "0.6813", "10"],
                              ["7", "RUNNING"], ["4", "FAILED"]])
    header = next(line for line in text.splitlines() if line.lstrip().startswith("trial")) + " "
    for name in (" trial ", " lr ", " batch_size ", " state ", " val_f1 ", " pruned_at "):
        assert name in f" {header}"
    assert "trainer.lr" not in header
    assert "study: 6 finished of 8 trials (2 pruned), 1 running, 1 failed; best trial 1:" in " ".join(text.split())
    assert "best by" not in text  # the study's line says it
    if width == 80:
        assert "not shown at 80 columns" in text


def test_every_format_lists_the_trials(study):
    rows = list(csv.DictReader(io.StringIO(cli("results", str(study), "-f", "csv"))))
    assert [r["trial"] for r in rows] == ORDER
    assert list(rows[0])[:8] == ["rank", "best", "sweep", "trial", "job_id", "trainer.batch_size", "trainer.lr",
                                 "state"]
    assert float(rows[0]["trainer.lr"]) == SR.read_study(study).trials[1].params["trainer.lr"]  # every digit
    data = json.loads(cli("results", str(study), "-f", "json"))
    assert [r["trial"] for r in data["rows"]] == [int(n) for n in ORDER]
    assert data["study"]["counts"] == {"completed": 4, "pruned": 2, "running": 1, "failed": 1}
    assert data["study"]["best"]["trial"] == 1 and data["study"]["trials"] == 8
    assert data["study"]["journal"] == str(study / rundir.STUDY_JOURNAL)
    md = cli("results", str(study), "-f", "md")
    assert md.startswith("| best | trial | trainer.batch_size | trainer.lr | state | val_macro_f1 | pruned_at_step |")
    assert md.rstrip().endswith("lr=0.000884") and "study: 6 finished of 8 trials" in md
    latex = cli("results", str(study), "-f", "latex")
    assert "trial & trainer.batch\\_size" in latex and "study: 6 finished of 8 trials" in latex


def test_metric_and_columns_work_as_for_a_grid(study):
    text = cli("results", str(study), "-m", "val_accuracy", "-c", "trial,lr,state,val_acc", width=80)
    assert text.splitlines()[1].split() == ["trial", "lr", "state", "val_acc"]
    assert trial_order(text)[:4] == ["1", "6", "3", "0"]


def test_by_seed_and_several_sweeps_show_the_runs(study):
    """--by-seed (configurations) and several sweeps side by side: the ordinary tables of the trials' runs."""
    assert "job" in cli("results", str(study), str(study), "-f", "md").splitlines()[0]
    assert "| best | trainer.lr | trainer.batch_size | n |" in cli("results", str(study), "--by-seed", "-f", "md")


def test_a_grid_sweeps_output_is_what_it_was_before_studies(tmp_path):
    root = grid_golden.make_grid(tmp_path / "grid")
    for suffix, text in grid_golden.outputs(root).items():
        assert text == (grid_golden.GOLDEN / f"grid_results.{suffix}").read_text(), suffix


def test_a_study_without_a_finished_trial(tmp_path):
    """One trial running, one just asked (no run directory yet): no best, nothing to rank."""
    root = tmp_path / "study"
    make_study(root, [(RUNNING, curve_for(0)[:1]), (ASKED, None)], trials=4)
    text = cli("results", str(root))
    assert "study: 0 finished of 4 trials (0 pruned), 2 running; no completed trial yet" in " ".join(text.split())
    assert trial_order(text) == ["0", "1"]


def test_a_study_that_has_not_asked_a_trial_yet(tmp_path):
    root = tmp_path / "study"
    make_study(root, [], trials=4)
    assert "study: 0 finished of 4 trials (0 pruned); no completed trial yet" in cli("results", str(root))
    assert (aggregate(root)[rundir.TRIALS_CSV]).read_text().startswith("rank,best,sweep,trial,job_id,")


def test_a_study_whose_journal_cannot_be_read_shows_its_runs_with_a_warning(tmp_path, study):
    root = tmp_path / "study"
    shutil.copytree(study, root)
    (root / rundir.STUDY_JOURNAL).unlink()
    r = CliRunner().invoke(app, ["results", str(root), "-f", "md"])
    assert r.exit_code == 0, r.output
    assert "holds no study" in r.stderr and "showing its runs without the study" in r.stderr
    assert r.stdout.startswith("| best | job |")
    html = aggregate(root)[rundir.REPORT_HTML].read_text()
    assert "<h2>Study</h2><p class=\"note\">The study could not be read:" in html


# ------------------------------------------------------------------------------------------ the plots


def test_importances_need_two_completed_trials_and_a_parameter_that_varies(tmp_path):
    one = make_study(tmp_path / "one", [(COMPLETE, curve_for(0)), (PRUNED, curve_for(1)[:1])])
    assert SR.importance_params(SR.read_study(one.sweep_dir)) == (
        [], "parameter importances need 2 completed trials; the study has 1")
    same = make_study(tmp_path / "same", [(COMPLETE, curve_for(0)), (COMPLETE, curve_for(1))],
                      space=["trainer.lr=choice(1e-4)"])
    assert SR.importance_params(SR.read_study(same.sweep_dir))[1] == (
        "no parameter varies among the completed trials, so none can explain a difference")
    tie = make_study(tmp_path / "tie", [(COMPLETE, curve_for(0)), (COMPLETE, curve_for(0))])
    assert "every completed trial has the same val macro_f1" in SR.importance_params(SR.read_study(tie.sweep_dir))[1]


def test_the_plots_say_what_they_plot(study):
    view = SR.read_study(study)
    with SR.optuna_plots():
        figures, why = SR.study_figures(view, "study")
        texts = {name: (fig.axes[0].get_title("left"), fig.axes[0].get_title(), fig.axes[0].get_xlabel(),
                        fig.axes[0].get_ylabel()) for name, fig in figures.items()}
        legend = [t.get_text() for t in figures[rundir.STUDY_INTERMEDIATE_PNG].axes[0].get_legend().get_texts()]
    assert why == {}
    assert texts[rundir.STUDY_HISTORY_PNG] == (
        "study: optimisation history\nval macro_f1 of each completed trial and the best so far (maximize)", "",
        "trial number", "val macro_f1")
    assert texts[rundir.STUDY_IMPORTANCE_PNG] == (
        "study: parameter importances\nfor val macro_f1, by fANOVA over 4 completed trials", "",
        "importance (share of the variation explained; sums to 1)", "parameter")
    assert texts[rundir.STUDY_INTERMEDIATE_PNG][2:] == ("evaluation (Optuna's step)", "val macro_f1")
    assert "trial 2 (pruned)" in legend and "trial 7 (running)" in legend and "trial 1" in legend


def test_optuna_plots_keep_their_warning_style_and_figures_inside(study):
    import matplotlib
    import matplotlib.pyplot as plt

    facecolor, filters = matplotlib.rcParams["axes.facecolor"], list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SR.report_parts(load_sweep(study))
    assert not [w for w in caught if "experimental" in str(w.message).lower()], [str(w.message) for w in caught]
    assert matplotlib.rcParams["axes.facecolor"] == facecolor  # Optuna's ggplot style stayed inside
    assert list(warnings.filters) == filters and plt.get_fignums() == []


# ------------------------------------------------------------------------------------------ aggregate


def test_aggregate_writes_the_trials_and_the_plots_and_the_report_shows_them(tmp_path, study):
    root = tmp_path / "study"
    shutil.copytree(study, root)
    paths = aggregate(root)
    for name in (rundir.TRIALS_CSV, rundir.STUDY_HISTORY_PNG, rundir.STUDY_IMPORTANCE_PNG,
                 rundir.STUDY_INTERMEDIATE_PNG):
        assert paths[name].is_file() and paths[name].stat().st_size > 0, name
    assert paths[rundir.STUDY_HISTORY_PNG].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trials = list(csv.DictReader(paths[rundir.TRIALS_CSV].open()))
    assert [r["trial"] for r in trials] == ORDER
    html = paths[rundir.REPORT_HTML].read_text()
    study_section = html[html.index("<h2>Study</h2>"):html.index("<h2>Plots</h2>")]
    assert html.index("<h2>Study</h2>") < html.index("<h2>Plots</h2>")
    assert "<h2>Runs</h2>" not in html and "Configurations (mean" not in html  # the trials table replaces them
    assert 'id="best-line"' not in html
    assert study_section.count("data:image/png;base64,") == 3
    assert '<table id="trials" class="sortable">' in study_section
    assert "study: 6 finished of 8 trials (2 pruned), 1 running, 1 failed; best trial 1" in study_section
    assert f"optuna-dashboard {root / rundir.STUDY_JOURNAL}" in study_section


def test_aggregate_on_a_study_with_no_finished_trial(tmp_path):
    root = tmp_path / "study"
    make_study(root, [(RUNNING, curve_for(0)[:1]), (ASKED, None)], trials=4)
    paths = aggregate(root)
    html = paths[rundir.REPORT_HTML].read_text()
    assert "Optimisation history: no completed trial yet." in html
    assert "Parameter importances: parameter importances need 2 completed trials; the study has 0." in html
    assert html.count("data:image/png;base64,") == 1 + 2  # the running trial's curve; curves.png, final.png
    assert paths[rundir.STUDY_HISTORY_PNG].stat().st_size > 0  # a plot that says why it is empty


# ------------------------------------------------------------------------------------------ trained


def test_a_study_of_trained_trials_in_results_and_report(trained_study, tmp_path):
    """Real run directories: pruned runs stopped at their first evaluation (step 12 of 24), the study's
    objective (val_loss, minimised) ranks them, aggregation needs only the journal and the run dirs."""
    root = tmp_path / "study"
    shutil.copytree(trained_study, root)
    assert not (root / rundir.SWEEP_JSON).exists()
    trials = SweepStudy.open(root).trials()
    assert sorted(t.state for t in trials) == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    text = cli("results", str(root))
    cells = trial_cells(text)
    completed = sorted((t for t in trials if t.state == "COMPLETE"), key=lambda t: (t.value, t.number))
    assert list(cells)[:2] == [str(t.number) for t in completed]  # val_loss: lowest first
    full = json.loads(rundir.metrics_json(root / str(completed[0].number)).read_text())["steps"]
    for t in trials:
        done = json.loads(rundir.metrics_json(root / str(t.number)).read_text())
        row = cells[str(t.number)]
        assert row[1:3] == [f"{t.params['trainer.lr']:.4g}", done["status"].upper()]
        assert row[3] == f"{done['val']['loss']:.4f}"  # the value: the run's best validation loss
        if t.state == "PRUNED":
            assert row[4] == str(done["pruned_at_step"]) and done["pruned_at_step"] < full
    assert "study: 4 finished of 4 trials (2 pruned); best trial" in text and "val_loss" in text
    html = aggregate(root)[rundir.REPORT_HTML].read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert "objective val_loss (minimized)" in html


def test_the_trials_table_fits_with_a_long_metric_and_many_trials(tmp_path):
    root = tmp_path / "study"
    make_study(root, [(COMPLETE, curve_for(i)) if i % 3 else (PRUNED, curve_for(i)[:1]) for i in range(24)],
               trials=30)
    view, table = view_and_table(root)
    text = render(lambda c: views.print_results(c, table, str(root)), 80)
    assert_fits(text, 80, [[str(r["trial"]), r["state"].upper()] for r in table.rows])
