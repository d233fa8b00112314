"""Storage preflight: what a run or sweep will write, against what its output file system can take.

The estimate, per run (``W`` = the size on disk of the model's weights file(s); for ``model=tiny``
4 bytes x its parameter count; ``T`` = the model's tokenizer files)::

    best    = W + T                       checkpoints/best: save_pretrained weights + tokenizer
    last    = 3 W                         checkpoints/last/state.pt: the weights + AdamW's two moments (2 W)
    small   = SMALL_BYTES, SMALL_FILES    metrics, logs, .hydra, run_info, test predictions, folders
    kept    = best + small (+ last with trainer.keep_last_checkpoint=true)   what a completed run keeps
    extra   = 2 last (1 last when kept)   while running: last, plus a new copy of last beside it
                                          while it is written (atomic swap, pipeline.atomic.write_dir)

and, for a sweep of N runs of which at most P run at once (``hydra.launcher.array_parallelism``, or
``max_parallel`` / the cores for local processes)::

    at least  = sum(kept) + max(extra)              refused (exit 2) when more than is free
    peak      = sum(kept) + the P largest extras    warned (one line) above WARN_SHARE of what is free

Files are counted the same way. "Free" is the smaller of the file system's free space and free inodes
(``statvfs`` of the output folder, or its nearest existing parent) and, on DTU's ``/work3``, what is left
of the user's quota as ``getquota_work3.sh`` (BeeGFS's quota table) reports it. The line names the
numbers and where they came from; docs/storage.md explains them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

#: metrics.json/.jsonl, run_info.json, progress.json, attempts.json, .hydra/, the job logs and the test
#: predictions of one run: a measured tiny run wrote 50 KB; logs of long runs grow, so 1 MB each
SMALL_BYTES = 1_000_000
#: files and folders of one run besides the checkpoints' own files (run dir, .hydra/ and its 3 files, the
#: metrics, info, progress and attempts files, run.log, predictions, checkpoints/{best,last}/, best.json,
#: config.json, the scheduler's log, error log and pickles)
SMALL_FILES = 25
#: warn when the peak passes this share of what is free (others write to the same file system)
WARN_SHARE = 0.5
#: files ``save_pretrained`` writes for a tokenizer (those the model folder has)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "merges.txt", "added_tokens.json", "*.model")
#: quota tools by the folder they report on (DTU: BeeGFS /work3)
QUOTA_TOOLS = {"/work3": "getquota_work3.sh"}


@dataclass(frozen=True)
class RunFootprint:
    """What one run writes (module docstring): bytes and files kept after it completes, and more while it
    runs."""

    label: str  # what the numbers are for, e.g. "minilm best checkpoint"
    kept_bytes: int
    kept_files: int
    extra_bytes: int
    extra_files: int


@dataclass(frozen=True)
class Estimate:
    runs: list[tuple[RunFootprint, int]]  # each footprint and how many runs of the sweep have it
    parallel: int  # runs at once

    @property
    def n_runs(self) -> int:
        return sum(n for _, n in self.runs)

    def kept(self) -> tuple[int, int]:
        return (sum(f.kept_bytes * n for f, n in self.runs), sum(f.kept_files * n for f, n in self.runs))

    def at_least(self) -> tuple[int, int]:
        """What the runs keep, plus one run's extra while it runs: less cannot work."""
        b, f = self.kept()
        return b + max(r.extra_bytes for r, _ in self.runs), f + max(r.extra_files for r, _ in self.runs)

    def peak(self) -> tuple[int, int]:
        """What the runs keep, plus the extras of the ``parallel`` largest runs running at once."""
        b, f = self.kept()
        extras = sorted((r for r, n in self.runs for _ in range(min(n, self.parallel))),
                        key=lambda r: r.extra_bytes, reverse=True)[:self.parallel]
        return b + sum(r.extra_bytes for r in extras), f + sum(r.extra_files for r in extras)


