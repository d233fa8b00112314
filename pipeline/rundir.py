"""The run-directory and sweep-manifest contract: file names, status values, and their readers/writers.

A sweep directory holds ``sweep.json`` (the manifest the launchers write and every ``pipeline`` command
reads), one run directory per job (``<sweep>/<job_num>/``), the submitit folder (``.submitit/``) and,
once aggregated, ``results/``. A run directory holds ``.hydra/``, ``metrics.jsonl``, ``metrics.json``,
``run_info.json``, ``checkpoints/{last,best}`` and the job log. Every name lives here so that writers
(launchers, training) and readers (results, status, rerun) cannot drift apart.

The manifest (``sweep.json``)::

    {"scheduler": "lsf" | "slurm" | "local", "created": "<iso time>",
     "submitit_folder": "<abs folder of pickles and logs>",
     "arrays": [{"job_id": "1234", "size": 100, "first_job_num": 0}],
     "jobs": [{"job_num": 0, "job_id": "1234[1]", "run_dir": "<abs>/0", "stdout": "<abs log>",
               "stderr": "<abs log>", "overrides": ["trainer.lr=1e-4", "seed=0"]}],
     "aggregate_job_id": null, "aggregate_submitted": <epoch s>, "gpus_per_job": 0}

plus, for LSF, ``"dialect"`` (lsf10 or openlava) and ``"dry_run": true`` when nothing was submitted, and
``"reruns"`` (one record per ``pipeline rerun``). A packed sweep (``hydra.launcher.runs_per_job=k > 1``,
:mod:`pipeline.launch.packing`) adds ``"runs_per_job": k`` and ``"packs": [{"job_id": "1234[1]",
"job_nums": [0, 1, 2]}]`` (the points each scheduler job runs, in order); each of those points' entry
under ``jobs`` has that job's id and logs. ``aggregate_submitted`` is the time the current
aggregation job was submitted: ``results/`` older than that belongs to an earlier aggregation.

A study (``hydra/sweeper=study``, :mod:`pipeline.search`) has no points known in advance: ``jobs`` is empty
(its trials are the run directories ``<sweep>/<trial number>/``, each naming its worker's job in
``run_info.json``), ``arrays`` names the workers' array with ``"first_job_num": null``, and ``study`` records
the study and its workers, one per slot::

    "study": {"name": "<study name>", "journal": "study.journal", "settings": {<StudySettings>},
              "workers": [{"slot": 0, "job_id": "1234[1]", "stdout": "<abs log>", "stderr": "<abs log>",
                           "previous_job_ids": []}]}

A rerun of a failed worker replaces its slot's ``job_id`` and logs and appends the old id to
``previous_job_ids``; its ``reruns`` record has ``workers``, ``previous_job_ids`` and ``job_ids`` by slot.

The requeue marker (``<submitit folder>/<job stem>_requeue_requested.json``) is written by a job just
before it asks the scheduler to requeue it and removed when it starts again: while LSF shows the job
``EXIT`` for a few seconds between the kill and the new ``PEND``, the marker says it is being requeued.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------------------------------- file names

SWEEP_JSON = "sweep.json"
MULTIRUN_YAML = "multirun.yaml"
SUBMITIT_DIR = ".submitit"
RESULTS_DIR = "results"
RESULTS_JSON = "results.json"
AGGREGATE_SCRIPT = "aggregate.bsub"

HYDRA_DIR = ".hydra"
CONFIG_YAML = "config.yaml"
OVERRIDES_YAML = "overrides.yaml"
METRICS_JSON = "metrics.json"
METRICS_JSONL = "metrics.jsonl"
RUN_INFO_JSON = "run_info.json"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last"
BEST_CHECKPOINT = "best"
TEST_PREDICTIONS_CSV = "test_predictions.csv"
WANDB_ID_TXT = "wandb_id.txt"
RUN_LOG = "run.log"
RERUN_ARCHIVE = ".rerun"
REQUEUE_MARKER_SUFFIX = "_requeue_requested.json"
HYDRA_YAML = "hydra.yaml"
PROGRESS_JSON = "progress.json"
ATTEMPTS_JSON = "attempts.json"
#: inside ``checkpoints/best``: the step, epoch, validation metrics and max_length of that checkpoint
BEST_JSON = "best.json"

# the files of ``<sweep>/results/`` (``pipeline aggregate``)
RUNS_CSV = "runs.csv"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
CURVES_PNG = "curves.png"
FINAL_PNG = "final.png"
CONFUSION_PNG = "confusion.png"
REPORT_HTML = "report.html"
# ... and what a study adds there: every trial, and Optuna's plots of the study
TRIALS_CSV = "trials.csv"
STUDY_HISTORY_PNG = "study_history.png"
STUDY_IMPORTANCE_PNG = "study_importance.png"
STUDY_INTERMEDIATE_PNG = "study_intermediate.png"

# a study (``hydra/sweeper=study``): its Optuna journal and its settings, in the sweep directory, and one
# record per worker slot (``study_workers/<slot>.json``: the trial that worker holds; ``pipeline.search``)
STUDY_JOURNAL = "study.journal"
STUDY_JSON = "study.json"
STUDY_WORKERS_DIR = "study_workers"

# --------------------------------------------------------------------------------------- status values

#: ``metrics.json`` "status" values, and the displayed job states (``pipeline status``)
COMPLETED, FAILED, CORRUPT, RUNNING, PENDING, MISSING = (
    "completed", "failed", "corrupt", "running", "pending", "missing",
)
#: a run a study's pruner stopped early: final and good, like completed (never rerun, not a failure)
PRUNED = "pruned"
#: a job the scheduler is requeueing (run-limit checkpoint, then brequeue / scontrol requeue)
REQUEUED = "requeued"
STATES = (COMPLETED, PRUNED, RUNNING, REQUEUED, PENDING, FAILED, CORRUPT, MISSING)
BAD_STATES = (FAILED, CORRUPT)
#: how long a requeue marker explains an ``EXIT`` (LSF shows it ~3 s before ``PEND``)
REQUEUE_GRACE_S = 120.0


# ------------------------------------------------------------------------------------------ run dirs


def metrics_json(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS_JSON


def metrics_jsonl(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS_JSONL


def run_info_json(run_dir: Path) -> Path:
    return Path(run_dir) / RUN_INFO_JSON


def checkpoint_dir(run_dir: Path, which: str = LAST_CHECKPOINT) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / which


def relative_checkpoint(which: str = LAST_CHECKPOINT) -> str:
    """``checkpoints/last`` (or ``/best``): a checkpoint as messages and ``metrics.json`` name it."""
    return f"{CHECKPOINTS_DIR}/{which}"


def hydra_file(run_dir: Path, name: str = CONFIG_YAML) -> Path:
    return Path(run_dir) / HYDRA_DIR / name


def results_json(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / RESULTS_DIR / RESULTS_JSON


def results_file(sweep_dir: Path, name: str) -> Path:
    """``<sweep>/results/<name>`` (name: one of the results-file constants above)."""
    return Path(sweep_dir) / RESULTS_DIR / name


def progress_json(run_dir: Path) -> Path:
    return Path(run_dir) / PROGRESS_JSON


def attempts_json(run_dir: Path) -> Path:
    return Path(run_dir) / ATTEMPTS_JSON


def new_archive(run_dir: Path) -> Path:
    """A new, empty ``<run dir>/.rerun/<n>/`` (n one above the last) for the files of an earlier attempt."""
    root = Path(run_dir) / RERUN_ARCHIVE
    root.mkdir(parents=True, exist_ok=True)
    n = 1 + max((int(p.name) for p in root.iterdir() if p.name.isdigit()), default=0)
    dest = root / str(n)
    dest.mkdir()
    return dest


def study_worker_json(sweep_dir: Path, slot: int) -> Path:
    """``<sweep>/study_workers/<slot>.json``: the trial a study's worker slot holds."""
    return Path(sweep_dir) / STUDY_WORKERS_DIR / f"{int(slot)}.json"


