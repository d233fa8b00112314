"""The compare tables: one row per run (:func:`run_table`), one per configuration (:func:`seed_table`),
and the best run (:func:`best_run`).

Pure functions of the runs read by :mod:`pipeline.results.runs`; the formats that print a
:class:`Table` live in :mod:`pipeline.results.formats`.

Ranking: completed runs with the metric come first, best first; pruned runs (a study's pruner stopped
them early: their validation metrics are the best before the stop, and they have no test metrics) come
next, by the same metric, unranked; then everything without the metric. Only a completed run is ever
"best".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from pipeline.results.metrics import (
    DISPLAY_METRICS,
    SEED_KEY,
    check_metric,
    default_mode,
    metrics_present,
    seed_groups,
    varying_params,
)
from pipeline.results.runs import Run
from pipeline.rundir import COMPLETED, CORRUPT, FAILED, MISSING, PENDING, PRUNED, REQUEUED, RUNNING, STATES

BASELINE = "baseline"
#: row order among rows that are not ranked by the metric
STATE_ORDER = (COMPLETED, PRUNED, RUNNING, REQUEUED, PENDING, FAILED, CORRUPT, MISSING, BASELINE)


@dataclass
class Table:
    """Rows of plain values plus the facts the formatters need."""

    rows: list[dict[str, Any]]
    metric: str
    mode: str
    by_seed: bool
    params: list[str]  # parameter columns
    metrics: list[str]  # every metric present (csv/json columns)
    display: list[str]  # metrics the human formats show
    multi_sweep: bool
    total_gpu_hours: float
    counts: dict[str, int]
    best: int | None = None  # index into rows
    gpus_used: bool = False  # some run was given GPUs (GPU hours are worth saying)
    gpu_best: dict[str, Any] = field(default_factory=dict)  # the best run's metrics.json "gpu", with "job"
    gpu_warnings: list[tuple[str, str]] = field(default_factory=list)  # (job, warning) of every run
    id_column: str = "job"  # the column that names a row: the job (a grid), the trial (a study)
    headline: str | None = None  # a kind of sweep's own line (a study's), said instead of the total and best
    extra: dict[str, Any] = field(default_factory=dict)  # more top-level keys of --format json (a study's)

    def human_columns(self) -> list[str]:
        cols = ["best"]
        if self.multi_sweep:
            cols.append("sweep")
        cols += [self.id_column] if not self.by_seed else []
        cols += self.params
        cols += ["n"] if self.by_seed else []
        cols += ["state"]
        cols += [m for m in self.display if m != "gpu_hours"]
        cols += ["gpu_hours"] if self.gpus_used else []
        return cols + ["error"]

    def data_columns(self) -> list[str]:
        cols = ["rank", "best", "sweep"]
        if self.by_seed:
            cols += self.params + ["n", "runs", "state", "jobs"]
            for m in self.metrics:
                cols += [m] if m == "gpu_hours" else [f"{m}_mean", f"{m}_std"]
        else:
            cols += [self.id_column, "job_id"] + self.params + ["state"] + self.metrics
            cols += ["gpu_warning"] if self.gpu_best or self.gpu_warnings else []
        cols += ["error", "run_dir" if not self.by_seed else "best_run_dir"]
        return cols


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; None for fewer than two values)."""
    if not values:
        return None, None
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def best_run(runs: list[Run], metric: str = "val_macro_f1", mode: str | None = None) -> Run | None:
    """The completed run with the best ``metric`` (None when no completed run reports it)."""
    check_metric(metric, runs)
    mode = mode or default_mode(metric)
    scored = [r for r in runs if r.state == COMPLETED and metric in r.metrics]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r.metrics[metric])


def counts(runs: list[Run]) -> dict[str, int]:
    """How many runs are in each state."""
    out: dict[str, int] = {}
    for run in runs:
        out[run.state] = out.get(run.state, 0) + 1
    return out


def count_text(counts: dict[str, int]) -> str:
    """``8 completed, 4 pruned, 1 failed`` (states in their fixed order); ``none`` for no runs."""
    return ", ".join(f"{counts[s]} {s}" for s in (*STATES, BASELINE) if counts.get(s)) or "none"


# --------------------------------------------------------------------------------------------- ranking


def _state_rank(state: str) -> int:
    return STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)


def rank_rows(rows: list[dict[str, Any]], key: str, mode: str) -> int | None:
    """Sort ``rows`` (see the module docstring), number the ranked ones and mark the best; its index."""
    def tier(row: dict[str, Any]) -> int:
        v = row.get(key)
        if not isinstance(v, float) or math.isnan(v) or row["_state"] == BASELINE:
            return 2
        return 1 if row["_state"] == PRUNED else 0

    def sort_key(row: dict[str, Any]) -> tuple:
        t = tier(row)
        v = row.get(key) if t < 2 else 0.0
        return (t, -v if mode == "max" else v, _state_rank(row["_state"]), row["_order"])

    rows.sort(key=sort_key)
    best = None
    rank = 0
    for i, row in enumerate(rows):
        ranked = tier(row) == 0
        if ranked:
            rank += 1
            best = i if best is None else best
        row["rank"] = rank if ranked else None
        row["best"] = best == i
        for k in ("_order", "_state"):
            row.pop(k, None)
    return best


def display_metrics(metric: str, present: list[str], columns: list[str] | None) -> list[str]:
    """The metrics the human formats show: ``columns`` (``--columns``), else the usual ones; ``metric`` first
    when it is not among them."""
    if columns:
        wanted = list(columns)
    else:
        wanted = [m for m in DISPLAY_METRICS if m in present] or [m for m in DISPLAY_METRICS]
    if metric not in wanted:
        wanted.insert(0, metric)
    return wanted


