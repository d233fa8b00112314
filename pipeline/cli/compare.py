"""Comparing runs: ``pipeline results``, ``pipeline aggregate`` and ``pipeline best``.

Tables are built only from run directories (:mod:`pipeline.results`), never from the scheduler.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from pipeline import rundir
from pipeline.cli.common import (
    METRIC_HELP,
    check_format,
    check_metric,
    check_mode,
    console,
    disk_line,
    fail,
    load_sweeps,
    metric_for,
    split_columns,
    warn,
)
from pipeline.errors import PipelineError, first_line

FORMATS = ("table", "md", "csv", "json", "latex")
#: --metric's help: the default is what the runs monitored (a study's objective)
RANK_HELP = f"{METRIC_HELP} (default: val_<trainer.monitor> of the runs, val_macro_f1 unless set)"


def _baseline_cache(sweep: Any) -> Path:
    """Where a sweep's baseline results are cached: its results folder, else (read-only sweep) the output
    root's cache."""
    if os.access(sweep.path, os.W_OK):
        return sweep.path / rundir.RESULTS_DIR
    return Path(os.environ.get("PIPELINE_OUTPUT_ROOT", "outputs")) / ".cache"


def _baselines(sweeps: list[Any]) -> list[dict[str, Any]]:
    """One TF-IDF + logistic-regression row per dataset of each sweep."""
    from pipeline.results import baseline as B

    out = []
    for sw in sweeps:
        groups: dict[tuple, Any] = {}
        for run in sw.runs:
            key = tuple(sorted((k, v) for k, v in run.params.items() if k == "data" or k.startswith("data.")))
            if run.run_dir is not None and rundir.hydra_file(run.run_dir).is_file():
                groups.setdefault(key, run)
        for run in groups.values():
            try:
                result = B.baseline_for_run(run.run_dir, _baseline_cache(sw), run.info.get("data_sha256"))
            except Exception as e:  # the table still prints without the baseline
                warn(f"baseline for {sw.name} (from {run.run_dir}): {first_line(e)}")
                continue
            out.append({"sweep": sw.name, "metrics": B.baseline_metrics(result),
                        "label": f"{B.NAME} ({result.get('dataset')}, C={result.get('C')})"})
    return out


def _metric_columns(cols: list[str] | None, runs: list[Any], any_column: bool) -> list[str] | None:
    """The metrics among ``--columns`` (short headers like val_f1 too); the table format takes any column."""
    from pipeline.results.metrics import STANDARD_METRICS, metrics_present
    from pipeline.results.views import SHORT_METRIC

    if not cols:
        return None
    full = {short: name for name, short in SHORT_METRIC.items()}
    present = set(metrics_present(runs)) | STANDARD_METRICS
    out = []
    for col in cols:
        name = full.get(col, col)
        if name in present:
            out.append(name)
        elif not any_column:
            check_metric(col, runs)
    return out or None


def _print_table(table: Any, sweeps: list[Any], cols: list[str] | None) -> None:
    from pipeline.results import views
    from pipeline.results.tables import UnknownColumnError

    out = console()
    try:
        views.print_results(out, table, ", ".join(str(sw.path) for sw in sweeps), cols)
    except UnknownColumnError as e:
        fail(str(e))
    out.print(disk_line([r for sw in sweeps for r in sw.runs]))


def _study(sweeps: list[Any], by_seed: bool) -> Any | None:
    """The study to show trial by trial: the one sweep given, when it is a study (``--by-seed`` and several
    sweeps show runs); None otherwise, or (with a warning) when its journal cannot be read."""
    from pipeline.results.study_report import is_study, read_study

    if by_seed or len(sweeps) != 1 or not is_study(sweeps[0].path):
        return None
    try:
        return read_study(sweeps[0].path)
    except PipelineError as e:
        warn(f"{first_line(e)}; showing its runs without the study")
        return None