# ---------------------------------------------------------------------------------------- the manifest


def manifest_path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / SWEEP_JSON


def read_manifest(sweep_dir: Path) -> dict[str, Any] | None:
    """``sweep.json`` as a dict, None when there is none; ValueError when it does not parse."""
    path = manifest_path(sweep_dir)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def manifest(*, scheduler: str, submitit_folder: str | Path, arrays: list[dict[str, Any]],
             jobs: list[dict[str, Any]], gpus_per_job: int, aggregate_job_id: str | None = None,
             **extra: Any) -> dict[str, Any]:
    return {
        "scheduler": scheduler,
        "created": now_iso(),
        "submitit_folder": str(submitit_folder),
        "arrays": arrays,
        "jobs": jobs,
        "aggregate_job_id": aggregate_job_id,
        "gpus_per_job": gpus_per_job,
        **extra,
    }


def job_entry(num: int, job_id: str | None, run_dir: str | None, stdout: Path | str | None,
              stderr: Path | str | None, overrides: Sequence[str]) -> dict[str, Any]:
    return {
        "job_num": num,
        "job_id": job_id,
        "run_dir": run_dir,
        "stdout": None if stdout is None else str(stdout),
        "stderr": None if stderr is None else str(stderr),
        "overrides": list(overrides),
    }


