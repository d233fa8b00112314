"""Read run directories and build the compare tables.

Everything here is built from the files a run leaves behind (``.hydra/overrides.yaml``,
``metrics.json``, ``metrics.jsonl``, ``run_info.json``) and the sweep's ``sweep.json``; nothing asks
a scheduler (that is :mod:`pipeline.launch.sweep_status`). So the tables work on partial sweeps, on copies of
sweeps and across sweeps.

No pandas, no yaml in the common path: ``pipeline status`` and ``pipeline results`` must start fast,
and ``pipeline aggregate`` must read 1,000 runs in well under a second. The table builders
(:func:`run_table`, :func:`seed_table`) and the formatters (:func:`to_csv`, :func:`to_markdown`,
:func:`to_latex`, :func:`to_json`) are pure functions of their inputs.

Run states: ``completed`` / ``failed`` (``metrics.json`` says so), ``corrupt`` (``metrics.json`` does
not parse), ``running`` (a run directory without ``metrics.json``), ``missing`` (listed in
``sweep.json`` but no run directory). ``pending`` only comes from the scheduler (``pipeline status``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import rundir as RD
from pipeline.rundir import (  # noqa: F401 - the state names are part of this module's API
    BAD_STATES,
    COMPLETED,
    CORRUPT,
    FAILED,
    MISSING,
    PENDING,
    REQUEUED,
    RUNNING,
    STATES,
)
from pipeline.train import attempts

BASELINE = "baseline"

#: metrics shown first (and in this order) when present
PREFERRED_METRICS = (
    "val_macro_f1", "val_accuracy", "val_loss", "test_macro_f1", "test_accuracy", "test_loss",
    "best_epoch", "best_step", "epochs", "steps", "wall_time_s", "train_samples_per_s", "gpu_hours",
)
#: metrics a finished run has, so naming one of them is never an "unknown metric" error
STANDARD_METRICS = frozenset(PREFERRED_METRICS)
#: the metrics the human formats (table, md, latex) show by default
DISPLAY_METRICS = ("val_macro_f1", "val_accuracy", "test_macro_f1", "test_accuracy", "wall_time_s")
#: metric names whose better value is the smaller one
LOWER_IS_BETTER = ("loss", "wall_time_s", "gpu_hours", "time", "error")

SEED_KEY = "seed"


class NotASweepError(ValueError):
    """The path is neither a Hydra sweep (multirun) directory nor a single run directory."""


class NoJobsError(NotASweepError):
    """A sweep folder from which no job was submitted (the submission was refused, or it was a dry run
    that wrote nothing): every ``pipeline`` command says so instead of showing an empty sweep."""


class UnknownMetricError(ValueError):
    """The metric is not among those the runs report."""


# --------------------------------------------------------------------------------------------------
# reading


@dataclass
class Run:
    """One job of a sweep, as its files describe it."""

    sweep: str  # label of the sweep it belongs to
    sweep_dir: Path
    job_num: int | None
    name: str  # the run directory's name (the job number as text for sweeps)
    run_dir: Path | None  # None when the job has no run directory yet
    state: str = RUNNING
    error: str | None = None
    job_id: str | None = None
    overrides: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    final: dict[str, Any] | None = None  # metrics.json as read
    info: dict[str, Any] = field(default_factory=dict)  # run_info.json as read
    gpus: int = 0
    stdout: str | None = None  # scheduler log paths from sweep.json
    stderr: str | None = None

    @property
    def label(self) -> str:
        return str(self.job_num) if self.job_num is not None else self.name

    @property
    def monitor(self) -> str:
        return str((self.final or {}).get("monitor") or "macro_f1")

    def jsonl(self) -> list[dict[str, Any]]:
        """Every parseable line of ``metrics.jsonl`` (a torn last line is skipped)."""
        if self.run_dir is None:
            return []
        return read_jsonl(RD.metrics_jsonl(self.run_dir))

    def curve(self, key: str, split: str = "val") -> list[tuple[float, float]]:
        """``(step, value)`` of the ``split`` lines of ``metrics.jsonl`` for ``key`` (e.g. macro_f1, loss)."""
        if self.run_dir is None:
            return []
        return read_val_curve(RD.metrics_jsonl(self.run_dir), key, split)


@dataclass
class Sweep:
    path: Path
    name: str
    meta: dict[str, Any] | None  # sweep.json, when the launcher wrote one
    runs: list[Run]
    single_run: bool = False

    @property
    def scheduler(self) -> str:
        if self.meta and self.meta.get("scheduler"):
            return str(self.meta["scheduler"])
        for run in self.runs:
            if run.info.get("scheduler"):
                return str(run.info["scheduler"])
        return "none"


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; empty when it does not exist (a run that has not logged yet)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return b""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    data = _read_bytes(path)
    out = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a torn last line (or garbage): skip it
        if isinstance(obj, dict):
            out.append(obj)
    return out


def read_val_curve(path: Path, key: str, split: str = "val") -> list[tuple[float, float]]:
    """Fast path for curves: parse only the lines that mention ``"val"`` (or the ``split`` asked for)."""
    tag = json.dumps(split).encode()
    data = _read_bytes(path)
    out = []
    for line in data.splitlines():
        if tag not in line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict) or obj.get("split") != split:
            continue
        value, step = obj.get(key), obj.get("step")
        if _is_number(value) and _is_number(step):
            out.append((float(step), float(value)))
    return out


def parse_overrides(text: str) -> list[str]:
    """Hydra's ``overrides.yaml``: a YAML list of strings. Plain lists are read without yaml."""
    stripped = text.strip()
    if stripped in ("", "[]"):
        return []
    items = []
    for line in stripped.splitlines():
        if not line.strip():
            continue
        if not line.startswith("- ") or line[2:3] in ("'", '"') or line.rstrip().endswith(("'", '"')):
            return _yaml_list(text)
        items.append(line[2:].rstrip())
    return items


