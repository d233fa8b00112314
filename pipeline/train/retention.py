"""Checkpoint retention and disk use: what a finished sweep keeps, and what ``pipeline clean`` removes.

A completed run needs only ``checkpoints/best`` (the model, safetensors) and its metrics: ``fit`` calls
:func:`after_completion`, which removes ``checkpoints/last`` (optimizer state included, ~2x the model)
unless ``trainer.keep_last_checkpoint=true``. It runs after ``metrics.json`` says ``completed``, so a kill
in between leaves a completed run, never a run that cannot resume.

``pipeline clean SWEEP`` goes further: every completed run except the best ``--keep`` ones (by a metric)
loses its whole ``checkpoints/`` folder. Runs that are not completed keep theirs (a failed run resumes from
``checkpoints/last``; a running one is still writing). It lists what it would remove first and removes
only with ``--yes``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import atomic, rundir


def remove_dir(path: Path) -> None:
    """Rename aside, then delete: a kill mid-delete leaves a hidden folder, never a half ``last``."""
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.removing")
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def after_completion(run_dir: Path, keep_last: bool) -> None:
    """Drop the resume state of a completed run (and leftovers of interrupted checkpoint writes)."""
    best, last = rundir.checkpoint_dir(run_dir, rundir.BEST_CHECKPOINT), rundir.checkpoint_dir(run_dir)
    folder = best.parent
    leftovers = [*folder.glob(".*.tmp"), *folder.glob(".*.removing"), atomic.aside(best)]
    if not keep_last:
        leftovers += [last, atomic.aside(last)]
    for path in leftovers:
        if path.is_dir() and (path != atomic.aside(best) or best.is_dir()):
            remove_dir(path)


def after_pruning(run_dir: Path) -> None:
    """A pruned run keeps no weights: its whole ``checkpoints/`` goes (``metrics.json`` says pruned first)."""
    remove_dir(Path(run_dir) / rundir.CHECKPOINTS_DIR)


def dir_size(path: Path) -> int:
    """Bytes held by the files under ``path`` (0 if absent); symlinks are not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # removed while we walked
    return total


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


@dataclass
class Removal:
    run_label: str
    path: Path
    bytes: int
    why: str


def clean_plan(runs: list[Any], metric: str, mode: str | None, keep: int) -> tuple[list[Removal], list[Any]]:
    """(what to remove, the runs kept): checkpoints of completed runs outside the best ``keep`` by metric."""
    from pipeline.results import results as R

    mode = mode or R.default_mode(metric)
    scored = [r for r in runs if r.state == R.COMPLETED and metric in r.metrics and r.run_dir is not None]
    scored.sort(key=lambda r: r.metrics[metric], reverse=mode == "max")
    kept = scored[:max(keep, 0)]
    plan: list[Removal] = []
    for run in runs:
        if run.run_dir is None or run.state != R.COMPLETED:
            continue
        folder = run.run_dir / rundir.CHECKPOINTS_DIR
        if run in kept:
            last = rundir.checkpoint_dir(run.run_dir)
            for extra in (last, atomic.aside(last)):  # the best runs keep their model, not their resume state
                if extra.is_dir():
                    plan.append(Removal(run.label, extra, dir_size(extra), "resume state"))
        elif folder.is_dir():
            value = f"{run.metrics[metric]:.4f}" if metric in run.metrics else "n/a"
            plan.append(Removal(run.label, folder, dir_size(folder), f"not among the best {keep} "
                                                                    f"({metric}={value})"))
    return plan, kept


def apply(plan: list[Removal]) -> int:
    """Remove what the plan lists; the bytes freed."""
    freed = 0
    for item in plan:
        if item.path.exists():
            remove_dir(item.path)
            freed += item.bytes
    return freed


def sweep_usage(runs: list[Any]) -> tuple[int, int]:
    """(bytes of all run directories, bytes of their checkpoints folders)."""
    total = ckpt = 0
    for run in runs:
        if run.run_dir is not None and run.run_dir.is_dir():
            total += dir_size(run.run_dir)
            ckpt += dir_size(run.run_dir / rundir.CHECKPOINTS_DIR)
    return total, ckpt


def disk_line(runs: list[Any]) -> str:
    """``disk: 697.0 MB in 4 runs (checkpoints 690.1 MB)`` for under the status and results tables."""
    total, ckpt = sweep_usage(runs)
    n = sum(1 for r in runs if r.run_dir is not None)
    return f"disk: {human_bytes(total)} in {n} run{'s' if n != 1 else ''} (checkpoints {human_bytes(ckpt)})"
