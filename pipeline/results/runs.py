"""Read run directories and sweeps: :class:`Run`, :class:`Sweep`, :func:`load_sweep`.

Everything here is read from the files a run leaves behind (``.hydra/overrides.yaml``, ``metrics.json``,
``metrics.jsonl``, ``run_info.json``) and the sweep's ``sweep.json``; nothing asks a scheduler (that is
:mod:`pipeline.launch.sweep_status`). So the tables work on partial sweeps, on copies of sweeps and
across sweeps.

No pandas, no yaml in the common path: ``pipeline status`` and ``pipeline results`` must start fast, and
``pipeline aggregate`` must read 1,000 runs in well under a second.

Run states: ``completed`` / ``pruned`` / ``failed`` (``metrics.json`` says so; any other status, such as
``killed`` or ``gave_up``, reads as failed), ``corrupt`` (``metrics.json`` does not parse), ``running``
(a run directory without ``metrics.json``), ``missing`` (listed in ``sweep.json`` but no run directory).
``pending`` and ``requeued`` only come from the scheduler (``pipeline status``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import rundir as RD
from pipeline.errors import first_line
from pipeline.rundir import COMPLETED, CORRUPT, FAILED, MISSING, PRUNED, RUNNING
from pipeline.train import attempts

#: ``metrics.json`` statuses that are a run's own, final and good, state
GOOD_FINAL = (COMPLETED, PRUNED)


class NotASweepError(ValueError):
    """The path is neither a Hydra sweep (multirun) directory nor a single run directory."""


class NoJobsError(NotASweepError):
    """A sweep folder from which no job was submitted (the submission was refused, or it was a dry run
    that wrote nothing): every ``pipeline`` command says so instead of showing an empty sweep."""


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

    @property
    def gpu(self) -> dict[str, Any]:
        """``metrics.json``'s ``gpu`` (util_mean, peak_mem_gb, mem_total_gb, warning, ...); {} on CPU."""
        gpu = (self.final or {}).get("gpu")
        return gpu if isinstance(gpu, dict) else {}

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


# ------------------------------------------------------------------------------------------------- files


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