def _yaml_list(text: str) -> list[str]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(text, Loader=loader)
    return [str(x) for x in data] if isinstance(data, list) else []


def overrides_to_params(overrides: list[str]) -> dict[str, str]:
    """``["trainer.lr=1e-4", "+x=1", "~y"]`` -> ``{"trainer.lr": "1e-4", "x": "1", "y": "~"}``."""
    params = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            key, value = item, "~"
        params[key.lstrip("+~")] = value
    return params


_GPU_LINE = re.compile(r"^\s+(gpus_per_node|gpus):\s*(\d+)\s*$")


def requested_gpus(hydra_yaml: Path) -> int | None:
    """GPUs requested by the launcher (``hydra.launcher.gpus_per_node`` or ``.gpus``) in hydra.yaml.

    A line scan of the ``launcher:`` block rather than a YAML parse: hydra.yaml is long, and
    ``aggregate`` reads one per run.
    """
    try:
        text = hydra_yaml.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
    if "gpus" not in text:
        return None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped != "launcher:":
            continue
        indent = len(line) - len(line.lstrip())
        for sub in lines[i + 1 :]:
            if sub.strip() and len(sub) - len(sub.lstrip()) <= indent:
                break
            m = _GPU_LINE.match(sub)
            if m and len(sub) - len(sub.lstrip()) == indent + 2:
                return int(m.group(2))
        return None
    return None


def flatten_metrics(final: dict[str, Any]) -> dict[str, float]:
    """``{"val": {"accuracy": .9}, "wall_time_s": 12}`` -> ``{"val_accuracy": .9, "wall_time_s": 12.0}``."""
    out: dict[str, float] = {}
    for key, value in final.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if _is_number(v):
                    out[f"{key}_{sub}"] = float(v)
        elif _is_number(value):
            out[key] = float(value)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def first_line(text: Any) -> str | None:
    if text is None:
        return None
    lines = str(text).strip().splitlines()
    return lines[0].strip() if lines else None


