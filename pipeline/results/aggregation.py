"""``pipeline aggregate``: the files of ``<sweep>/results/``, the one place here that writes.

``runs.csv`` and ``summary.csv`` (the compare tables), ``summary.md`` (both as markdown),
``results.json`` (both, with their ranking), ``curves.png`` and ``final.png`` (:mod:`pipeline.results.plots`),
``confusion.png`` (when the best run has per-class metrics), ``report.html``
(:mod:`pipeline.results.report`), plus what a kind of sweep adds (:mod:`pipeline.results.extras`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline import atomic
from pipeline import rundir as RD
from pipeline.results import extras as X
from pipeline.results import plots, report
from pipeline.results.compare import best_run, run_table, seed_table
from pipeline.results.formats import table_dict, to_csv, to_markdown
from pipeline.results.metrics import config_label, curve_key, default_metric, default_mode, seed_groups, varying_params
from pipeline.results.runs import Sweep, load_sweep
from pipeline.rundir import COMPLETED


def aggregate(
    sweep_path: str | os.PathLike | Sweep,
    metric: str | None = None,
    mode: str | None = None,
    out_dir: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Write the results folder (default ``<sweep>/results``); ``{file name: path}`` of what was written.
    Ranked by ``metric``, else by what the runs monitored (:func:`pipeline.results.metrics.default_metric`).

    ``sweep_path``: a sweep directory, or a :class:`Sweep` already loaded. Works on partial sweeps: runs
    without data are skipped by the plots and listed with their state in the tables.
    """
    sweep = sweep_path if isinstance(sweep_path, Sweep) else load_sweep(sweep_path)
    metric = metric or default_metric([sweep])
    mode = mode or default_mode(metric)
    per_run = run_table(sweep.runs, metric, mode)
    summary = seed_table(sweep.runs, metric, mode)
    out = Path(out_dir) if out_dir else sweep.path / RD.RESULTS_DIR
    md = (f"# {sweep.name}\n\n## Configurations (mean ± std over seeds)\n\n{to_markdown(summary)}\n"
          f"## Runs\n\n{to_markdown(per_run)}")
    files: dict[str, str | bytes] = {
        RD.RUNS_CSV: to_csv(per_run),
        RD.SUMMARY_CSV: to_csv(summary),
        RD.SUMMARY_MD: md,
        RD.RESULTS_JSON: json.dumps({"sweep": str(sweep.path), "metric": metric, "mode": mode,
                                     "runs": table_dict(per_run), "summary": table_dict(summary)}, indent=2) + "\n",
    }
    images = {name: plots.render_png(fig) for name, fig in sweep_figures(sweep, metric).items()}
    files.update(images)
    added = X.report_extras(sweep, metric)
    for extra in added:
        files.update(extra.files)
    sections = [s for extra in added for s in extra.sections]
    files[RD.REPORT_HTML] = report.render(sweep, per_run, summary, images, sections)
    paths = {}
    for name, content in files.items():
        paths[name] = out / name
        if isinstance(content, bytes):
            atomic.write_bytes(paths[name], content)
        else:
            atomic.write_text(paths[name], content)
    return paths


def sweep_figures(sweep: Sweep, metric: str = "val_macro_f1") -> dict[str, Any]:
    """``{"curves.png": Figure, "final.png": Figure[, "confusion.png": Figure]}``: the learning curves
    (validation ``metric`` and training loss), the per-configuration summary (seeds as points, their mean as
    a bar) and the best run's test confusion matrix."""
    runs = sweep.runs
    keys = varying_params(runs)
    key = curve_key(metric)
    curves: list[tuple[str, list[list[tuple[float, float]]]]] = []
    train: list[list[list[tuple[float, float]]]] = []
    finals: list[tuple[str, list[float]]] = []
    for _, group in seed_groups(runs):
        label = config_label(group[0], keys)
        cs = [c for c in (r.curve(key) for r in group if r.run_dir is not None) if c]
        curves.append((label, cs))  # empty ones too: a configuration keeps its colour in both plots
        train.append([c for c in (r.curve("loss", "train") for r in group if r.run_dir is not None) if c])
        finals.append((label, [r.metrics[metric] for r in group if r.state == COMPLETED and metric in r.metrics]))
    figures = {RD.CURVES_PNG: plots.curves_figure(curves, key, sweep.name, train),
               RD.FINAL_PNG: plots.final_figure(finals, metric, sweep.name)}
    best = best_run(runs, metric) if any(metric in r.metrics for r in runs) else None
    classes = (best.final or {}).get("test_classes") if best is not None else None
    if classes:  # runs from before per-class metrics have none
        title = f"{sweep.name}\ntest confusion matrix, best run by {metric} (job {best.label})"
        figures[RD.CONFUSION_PNG] = plots.confusion_figure(classes["labels"], classes["confusion_matrix"], title)
    return figures