def _json_lines(data: bytes, tag: bytes = b"") -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines text; lines without ``tag``, torn lines and garbage are skipped."""
    out = []
    for line in data.splitlines():
        if not line.strip() or tag not in line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a torn last line (or garbage)
        if isinstance(obj, dict):
            out.append(obj)
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return _json_lines(_read_bytes(path))


def read_val_curve(path: Path, key: str, split: str = "val") -> list[tuple[float, float]]:
    """Fast path for curves: parse only the lines that mention ``"val"`` (or the ``split`` asked for)."""
    out = []
    for obj in _json_lines(_read_bytes(path), json.dumps(split).encode()):
        value, step = obj.get(key), obj.get("step")
        if obj.get("split") == split and is_number(value) and is_number(step):
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
        if line.strip() != "launcher:":
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
    """``{"val": {"accuracy": .9}, "gpu": {"util_mean": 83}, "wall_time_s": 12}`` ->
    ``{"val_accuracy": .9, "gpu_util_mean": 83.0, "wall_time_s": 12.0}`` (numbers only)."""
    out: dict[str, float] = {}
    for key, value in final.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if is_number(v):
                    out[f"{key}_{sub}"] = float(v)
        elif is_number(value):
            out[key] = float(value)
    return out


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_run_dir(path: Path) -> bool:
    return (
        (path / RD.HYDRA_DIR).is_dir()
        or RD.metrics_json(path).is_file()
        or RD.metrics_jsonl(path).is_file()
    )


# -------------------------------------------------------------------------------------------------- runs


def _read_overrides(run: Run, d: Path) -> None:
    try:
        run.overrides = parse_overrides(RD.hydra_file(d, RD.OVERRIDES_YAML).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        run.overrides = []
    except Exception as e:  # an unreadable overrides.yaml must not hide the rest of the sweep
        run.overrides = []
        run.error = f"{RD.OVERRIDES_YAML}: {first_line(e)}"
    run.params = overrides_to_params(run.overrides)


def _read_final(run: Run, d: Path) -> None:
    """State, error and metrics from ``metrics.json``."""
    try:
        final = read_json(RD.metrics_json(d))
        if not isinstance(final, dict):
            raise ValueError("not a JSON object")
    except (FileNotFoundError, NotADirectoryError):
        run.state = RUNNING
        return
    except (ValueError, UnicodeDecodeError) as e:
        run.state = CORRUPT
        run.error = f"{RD.METRICS_JSON} does not parse: {first_line(e)}"
        return
    run.final = final
    status = final.get("status", COMPLETED)
    run.state = status if status in GOOD_FINAL else FAILED
    if run.state == FAILED:
        run.error = first_line(final.get("error") or "") or f"status {status!r} without an error message"
    else:
        run.error = None
    run.metrics = flatten_metrics(final)


def _charge_gpu_hours(run: Run, d: Path, gpus_per_job: int | None) -> None:
    """``run.gpus`` and the ``gpu_hours`` metric: every attempt, failed and killed ones too."""
    if gpus_per_job is not None:
        run.gpus = int(gpus_per_job)
    else:
        gpus = requested_gpus(RD.hydra_file(d, RD.HYDRA_YAML))
        if gpus is None:
            gpus = run.info.get("gpus") if is_number(run.info.get("gpus")) else 0
        run.gpus = int(gpus)
    charged = attempts.total_wall_s(d)
    if charged is None and "wall_time_s" in run.metrics:  # a run from before attempts.json
        charged = run.metrics["wall_time_s"]
    if charged is not None:
        run.metrics["gpu_hours"] = charged * run.gpus / 3600.0


def read_run(run: Run, gpus_per_job: int | None = None) -> Run:
    """Fill ``run`` from its run directory (state, error, overrides, metrics, run_info, GPUs)."""
    d = run.run_dir
    if d is None or not d.is_dir():
        run.run_dir = None
        run.state = MISSING
        return run
    _read_overrides(run, d)
    try:
        info = read_json(RD.run_info_json(d))
        run.info = info if isinstance(info, dict) else {}
    except (FileNotFoundError, NotADirectoryError, ValueError):
        run.info = {}
    if run.job_id is None and run.info.get("job_id"):
        run.job_id = str(run.info["job_id"])
    _read_final(run, d)
    _charge_gpu_hours(run, d, gpus_per_job)
    return run


# ------------------------------------------------------------------------------------------------ sweeps


def _read_meta(path: Path) -> dict[str, Any] | None:
    meta_path = RD.manifest_path(path)
    if not meta_path.is_file():
        return None
    try:
        return read_json(meta_path)
    except ValueError as e:
        raise NotASweepError(f"{meta_path}: does not parse ({first_line(e)})") from e


def _run_dirs(path: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    with os.scandir(path) as it:
        for entry in it:
            if entry.is_dir() and not entry.name.startswith(".") and is_run_dir(Path(entry.path)):
                found[entry.name] = Path(entry.path)
    return found


def _check_is_sweep(path: Path, meta: dict[str, Any] | None, found: dict[str, Path]) -> None:
    if (path / RD.STUDY_JSON).is_file():
        return  # a study is a sweep from its creation: its workers make the run directories as they ask trials
    if meta is None and not found and not (path / RD.MULTIRUN_YAML).is_file():
        raise NotASweepError(
            f"{path}: not a sweep or run directory (no {RD.SWEEP_JSON}, {RD.MULTIRUN_YAML}, run directories, "
            f"{RD.HYDRA_DIR}/ or {RD.METRICS_JSON})"
        )
    if not found and not (meta or {}).get("jobs") and not (meta or {}).get("study"):  # a study: trials to come
        raise NoJobsError(
            f"{path}: no jobs were submitted from this folder (no {RD.SWEEP_JSON} jobs, no run directories); "
            "if the submission was refused, fix what the scheduler said and submit the sweep again"
        )


def _listed_jobs(meta: Any) -> dict[int, dict[str, Any]]:
    jobs: dict[int, dict[str, Any]] = {}
    for job in (meta.get("jobs") if isinstance(meta, dict) else None) or []:
        if isinstance(job, dict) and isinstance(job.get("job_num"), int):
            jobs[job["job_num"]] = job
    return jobs


def _merge_listed(runs: dict[str, Run], jobs: dict[int, dict[str, Any]], path: Path, label: str) -> None:
    """Add ``sweep.json``'s jobs to the runs found on disk: job ids, log paths, overrides."""
    for num, job in jobs.items():
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


def load_sweep(path: str | os.PathLike, name: str | None = None) -> Sweep:
    """Read a Hydra sweep directory (or a single run directory, as a sweep of one)."""
    path = Path(path)
    if not path.is_dir():
        raise NotASweepError(f"{path}: no such directory")
    label = name or path.name or str(path)
    if is_run_dir(path) and not RD.manifest_path(path).is_file():
        run = read_run(Run(sweep=label, sweep_dir=path, job_num=0, name=path.name, run_dir=path))
        return Sweep(path=path, name=label, meta=None, runs=[run], single_run=True)

    meta = _read_meta(path)
    found = _run_dirs(path)
    _check_is_sweep(path, meta, found)
    gpus_per_job = int(meta["gpus_per_job"]) if isinstance(meta, dict) and is_number(meta.get("gpus_per_job")) \
        else None
    runs = {name: Run(sweep=label, sweep_dir=path, job_num=int(name) if name.isdigit() else None, name=name,
                      run_dir=d) for name, d in found.items()}
    _merge_listed(runs, _listed_jobs(meta), path, label)
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