def write_manifest(sweep_dir: Path, data: dict[str, Any], initial_job_idx: int = 0) -> dict[str, Any]:
    """Write ``sweep.json`` atomically; a batch after the first (initial_job_idx > 0) is added to it."""
    from pipeline import atomic

    old = read_manifest(sweep_dir) if initial_job_idx > 0 else None
    if old is not None:
        known = {j["job_num"] for j in data["jobs"]}
        data["jobs"] = [j for j in old.get("jobs", []) if j.get("job_num") not in known] + data["jobs"]
        data["arrays"] = old.get("arrays", []) + data["arrays"]
        data["created"] = old.get("created", data["created"])
    atomic.write_json(manifest_path(sweep_dir), data)
    return data


def set_aggregate_job(data: dict[str, Any], job_id: str | None) -> None:
    """Record the current aggregation job (and when it was submitted) in a manifest dict."""
    data["aggregate_job_id"] = job_id
    data["aggregate_submitted"] = time.time() if job_id else None


def results_are_current(sweep_dir: Path, meta: dict[str, Any] | None) -> bool:
    """``results/results.json`` exists and was written after the current aggregation job was submitted."""
    path = results_json(sweep_dir)
    try:
        written = path.stat().st_mtime
    except OSError:
        return False
    submitted = (meta or {}).get("aggregate_submitted")
    return not isinstance(submitted, (int, float)) or written >= submitted


# ------------------------------------------------------------------------------------ requeue marker


def requeue_marker(submitit_folder: str | Path, job_stem: str) -> Path:
    """``<submitit folder>/<job stem>_requeue_requested.json`` (stem: ``123_4`` for LSF ``123[4]``)."""
    return Path(submitit_folder) / f"{job_stem}{REQUEUE_MARKER_SUFFIX}"


def mark_requeue(submitit_folder: str | Path, job_stem: str, job_id: str) -> None:
    """Written by the job itself, just before it asks the scheduler to requeue it."""
    from pipeline import atomic

    atomic.write_json(requeue_marker(submitit_folder, job_stem),
                      {"job_id": job_id, "time": now_iso(), "ts": time.time()})


def clear_requeue(submitit_folder: str | Path, job_stem: str) -> None:
    """Removed by the job when it starts (again)."""
    requeue_marker(submitit_folder, job_stem).unlink(missing_ok=True)


def requeue_age(submitit_folder: str | Path | None, job_stem: str, now: float | None = None) -> float | None:
    """Seconds since the job asked to be requeued, None without a (readable) marker."""
    if not submitit_folder:
        return None
    try:
        data = json.loads(requeue_marker(submitit_folder, job_stem).read_bytes())
        ts = float(data["ts"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return max(0.0, (time.time() if now is None else now) - ts)


# ------------------------------------------------------------------------------------------------ time


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def iso_ts(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
