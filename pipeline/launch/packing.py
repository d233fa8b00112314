"""Several sweep points per scheduler job: ``hydra.launcher.runs_per_job=k``.

One scheduler job (array element, local process) runs k sweep points one after another in ONE process,
so Python's imports, the tokenizer, the pretrained weights file and the token cache are loaded once per
job (:mod:`pipeline.models.warm`) instead of once per run. Each point keeps its own run directory, resume and
result: a :class:`PackedJob` skips points whose ``metrics.json`` says ``completed`` (so a requeued job
goes straight to the point it was in, which resumes from its ``checkpoints/last``), and a point that
fails does not stop the points after it.

The manifest (``sweep.json``) says which points each scheduler job runs: ``runs_per_job`` and
``packs`` (``[{"job_id": ..., "job_nums": [...]}]``); every point's own entry under ``jobs`` carries its
scheduler job's id, so ``pipeline status/logs/results`` keep working per run. ``pipeline rerun`` takes a
failed point out of its pack (:func:`unpack_call`) and resubmits it alone.

``timeout_min`` applies to the whole job: :func:`check_time` multiplies k by the expected run time
(``hydra.launcher.expected_run_min``, else the longest wall time of a completed run already in the sweep
directory) and refuses a k whose estimate exceeds the queue's limit, before anything is submitted.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import rundir
from pipeline.errors import PipelineError


class PackError(PipelineError, ValueError):
    """A runs_per_job setting that cannot work; one line for the user."""


def runs_per_job(params: Any) -> int:
    """``hydra.launcher.runs_per_job`` as a checked int (1 when unset)."""
    raw = params.get("runs_per_job", 1) if hasattr(params, "get") else 1
    try:
        k = int(1 if raw is None else raw)
    except (TypeError, ValueError):
        k = 0
    if k < 1:
        raise PackError(f"hydra.launcher.runs_per_job={raw!r}: must be a whole number >= 1 "
                        "(1 = one sweep point per scheduler job)")
    return k


def chunks(n: int, k: int) -> list[list[int]]:
    """Indices 0..n-1 in consecutive groups of k (the last one shorter): [[0,1,2],[3,4,5],[6]]."""
    return [list(range(i, min(i + k, n))) for i in range(0, n, k)]


# ------------------------------------------------------------------------------------------ the job


class PackedJob:
    """The callable a scheduler job runs: its points in order, skipping completed ones; checkpointable."""

    def __init__(self, points: Sequence[Any], run_dirs: Sequence[str | None]) -> None:
        self.points = list(points)  # SweepJob: callables taking ``started``, with .overrides and .job_num
        self.run_dirs = list(run_dirs)

    @property
    def job_nums(self) -> list[int]:
        return [int(p.job_num) for p in self.points]

    def __call__(self) -> list[Any]:
        """Each point in turn, called with ``started`` (when it began: its start-up is measured from there,
        not from the process start)."""
        import sys

        results: list[Any] = []
        first_error: BaseException | None = None
        for point, run_dir in zip(self.points, self.run_dirs, strict=True):
            if completed(run_dir):
                print(f"packed job: run {point.job_num} already completed; skipped", file=sys.stderr, flush=True)
                results.append(_skipped(point, run_dir))
                continue
            try:
                results.append(point(started=time.time()))
            except Exception as e:  # noqa: BLE001 - one failed point does not stop the others
                print(f"packed job: run {point.job_num} failed ({e}); going on with the next run", file=sys.stderr,
                      flush=True)
                first_error = first_error or e
                results.append(None)
        if first_error is not None:
            raise first_error
        return results

    def checkpoint(self) -> Any:
        """Requeue the whole pack: completed points are skipped, the current one resumes."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)

    def __repr__(self) -> str:
        return f"PackedJob(runs {self.job_nums})"


def completed(run_dir: str | Path | None) -> bool:
    if not run_dir:
        return False
    try:
        return json.loads(rundir.metrics_json(Path(run_dir)).read_bytes()).get("status") == rundir.COMPLETED
    except (OSError, ValueError, AttributeError):
        return False