def results(
    sweeps: list[Path] = typer.Argument(..., help="One or more sweep (or run) directories, side by side."),
    by_seed: bool = typer.Option(False, "--by-seed", help="One row per configuration: mean ± std over seeds."),
    metric: str | None = typer.Option(None, "--metric", "-m", help=RANK_HELP, show_default=False),
    mode: str | None = typer.Option(None, "--mode", help="max or min (default: min for losses and times)."),
    all_params: bool = typer.Option(False, "--all-params", help="Show every override, not only those that vary."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, md, csv, json or latex."),
    columns: str | None = typer.Option(
        None, "--columns", "-c", help="Columns to show, in this order, comma-separated: metrics (val_macro_f1 or "
        "its header val_f1, ...), override names, job, state, error, ... (md/csv/json/latex: metrics only)."),
    baseline: bool = typer.Option(False, "--baseline", help="Add a TF-IDF + logistic-regression row per dataset."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Compare runs: one row each, or one per configuration.

    --by-seed: one row per configuration, mean ± std over its seeds.

    A study (hydra/sweeper=study): one row per trial, with its state, its searched parameters and the step a
    pruned trial stopped at, under one line for the study (finished of N, pruned, the best trial).

    The best row is marked; columns that are empty or the same in every row are named above the table
    instead of shown, and columns that do not fit the terminal are named too (--columns picks them).
    """
    from pipeline.results.compare import run_table, seed_table
    from pipeline.results.formats import FORMATTERS, to_markdown

    check_mode(mode)
    check_format(fmt, FORMATS)
    sws = load_sweeps(sweeps)
    runs = [r for sw in sws for r in sw.runs]
    metric = metric_for(metric, sws)
    cols = split_columns(columns)
    on_terminal = fmt == "table" and output is None
    picked, rows_of_baseline = _metric_columns(cols, runs, on_terminal), _baselines(sws) if baseline else None
    study = _study(sws, by_seed)
    if study is not None:
        from pipeline.results.study_report import trial_table

        table = trial_table(sws[0], study, metric, mode, all_params, picked, rows_of_baseline)
    else:
        table = (seed_table if by_seed else run_table)(runs, metric, mode, all_params, picked, rows_of_baseline)
    if on_terminal:
        return _print_table(table, sws, cols)
    text = FORMATTERS[fmt](table) if fmt != "table" else to_markdown(table)
    if output is None:
        sys.stdout.write(text)
        return None
    from pipeline import atomic

    atomic.write_text(output, text)
    print(f"wrote {output}")


def aggregate(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory."),
    metric: str | None = typer.Option(None, "--metric", "-m", help=RANK_HELP, show_default=False),
    mode: str | None = typer.Option(None, "--mode", help="max or min."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default SWEEP/results)."),
) -> None:
    """Write the sweep's results folder: tables and plots.

    SWEEP/results/{runs.csv, summary.csv, summary.md, results.json, curves.png, final.png, report.html};
    a study adds trials.csv and Optuna's plots (study_history.png, study_importance.png,
    study_intermediate.png) and a Study section to the report.
    """
    from pipeline.results.aggregation import aggregate as write_results

    check_mode(mode)
    (sw,) = load_sweeps([sweep])
    metric = metric_for(metric, [sw])
    for path in write_results(sw, metric, mode, out).values():
        print(path)


def best(
    sweeps: list[Path] = typer.Argument(..., help="Sweep (multirun) directories."),
    metric: str | None = typer.Option(None, "--metric", "-m", help=RANK_HELP, show_default=False),
    mode: str | None = typer.Option(None, "--mode", help="max or min."),
) -> None:
    """Print the best run's checkpoint folder.

    The checkpoints/best folder of the best completed run, by --metric.
    """
    from pipeline.atomic import resolve_dir
    from pipeline.results.compare import best_run

    check_mode(mode)
    sws = load_sweeps(sweeps)
    runs = [r for sw in sws for r in sw.runs]
    metric = metric_for(metric, sws)
    run = best_run(runs, metric, mode)
    if run is None or run.run_dir is None:
        fail(f"no completed run reports {metric} yet", 1)
    ckpt = resolve_dir(rundir.checkpoint_dir(run.run_dir, rundir.BEST_CHECKPOINT))
    if ckpt is None:
        fail(f"best run {run.run_dir} ({metric}={run.metrics[metric]:.4f}) has no checkpoints/best", 1)
    print(ckpt)