@dataclass(frozen=True)
class Space:
    free_bytes: int
    free_files: int | None  # None: no inode limit
    where: str  # the folder measured
    source: str  # "statvfs" or the quota tool


# ---------------------------------------------------------------------------------------------- estimate


def tiny_weights_bytes(tiny: Any, vocab_size: int, labels: int = 2) -> int:
    """4 bytes per parameter of ``BertForSequenceClassification`` with these sizes (embeddings with 512
    positions, layers, pooler, classifier)."""
    h, i = int(tiny.hidden_size), int(tiny.intermediate_size)
    embeddings = (vocab_size + 512 + 2) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
    return 4 * (embeddings + int(tiny.num_hidden_layers) * layer + (h * h + h) + (h * labels + labels))


def _files(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


def run_footprint(cfg: Any) -> RunFootprint | None:
    """One run's footprint under ``cfg``; None when the model's files are not on this machine (a hub id
    that jobs download with model.download=true)."""
    from pipeline.launch import model_source

    folder = model_source.model_folder(cfg.model)
    if folder is None:
        return None
    tokenizer = _files(folder, TOKENIZER_FILES)
    if cfg.model.get("pretrained", True) or cfg.model.get("path"):
        weights = model_source.weights_files(folder)
        w = sum(p.stat().st_size for p in weights)
        w_files = len(weights)
    else:
        vocab = json.loads((folder / "config.json").read_text()).get("vocab_size", 30522)
        w, w_files = tiny_weights_bytes(cfg.model.tiny, int(vocab)), 1
    best = w + sum(p.stat().st_size for p in tokenizer)
    last = 3 * w
    keep_last = bool(cfg.trainer.get("keep_last_checkpoint", False))
    name = cfg.model.get("name") or "model"
    return RunFootprint(
        label=f"{name} best{' + last' if keep_last else ''} checkpoint",
        kept_bytes=best + SMALL_BYTES + (last if keep_last else 0),
        kept_files=w_files + len(tokenizer) + SMALL_FILES + (1 if keep_last else 0),
        extra_bytes=last * (1 if keep_last else 2), extra_files=2 if keep_last else 3)


def parallel_runs(cfg: Any, n_runs: int) -> int:
    """Runs of the sweep that may run at once: the launcher's array parallelism (or local parallelism),
    and no more than the queue's GPUs allow (``hydra.launcher.queue_gpus`` / ``gpus_per_node``)."""
    from pipeline.launch.local import parallelism

    launcher = (cfg.get("hydra") or {}).get("launcher") or {}
    local = str(launcher.get("_target_", "")).endswith("LocalProcessesLauncher")
    limit = parallelism(launcher)[0] if local else launcher.get("array_parallelism")
    gpus, per_job = launcher.get("queue_gpus"), int(launcher.get("gpus_per_node") or 0)
    if gpus and per_job > 0:
        limit = min(int(limit or n_runs), max(1, int(gpus) // per_job))
    return max(1, min(n_runs, int(limit or n_runs)))


# ------------------------------------------------------------------------------------------------ space


def existing_parent(path: str | Path) -> Path:
    """``path``, or its nearest parent that exists (the folder a sweep will be created in)."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


_UNITS = {"": 1, "B": 1, "BYTE": 1, "BYTES": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "PIB": 2**50}


def _size(text: str) -> int | None:
    """``"49.89 GiB"`` -> bytes; ``"unlimited"`` -> None."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def parse_beegfs_quota(text: str) -> tuple[int | None, int | None] | None:
    """(bytes left, files left) from ``beegfs-ctl --getquota`` output (what ``getquota_work3.sh`` prints):
    rows ``name | id || used | hard || used | hard`` per storage pool; the tightest pool wins. None if no
    row parses; a part is None where it is unlimited."""
    left_bytes: list[int] = []
    left_files: list[int] = []
    found = False
    for line in text.splitlines():
        parts = line.split("||")
        if len(parts) != 3 or "|" not in parts[1] or "|" not in parts[2]:
            continue
        size_used, size_hard = (_size(x) for x in parts[1].split("|")[:2])
        files_used, files_hard = (_size(x) for x in parts[2].split("|")[:2])
        if size_used is None or files_used is None:
            continue  # the header rows
        found = True
        if size_hard:
            left_bytes.append(max(0, size_hard - size_used))
        if files_hard:
            left_files.append(max(0, files_hard - files_used))
    if not found:
        return None
    return (min(left_bytes) if left_bytes else None, min(left_files) if left_files else None)


def quota_left(folder: Path) -> tuple[int | None, int | None, str] | None:
    """(bytes left, files left, tool) where a quota tool covers ``folder`` and answers; else None."""
    for root, tool in QUOTA_TOOLS.items():
        if not (str(folder) + "/").startswith(root + "/") or shutil.which(tool) is None:
            continue
        try:
            out = subprocess.run([tool], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        parsed = parse_beegfs_quota(out)
        return (*parsed, tool) if parsed else None
    return None


def _smaller(a: int | None, b: int | None) -> int | None:
    """The smaller limit; None stands for no limit."""
    return a if b is None else b if a is None else min(a, b)


def free_space(path: str | Path) -> Space:
    """What can still be written under ``path``: ``statvfs``, and the quota where a tool reports one."""
    folder = existing_parent(path)
    st = os.statvfs(folder)
    space = Space(st.f_bavail * st.f_frsize, st.f_favail if st.f_files else None, str(folder), "statvfs")
    quota = quota_left(folder)
    if quota is None:
        return space
    q_bytes, q_files, tool = quota
    return Space(_smaller(space.free_bytes, q_bytes) or 0, _smaller(space.free_files, q_files), space.where,
                 f"{tool} and statvfs")


# ------------------------------------------------------------------------------------------------ check


def _describe(est: Estimate) -> str:
    from pipeline.train.retention import human_bytes

    return " + ".join(f"{n:,} run{'s' * (n != 1)} x {human_bytes(f.kept_bytes)}: {f.label}, metrics and logs"
                      for f, n in est.runs)


def check(est: Estimate, path: str | Path) -> str | None:
    """Raise ``PipelineError`` (one line) when ``est`` cannot fit under ``path``; a warning line when its
    peak passes ``WARN_SHARE`` of what is free; None when it fits easily."""
    from pipeline.train.retention import human_bytes

    space = free_space(path)
    sweep = est.n_runs > 1
    files = f" and {space.free_files:,} files" if space.free_files is not None else ""
    where = f"{space.where} has {human_bytes(space.free_bytes)}{files} free ({space.source})"
    extra = human_bytes(max(f.extra_bytes for f, _ in est.runs))
    need_b, need_f = est.at_least()
    if need_b > space.free_bytes or (space.free_files is not None and need_f > space.free_files):
        fix = ("free space there, sweep fewer runs, or point PIPELINE_OUTPUT_ROOT (or hydra.sweep.dir)" if sweep
               else "free space there, or point PIPELINE_OUTPUT_ROOT (or hydra.run.dir)")
        raise PipelineError(
            f"this {'sweep' if sweep else 'run'} needs at least {human_bytes(need_b)} in {need_f:,} files "
            f"({_describe(est)}; {extra} more while a run writes its resume checkpoint), but {where}: {fix} "
            f"at a larger file system (docs/storage.md)")
    peak_b, peak_f = est.peak()
    if peak_b > WARN_SHARE * space.free_bytes or (
            space.free_files is not None and peak_f > WARN_SHARE * space.free_files):
        running = f"up to {est.parallel:,} running at once, each" if sweep else "while running"
        return (f"this {'sweep' if sweep else 'run'} writes about {human_bytes(peak_b)} in {peak_f:,} files at "
                f"its peak ({_describe(est)}; {running} {extra} more for its resume checkpoint), over "
                f"{WARN_SHARE:.0%} of what is free: {where}; a job that runs out of space fails (docs/storage.md)")
    return None