def _skipped(point: Any, run_dir: str | None) -> Any:
    from hydra.core.utils import JobReturn, JobStatus

    return JobReturn(overrides=list(point.overrides), working_dir=run_dir, status=JobStatus.COMPLETED,
                     _return_value=None)


def pack(points: Sequence[Any], run_dirs: Sequence[str | None], k: int) -> list[PackedJob]:
    """The scheduler jobs of a sweep: k points each, in sweep order."""
    return [PackedJob([points[i] for i in group], [run_dirs[i] for i in group])
            for group in chunks(len(points), k)]


def flatten(results: Sequence[Sequence[Any]]) -> list[Any]:
    return [r for group in results for r in group]


def unpack_call(call: Any, job_num: int) -> Any:
    """A pickled job call narrowed to one point: a PackedJob's point ``job_num`` as the call an unpacked
    sweep would have pickled (so ``pipeline rerun`` resubmits only that point); any other call unchanged."""
    from submitit.core.utils import DelayedSubmission

    fn = call.function
    if not isinstance(fn, PackedJob):
        return call
    for point in fn.points:
        if int(point.job_num) == int(job_num):
            return DelayedSubmission(point)
    raise ValueError(f"run {job_num} is not in the pickled packed job {fn!r}")


# ------------------------------------------------------------------------------------------ manifest


def manifest_fields(k: int, groups: Sequence[Sequence[int]], job_ids: Sequence[str | None],
                    first_num: int) -> dict[str, Any]:
    """``runs_per_job`` and ``packs`` for ``sweep.json`` (group indices are relative to first_num)."""
    return {"runs_per_job": k,
            "packs": [{"job_id": None if j is None else str(j), "job_nums": [first_num + i for i in g]}
                      for g, j in zip(groups, job_ids, strict=True)]}


def merge_packs(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """A later batch of the same sweep adds its packs to those already in the manifest."""
    if old and old.get("packs") and "packs" in new:
        known = {n for p in new["packs"] for n in p["job_nums"]}
        new["packs"] = [p for p in old["packs"] if not known & set(p["job_nums"])] + new["packs"]


# ------------------------------------------------------------------------------------------ time


def expected_run_min(params: Any, sweep_dir: Path) -> tuple[float | None, str]:
    """The expected minutes of one run and where that figure comes from.

    ``hydra.launcher.expected_run_min`` when set; else the longest ``wall_time_s`` of a completed run
    already in this sweep directory (a later batch, a resubmission); else none (no check)."""
    given = params.get("expected_run_min") if hasattr(params, "get") else None
    if given is not None:
        return float(given), "hydra.launcher.expected_run_min"
    walls = []
    for path in sorted(Path(sweep_dir).glob(f"*/{rundir.METRICS_JSON}"))[:1000]:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if data.get("status") == "completed" and isinstance(data.get("wall_time_s"), (int, float)):
            walls.append(float(data["wall_time_s"]))
    if walls:
        return max(walls) / 60.0, f"the longest of {len(walls)} completed run(s) in this sweep"
    return None, "no estimate"


def check_time(k: int, per_run_min: float | None, source: str, limit_min: float | None,
               limit_name: str) -> str:
    """One line saying what k x the expected run time comes to; PackError when it exceeds the limit."""
    if per_run_min is None:
        return (f"runs_per_job={k}: no run-time estimate (set hydra.launcher.expected_run_min to check "
                f"k x run time against {limit_name})")
    total = math.ceil(k * per_run_min)
    line = f"runs_per_job={k} x {per_run_min:.1f} min expected per run ({source}) = {total} min per job"
    if limit_min is not None:
        line += f" ({limit_name} {int(limit_min)} min)"
        if total > limit_min:
            fits = max(1, int(limit_min // per_run_min)) if per_run_min > 0 else 1
            raise PackError(f"{line}: too long; use hydra.launcher.runs_per_job={fits} or fewer")
    return line


def describe(k: int, n_points: int) -> str:
    jobs = math.ceil(n_points / k)
    last = n_points - (jobs - 1) * k
    tail = f", the last one {last}" if last != k else ""
    return f"{n_points} runs packed {k} per job into {jobs} scheduler jobs{tail}"