def is_run_dir(path: Path) -> bool:
    return (
        (path / RD.HYDRA_DIR).is_dir()
        or RD.metrics_json(path).is_file()
        or RD.metrics_jsonl(path).is_file()
    )


def read_run(run: Run, gpus_per_job: int | None = None) -> Run:
    """Fill ``run`` from its run directory (state, error, overrides, metrics, run_info, GPUs)."""
    d = run.run_dir
    if d is None or not d.is_dir():
        run.run_dir = None
        run.state = MISSING
        return run
    try:
        run.overrides = parse_overrides(RD.hydra_file(d, RD.OVERRIDES_YAML).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        run.overrides = []
    except Exception as e:  # an unreadable overrides.yaml must not hide the rest of the sweep
        run.overrides = []
        run.error = f"overrides.yaml: {first_line(e)}"
    run.params = overrides_to_params(run.overrides)
    try:
        info = read_json(RD.run_info_json(d))
        run.info = info if isinstance(info, dict) else {}
    except (FileNotFoundError, NotADirectoryError, ValueError):
        run.info = {}
    if run.job_id is None and run.info.get("job_id"):
        run.job_id = str(run.info["job_id"])
    try:
        final = read_json(RD.metrics_json(d))
        if not isinstance(final, dict):
            raise ValueError("not a JSON object")
    except (FileNotFoundError, NotADirectoryError):
        run.state = RUNNING
        final = None
    except (ValueError, UnicodeDecodeError) as e:
        run.state = CORRUPT
        run.error = f"metrics.json does not parse: {first_line(e)}"
        final = None
    else:
        run.final = final
        run.state = COMPLETED if final.get("status", COMPLETED) == COMPLETED else FAILED
        run.error = first_line(final.get("error")) if run.state == FAILED else None
        if run.state == FAILED and not run.error:
            run.error = f"status {final.get('status')!r} without an error message"
        run.metrics = flatten_metrics(final)

    if gpus_per_job is not None:
        run.gpus = int(gpus_per_job)
    else:
        gpus = requested_gpus(d / ".hydra" / "hydra.yaml")
        if gpus is None:
            gpus = run.info.get("gpus") if _is_number(run.info.get("gpus")) else 0
        run.gpus = int(gpus)
    charged = attempts.total_wall_s(d)  # every attempt, failed and killed ones too
    if charged is None and "wall_time_s" in run.metrics:  # a run from before attempts.json
        charged = run.metrics["wall_time_s"]
    if charged is not None:
        run.metrics["gpu_hours"] = charged * run.gpus / 3600.0
    return run


def load_sweep(path: str | os.PathLike, name: str | None = None) -> Sweep:
    """Read a Hydra sweep directory (or a single run directory, as a sweep of one)."""
    path = Path(path)
    if not path.is_dir():
        raise NotASweepError(f"{path}: no such directory")
    label = name or path.name or str(path)
    if is_run_dir(path) and not RD.manifest_path(path).is_file():
        run = read_run(Run(sweep=label, sweep_dir=path, job_num=0, name=path.name, run_dir=path))
        return Sweep(path=path, name=label, meta=None, runs=[run], single_run=True)

    meta = None
    meta_path = RD.manifest_path(path)
    if meta_path.is_file():
        try:
            meta = read_json(meta_path)
        except ValueError as e:
            raise NotASweepError(f"{meta_path}: does not parse ({first_line(e)})") from e
    found: dict[str, Path] = {}
    with os.scandir(path) as it:
        for entry in it:
            if entry.is_dir() and not entry.name.startswith(".") and is_run_dir(Path(entry.path)):
                found[entry.name] = Path(entry.path)
    if meta is None and not found and not (path / RD.MULTIRUN_YAML).is_file():
        raise NotASweepError(
            f"{path}: not a sweep or run directory (no sweep.json, multirun.yaml, run directories, "
            f".hydra/ or metrics.json)"
        )
    if not found and not (meta or {}).get("jobs"):
        raise NoJobsError(
            f"{path}: no jobs were submitted from this folder (no {RD.SWEEP_JSON} jobs, no run directories); "
            "if the submission was refused, fix what the scheduler said and submit the sweep again"
        )

    gpus_per_job = None
    jobs_meta: dict[int, dict[str, Any]] = {}
    if isinstance(meta, dict):
        if _is_number(meta.get("gpus_per_job")):
            gpus_per_job = int(meta["gpus_per_job"])
        for job in meta.get("jobs") or []:
            if isinstance(job, dict) and isinstance(job.get("job_num"), int):
                jobs_meta[job["job_num"]] = job

    runs: dict[str, Run] = {}
    for dirname, d in found.items():
        num = int(dirname) if dirname.isdigit() else None
        runs[dirname] = Run(sweep=label, sweep_dir=path, job_num=num, name=dirname, run_dir=d)
    for num, job in jobs_meta.items():
        key = str(num)
        if key not in runs:
            rd = path / key
            alt = Path(job["run_dir"]) if job.get("run_dir") else None
            if not rd.is_dir() and alt is not None and alt.is_dir():
                rd = alt
            runs[key] = Run(sweep=label, sweep_dir=path, job_num=num, name=key, run_dir=rd)
        run = runs[key]
        run.job_id = str(job["job_id"]) if job.get("job_id") is not None else None
        run.stdout = job.get("stdout")
        run.stderr = job.get("stderr")
        if job.get("overrides") is not None:
            run.overrides = [str(x) for x in job["overrides"]]

    ordered = sorted(runs.values(), key=lambda r: (r.job_num is None, r.job_num or 0, r.name))
    for run in ordered:
        listed = list(run.overrides)
        read_run(run, gpus_per_job)
        if not run.overrides and listed:
            run.overrides = listed
        if not run.params:
            run.params = overrides_to_params(run.overrides)
    return Sweep(path=path, name=label, meta=meta, runs=ordered)


def sweep_labels(paths: list[Path]) -> list[str]:
    """Short, unique labels for the ``sweep`` column: the directory name, else the path given."""
    names = [p.name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def load_sweeps(paths: list[str | os.PathLike]) -> list[Sweep]:
    ps = [Path(p) for p in paths]
    return [load_sweep(p, name) for p, name in zip(ps, sweep_labels(ps), strict=True)]


# --------------------------------------------------------------------------------------------------
# metrics and parameters


def default_mode(metric: str) -> str:
    return "min" if any(metric.endswith(s) for s in LOWER_IS_BETTER) else "max"


def metrics_present(runs: list[Run]) -> list[str]:
    seen: set[str] = set()
    for run in runs:
        seen.update(run.metrics)
    return order_metrics(seen)


def order_metrics(names: set[str] | list[str]) -> list[str]:
    names = set(names)
    head = [m for m in PREFERRED_METRICS if m in names]
    return head + sorted(names - set(head))


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


# --------------------------------------------------------------------------------------------------
# tables


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

    def human_columns(self) -> list[str]:
        cols = ["best"]
        if self.multi_sweep:
            cols.append("sweep")
        cols += ["job"] if not self.by_seed else []
        cols += self.params
        cols += ["n"] if self.by_seed else []
        cols += ["state"]
        cols += [m for m in self.display if m != "gpu_hours"] + ["gpu_hours", "error"]
        return cols

    def data_columns(self) -> list[str]:
        cols = ["rank", "best", "sweep"]
        if self.by_seed:
            cols += self.params + ["n", "runs", "state", "jobs"]
            for m in self.metrics:
                cols += [m] if m == "gpu_hours" else [f"{m}_mean", f"{m}_std"]
        else:
            cols += ["job", "job_id"] + self.params + ["state"] + self.metrics
        cols += ["error", "run_dir" if not self.by_seed else "best_run_dir"]
        return cols


def _state_rank(state: str) -> int:
    order = (COMPLETED, RUNNING, PENDING, FAILED, CORRUPT, MISSING, BASELINE)
    return order.index(state) if state in order else len(order)


def _sort_and_mark(rows: list[dict[str, Any]], key: str, mode: str) -> int | None:
    def sort_key(row: dict[str, Any]) -> tuple:
        v = row.get(key)
        has = isinstance(v, float) and not math.isnan(v) and row["state"] != BASELINE
        return (not has, (-v if mode == "max" else v) if has else 0.0, _state_rank(row["state"]),
                row.get("_order", 0))

    rows.sort(key=sort_key)
    best = None
    rank = 0
    for i, row in enumerate(rows):
        v = row.get(key)
        ranked = isinstance(v, float) and not math.isnan(v) and row["state"] != BASELINE
        if ranked:
            rank += 1
            if best is None:
                best = i
        row["rank"] = rank if ranked else None
        row["best"] = best == i
        row.pop("_order", None)
    return best


def _counts(runs: list[Run]) -> dict[str, int]:
    out: dict[str, int] = {}
    for run in runs:
        out[run.state] = out.get(run.state, 0) + 1
    return out


def _display(metric: str, present: list[str], columns: list[str] | None) -> list[str]:
    if columns:
        wanted = list(columns)
    else:
        wanted = [m for m in DISPLAY_METRICS if m in present] or [m for m in DISPLAY_METRICS]
    if metric not in wanted:
        wanted.insert(0, metric)
    return wanted


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
        }
        for p in params:
            row[p] = run.params.get(p)
        for m in present:
            row[m] = run.metrics.get(m)
        rows.append(row)
    for b in baselines or []:
        row = {"sweep": b.get("sweep"), "job": b.get("label", BASELINE), "job_id": None, "state": BASELINE,
               "error": None, "run_dir": None, "_order": len(rows)}
        row.update({p: None for p in params})
        row.update({m: b["metrics"].get(m) for m in present})
        rows.append(row)
    best = _sort_and_mark(rows, metric, mode)
    return _table(runs, rows, metric, mode, False, params, present, columns, best)


def _table(runs: list[Run], rows: list[dict[str, Any]], metric: str, mode: str, by_seed: bool, params: list[str],
           present: list[str], columns: list[str] | None, best: int | None) -> Table:
    return Table(
        rows=rows, metric=metric, mode=mode, by_seed=by_seed, params=params, metrics=present,
        display=_display(metric, present, columns), multi_sweep=len({r.sweep for r in runs}) > 1,
        total_gpu_hours=sum(r.metrics.get("gpu_hours", 0.0) for r in runs), counts=_counts(runs), best=best,
    )


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; None for fewer than two values)."""
    if not values:
        return None, None
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def seed_groups(runs: list[Run]) -> list[tuple[tuple[str, tuple], list[Run]]]:
    """Runs grouped by (sweep, configuration without seed), in first-seen order."""
    groups: dict[tuple[str, tuple], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.sweep, config_key(run)), []).append(run)
    return list(groups.items())


def seed_table(runs: list[Run], metric: str = "val_macro_f1", mode: str | None = None, all_params: bool = False,
               columns: list[str] | None = None, baselines: list[dict[str, Any]] | None = None) -> Table:
    """One row per configuration (overrides minus ``seed``): mean ± std over the completed seeds."""
    check_metric(metric, runs)
    mode = mode or default_mode(metric)
    params = [p for p in varying_params(runs, all_params) if p != SEED_KEY]
    present = metrics_present(runs)
    rows = []
    for i, ((sweep, _), group) in enumerate(seed_groups(runs)):
        done = [r for r in group if r.state == COMPLETED]
        row: dict[str, Any] = {"sweep": sweep, "n": len(done), "runs": len(group), "_order": i,
                               "jobs": " ".join(r.label for r in group)}
        for p in params:
            row[p] = group[0].params.get(p)
        counts = _counts(group)
        row["state"] = ", ".join(f"{counts[s]} {s}" for s in STATES if s in counts)
        errors = [f"job {r.label}: {r.error}" for r in group if r.error]
        row["error"] = errors[0] + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "") if errors else None
        for m in present:
            if m == "gpu_hours":
                row[m] = sum(r.metrics.get(m, 0.0) for r in group)
                continue
            vals = [r.metrics[m] for r in done if m in r.metrics]
            row[f"{m}_mean"], row[f"{m}_std"] = mean_std(vals)
        key = f"{metric}_mean" if metric != "gpu_hours" else metric
        scored = [r for r in done if metric in r.metrics]
        if scored:
            pick = max if mode == "max" else min
            best_run = pick(scored, key=lambda r: r.metrics[metric])
            row["best_run_dir"] = str(best_run.run_dir)
        else:
            row["best_run_dir"] = None
        row["_rank_value"] = row.get(key) if row["n"] else None
        rows.append(row)
    for b in baselines or []:
        row = {"sweep": b.get("sweep"), "n": 1, "runs": 1, "state": BASELINE, "jobs": b.get("label", BASELINE),
               "error": None, "best_run_dir": None, "_order": len(rows), "_rank_value": None}
        row.update({p: None for p in params})
        if params:
            row[params[0]] = b.get("label", BASELINE)
        for m in present:
            if m == "gpu_hours":
                row[m] = 0.0
            else:
                row[f"{m}_mean"], row[f"{m}_std"] = b["metrics"].get(m), None
        rows.append(row)
    best = _sort_and_mark(rows, "_rank_value", mode)
    for row in rows:
        row.pop("_rank_value", None)
    return _table(runs, rows, metric, mode, True, params, present, columns, best)


def best_run(runs: list[Run], metric: str = "val_macro_f1", mode: str | None = None) -> Run | None:
    check_metric(metric, runs)
    mode = mode or default_mode(metric)
    scored = [r for r in runs if r.state == COMPLETED and metric in r.metrics]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r.metrics[metric])


# --------------------------------------------------------------------------------------------------
# formatting


def format_number(metric: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if not _is_number(value):
        return str(value)
    if metric == "gpu_hours":
        return f"{value:.3f}"
    if metric.endswith(("_s", "samples_per_s")):
        return f"{value:.1f}"
    if metric in ("best_epoch", "best_step", "epochs", "steps") or float(value).is_integer() and abs(value) > 1:
        return f"{value:.0f}"
    return f"{value:.4f}"


def cell(table: Table, row: dict[str, Any], col: str) -> str:
    """The text of one cell in the human formats."""
    if col == "best":
        return "*" if row.get("best") else ""
    if col == "state":
        state = str(row.get("state") or "")
        return state.upper() if not table.by_seed else state
    if col in table.display or col == "gpu_hours":
        if table.by_seed and col != "gpu_hours":
            mean, std = row.get(f"{col}_mean"), row.get(f"{col}_std")
            if mean is None:
                return ""
            if std is None:
                return format_number(col, mean)
            return f"{format_number(col, mean)} ± {format_number(col, std)}"
        return format_number(col, row.get(col))
    value = row.get(col)
    return "" if value is None else str(value)


def human_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    cols = table.human_columns()
    return cols, [[cell(table, row, c) for c in cols] for row in table.rows]


def total_line(table: Table) -> str:
    counts = ", ".join(f"{table.counts[s]} {s}" for s in STATES if table.counts.get(s))
    runs = sum(table.counts.values())
    return f"total: {table.total_gpu_hours:.3f} GPU hours over {runs} runs ({counts or 'none'})"


#: the table footer's second line: what gpu_hours counts
GPU_HOURS_NOTE = "GPU hours include all attempts (requeued, killed and failed ones too)"


def best_line(table: Table) -> str:
    if table.best is None:
        return f"best: none (no completed run reports {table.metric})"
    row = table.rows[table.best]
    if table.by_seed:
        config = " ".join(f"{p}={row[p]}" for p in table.params if row.get(p) is not None) or "the configuration"
        where = f"{config} (jobs {row.get('jobs')})"
    else:
        where = f"job {row.get('job')}"
    if table.multi_sweep:
        where = f"{row.get('sweep')} {where}"
    return f"best by {table.metric} ({table.mode}): {where} = {cell(table, row, table.metric)}"


def to_markdown(table: Table) -> str:
    cols, rows = human_rows(table)

    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    right = set(table.display) | {"gpu_hours", "n"}
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |",
             "|" + "|".join("---:" if c in right else "---" for c in cols) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in rows]
    lines += ["", total_line(table), GPU_HOURS_NOTE, "", best_line(table)]
    return "\n".join(lines) + "\n"


_LATEX_ESC = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
              "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(s: str) -> str:
    s = "".join(_LATEX_ESC.get(ch, ch) for ch in s)
    return s.replace("±", r"$\pm$")


def to_latex(table: Table) -> str:
    cols, rows = human_rows(table)
    cols_l = [c for c in cols if c != "best"]
    right = set(table.display) | {"gpu_hours", "n"}
    spec = "".join("r" if c in right else "l" for c in cols_l)
    out = [f"\\begin{{tabular}}{{{spec}}}", r"\hline",
           " & ".join(latex_escape(c) for c in cols_l) + r" \\", r"\hline"]
    for i, r in enumerate(rows):
        cells = [latex_escape(v) for c, v in zip(cols, r, strict=True) if c != "best"]
        if i == table.best:
            cells = [f"\\textbf{{{c}}}" if c else c for c in cells]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\hline",
            f"\\multicolumn{{{len(cols_l)}}}{{l}}{{{latex_escape(total_line(table))}}} \\\\",
            f"\\multicolumn{{{len(cols_l)}}}{{l}}{{{latex_escape(GPU_HOURS_NOTE)}}} \\\\",
            r"\hline", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def data_rows(table: Table) -> tuple[list[str], list[dict[str, Any]]]:
    cols = table.data_columns()
    return cols, [{c: row.get(c) for c in cols} for row in table.rows]


def to_csv(table: Table) -> str:
    cols, rows = data_rows(table)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in rows:
        w.writerow([_csv_value(row[c]) for c in cols])
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    """Counts stay integers (``210``, not ``210.0``: metrics.json's numbers are all read as floats)."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _json_safe(v: Any) -> Any:
    return None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else v


def table_dict(table: Table) -> dict[str, Any]:
    cols, rows = data_rows(table)
    return {
        "metric": table.metric,
        "mode": table.mode,
        "by_seed": table.by_seed,
        "params": table.params,
        "metrics": table.metrics,
        "best": table.best,
        "total": {"gpu_hours": table.total_gpu_hours, "runs": sum(table.counts.values()),
                  "states": table.counts},
        "rows": [{c: _json_safe(row[c]) for c in cols} for row in rows],
    }


def to_json(table: Table) -> str:
    return json.dumps(table_dict(table), indent=2) + "\n"


FORMATTERS = {"md": to_markdown, "csv": to_csv, "json": to_json, "latex": to_latex}


# --------------------------------------------------------------------------------------------------
# aggregation: the one function here that writes files


def curve_key(metric: str) -> str:
    """The ``metrics.jsonl`` key behind a metric name: ``val_macro_f1`` / ``test_macro_f1`` -> ``macro_f1``."""
    for prefix in ("val_", "test_"):
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return metric


def aggregate(
    sweep_path: str | os.PathLike | Sweep,
    metric: str = "val_macro_f1",
    mode: str | None = None,
    out_dir: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Write ``results/{runs.csv, summary.csv, summary.md, results.json, curves.png, final.png, report.html}``
    and ``confusion.png`` (the best run's test confusion matrix).

    ``sweep_path``: a sweep directory, or a :class:`Sweep` already loaded.

    Works on partial sweeps: runs without data are skipped by the plots and listed with their state
    in the tables.
    """
    from pipeline import atomic
    from pipeline.results import plots

    sweep = sweep_path if isinstance(sweep_path, Sweep) else load_sweep(sweep_path)
    runs = sweep.runs
    mode = mode or default_mode(metric)
    per_run = run_table(runs, metric, mode)
    summary = seed_table(runs, metric, mode)
    out = Path(out_dir) if out_dir else sweep.path / RD.RESULTS_DIR
    paths = {name: out / name for name in
             ("runs.csv", "summary.csv", "summary.md", "results.json", "curves.png", "final.png")}
    atomic.write_text(paths["runs.csv"], to_csv(per_run))
    atomic.write_text(paths["summary.csv"], to_csv(summary))
    md = f"# {sweep.name}\n\n## Configurations (mean ± std over seeds)\n\n{to_markdown(summary)}\n" \
         f"## Runs\n\n{to_markdown(per_run)}"
    atomic.write_text(paths["summary.md"], md)
    atomic.write_text(paths["results.json"], json.dumps({
        "sweep": str(sweep.path), "metric": metric, "mode": mode,
        "runs": table_dict(per_run), "summary": table_dict(summary),
    }, indent=2) + "\n")

    images = {name: plots.render_png(fig) for name, fig in sweep_figures(sweep, metric).items()}
    for name, png in images.items():
        paths.setdefault(name, out / name)  # confusion.png: only when the best run has per-class metrics
        atomic.write_bytes(paths[name], png)
    from pipeline.results import report

    paths["report.html"] = out / "report.html"
    atomic.write_text(paths["report.html"], report.render(sweep, per_run, summary, images))
    return paths


def sweep_figures(sweep: Sweep, metric: str = "val_macro_f1") -> dict[str, Any]:
    """``{"curves.png": Figure, "final.png": Figure[, "confusion.png": Figure]}``: the learning curves
    (validation ``metric`` and training loss), the per-configuration summary (seeds as points, their mean as
    a bar) and the best run's test confusion matrix."""
    from pipeline.results import plots

    runs = sweep.runs
    keys = varying_params(runs)
    key = curve_key(metric)
    curves: list[tuple[str, list[list[tuple[float, float]]]]] = []
    train: list[list[list[tuple[float, float]]]] = []
    finals: list[tuple[str, list[float]]] = []
    for (_, _), group in seed_groups(runs):
        label = config_label(group[0], keys)
        cs = [c for c in (r.curve(key) for r in group if r.run_dir is not None) if c]
        curves.append((label, cs))  # empty ones too: a configuration keeps its colour in both plots
        train.append([c for c in (r.curve("loss", "train") for r in group if r.run_dir is not None) if c])
        finals.append((label, [r.metrics[metric] for r in group if r.state == COMPLETED and metric in r.metrics]))
    figures = {"curves.png": plots.curves_figure(curves, key, sweep.name, train),
               "final.png": plots.final_figure(finals, metric, sweep.name)}
    best = best_run(runs, metric) if any(metric in r.metrics for r in runs) else None
    classes = (best.final or {}).get("test_classes") if best is not None else None
    if classes:  # runs from before per-class metrics have none
        title = f"{sweep.name}\ntest confusion matrix, best run by {metric} (job {best.label})"
        figures["confusion.png"] = plots.confusion_figure(classes["labels"], classes["confusion_matrix"], title)
    return figures
