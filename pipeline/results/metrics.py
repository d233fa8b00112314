"""What runs report and how they differ: metric names and which direction is better, which overrides
vary, and a run's configuration (its overrides without ``seed``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pipeline import rundir as RD
from pipeline.results.runs import Run, Sweep

#: metrics a finished run has, so naming one of them is never an "unknown metric" error
STANDARD = (
    "val_macro_f1", "val_accuracy", "val_loss", "test_macro_f1", "test_accuracy", "test_loss",
    "best_epoch", "best_step", "epochs", "steps", "wall_time_s", "train_samples_per_s", "gpu_hours",
)
STANDARD_METRICS = frozenset(STANDARD)
#: what a run on GPUs adds (``metrics.json`` "gpu", flattened); absent on CPU
GPU_METRICS = ("gpu_util_mean", "gpu_peak_mem_gb", "gpu_mem_total_gb")
#: metrics shown first (and in this order) when present
PREFERRED_METRICS = STANDARD + GPU_METRICS
#: the metrics the human formats (table, md, latex) show by default
DISPLAY_METRICS = ("val_macro_f1", "val_accuracy", "test_macro_f1", "test_accuracy", "wall_time_s")
#: metric names whose better value is the smaller one
LOWER_IS_BETTER = ("loss", "wall_time_s", "gpu_hours", "time", "error")

SEED_KEY = "seed"


class UnknownMetricError(ValueError):
    """The metric is not among those the runs report."""


def default_mode(metric: str) -> str:
    return "min" if any(metric.endswith(s) for s in LOWER_IS_BETTER) else "max"


def curve_key(metric: str) -> str:
    """The ``metrics.jsonl`` key behind a metric name: ``val_macro_f1`` / ``test_macro_f1`` -> ``macro_f1``."""
    for prefix in ("val_", "test_"):
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return metric


def order_metrics(names: set[str] | list[str]) -> list[str]:
    names = set(names)
    head = [m for m in PREFERRED_METRICS if m in names]
    return head + sorted(names - set(head))


def metrics_present(runs: list[Run]) -> list[str]:
    seen: set[str] = set()
    for run in runs:
        seen.update(run.metrics)
    return order_metrics(seen)


def check_metric(metric: str, runs: list[Run]) -> None:
    present = metrics_present(runs)
    if metric in present or metric in STANDARD_METRICS:
        return
    listed = ", ".join(present) if present else "none yet (no run has finished)"
    raise UnknownMetricError(f"unknown metric {metric!r}; metrics present: {listed}")


def varying_params(runs: list[Run], include_constant: bool = False) -> list[str]:
    """Override keys, in first-seen order; only those whose value differs unless ``include_constant``."""
    keys: list[str] = []
    for run in runs:
        for key in run.params:
            if key not in keys:
                keys.append(key)
    if include_constant:
        return keys
    return [k for k in keys if len({run.params.get(k) for run in runs}) > 1]


def config_key(run: Run) -> tuple[tuple[str, str], ...]:
    """A run's configuration: its overrides without ``seed``."""
    return tuple(sorted((k, v) for k, v in run.params.items() if k != SEED_KEY))


def config_label(run: Run, keys: list[str]) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}={run.params.get(k, '')}" for k in keys if k != SEED_KEY]
    return " ".join(parts) if parts else "default"


def seed_groups(runs: list[Run]) -> list[tuple[tuple[str, tuple], list[Run]]]:
    """Runs grouped by (sweep, configuration without seed), in first-seen order."""
    groups: dict[tuple[str, tuple], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.sweep, config_key(run)), []).append(run)
    return list(groups.items())


def default_metric(sweeps: Sequence[Sweep]) -> str:
    """What sweeps are ranked by unless told (``--metric``): ``val_<monitor>`` of the validation metric their
    runs monitored (``trainer.monitor``; a study's objective, from ``study.json`` before any trial ended),
    where they all share one; else ``val_macro_f1``."""
    found: set[str] = set()
    for sw in sweeps:
        monitors = {r.monitor for r in sw.runs if r.final}
        if not monitors:
            try:
                monitors = {str(json.loads((sw.path / RD.STUDY_JSON).read_bytes())["settings"]["monitor"])}
            except (OSError, ValueError, KeyError, TypeError):
                pass
        found |= monitors
    return f"val_{found.pop()}" if len(found) == 1 else "val_macro_f1"