def make_table(runs: list[Run], rows: list[dict[str, Any]], metric: str, mode: str, by_seed: bool, params: list[str],
               present: list[str], columns: list[str] | None, best: int | None) -> Table:
    """The :class:`Table` of ranked ``rows`` (from :func:`rank_rows`) built from ``runs``."""
    top = best_run(runs, metric, mode) if any(metric in r.metrics for r in runs) else None
    return Table(
        rows=rows, metric=metric, mode=mode, by_seed=by_seed, params=params, metrics=present,
        display=display_metrics(metric, present, columns), multi_sweep=len({r.sweep for r in runs}) > 1,
        total_gpu_hours=sum(r.metrics.get("gpu_hours", 0.0) for r in runs), counts=counts(runs), best=best,
        gpus_used=any(r.gpus for r in runs),
        gpu_best={**top.gpu, "job": top.label} if top is not None and top.gpu else {},
        gpu_warnings=[(r.label, str(r.gpu["warning"])) for r in runs if r.gpu.get("warning")],
    )


# ---------------------------------------------------------------------------------------------- tables


def baseline_row(b: dict[str, Any], params: list[str], order: int) -> dict[str, Any]:
    row = {"sweep": b.get("sweep"), "state": BASELINE, "error": None, "_order": order, "_state": BASELINE}
    row.update({p: None for p in params})
    return row


def baseline_rows(baselines: list[dict[str, Any]] | None, params: list[str], present: list[str], start: int,
                  id_column: str = "job") -> list[dict[str, Any]]:
    """The TF-IDF baseline rows of a table with one row per run (or trial), numbered from ``start``."""
    rows = []
    for b in baselines or []:
        row = baseline_row(b, params, start + len(rows))
        row.update({id_column: b.get("label", BASELINE), "job_id": None, "run_dir": None})
        row.update({m: b["metrics"].get(m) for m in present})
        rows.append(row)
    return rows


def run_table(
    runs: list[Run],
    metric: str = "val_macro_f1",
    mode: str | None = None,
    all_params: bool = False,
    columns: list[str] | None = None,
    baselines: list[dict[str, Any]] | None = None,
) -> Table:
    """One row per run, ranked by ``metric``; the best completed run is marked."""
    check_metric(metric, runs)
    mode = mode or default_mode(metric)
    params = varying_params(runs, all_params)
    present = metrics_present(runs)
    rows = []
    for i, run in enumerate(runs):
        row: dict[str, Any] = {
            "sweep": run.sweep, "job": run.label, "job_id": run.job_id, "state": run.state,
            "error": run.error, "run_dir": str(run.run_dir) if run.run_dir else None, "_order": i,
            "_state": run.state, "gpu_warning": run.gpu.get("warning"),
        }
        row.update({p: run.params.get(p) for p in params})
        row.update({m: run.metrics.get(m) for m in present})
        rows.append(row)
    rows += baseline_rows(baselines, params, present, len(rows))
    best = rank_rows(rows, metric, mode)
    return make_table(runs, rows, metric, mode, False, params, present, columns, best)


def _config_row(group: list[Run], params: list[str], present: list[str], metric: str, mode: str) -> dict[str, Any]:
    """One configuration: its runs' states, first error, mean ± std of each metric over the completed seeds."""
    done = [r for r in group if r.state == COMPLETED]
    row: dict[str, Any] = {"sweep": group[0].sweep, "n": len(done), "runs": len(group),
                           "jobs": " ".join(r.label for r in group), "state": count_text(counts(group))}
    row["_state"] = min((r.state for r in group), key=_state_rank)  # the config's rows sort by its best state
    row.update({p: group[0].params.get(p) for p in params})
    errors = [f"job {r.label}: {r.error}" for r in group if r.error]
    row["error"] = errors[0] + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "") if errors else None
    for m in present:
        if m == "gpu_hours":
            row[m] = sum(r.metrics.get(m, 0.0) for r in group)
        else:
            row[f"{m}_mean"], row[f"{m}_std"] = mean_std([r.metrics[m] for r in done if m in r.metrics])
    scored = [r for r in done if metric in r.metrics]
    pick = max if mode == "max" else min
    row["best_run_dir"] = str(pick(scored, key=lambda r: r.metrics[metric]).run_dir) if scored else None
    row["_rank_value"] = row.get(f"{metric}_mean" if metric != "gpu_hours" else metric) if row["n"] else None
    return row


def seed_table(runs: list[Run], metric: str = "val_macro_f1", mode: str | None = None, all_params: bool = False,
               columns: list[str] | None = None, baselines: list[dict[str, Any]] | None = None) -> Table:
    """One row per configuration (overrides minus ``seed``): mean ± std over the completed seeds."""
    check_metric(metric, runs)
    mode = mode or default_mode(metric)
    params = [p for p in varying_params(runs, all_params) if p != SEED_KEY]
    present = metrics_present(runs)
    rows = []
    for i, (_, group) in enumerate(seed_groups(runs)):
        row = _config_row(group, params, present, metric, mode)
        row["_order"] = i
        rows.append(row)
    for b in baselines or []:
        row = baseline_row(b, params, len(rows))
        row.update({"n": 1, "runs": 1, "jobs": b.get("label", BASELINE), "best_run_dir": None, "_rank_value": None})
        if params:
            row[params[0]] = b.get("label", BASELINE)
        for m in present:
            if m == "gpu_hours":
                row[m] = 0.0
            else:
                row[f"{m}_mean"], row[f"{m}_std"] = b["metrics"].get(m), None
        rows.append(row)
    best = rank_rows(rows, "_rank_value", mode)
    for row in rows:
        row.pop("_rank_value", None)
    return make_table(runs, rows, metric, mode, True, params, present, columns, best)
