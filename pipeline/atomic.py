"""Atomic file writes: a temp file in the same folder, fsync, then ``os.replace``.

A kill at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import faults


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a writer that was killed
        if stale.is_file():
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if faults.planned(f"write_{path.name}"):  # tests: die with the temp file half written
                f.write(data[:len(data) // 2])
                f.flush()
                faults.hit(f"write_{path.name}")
                data = data[len(data) // 2:]
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON line with a single ``write`` call (a reader skips a torn last line)."""
    line = json.dumps(obj, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        if faults.planned(f"write_{Path(path).name}"):  # tests: die with half the line written
            f.write(line[:len(line) // 2])
            f.flush()
            faults.hit(f"write_{Path(path).name}")
            line = line[len(line) // 2:]
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def write_dir(path: str | os.PathLike, fill: Callable[[Path], None]) -> None:
    """Build a directory with ``fill(tmpdir)`` and swap it into place.

    The old directory is renamed aside first and deleted only after the new one is in place, so at
    every instant either ``path`` or ``path.old`` holds a complete copy (``resolve_dir`` finds it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = path.with_name(path.name + ".old")
    try:
        fill(tmp)
        _fsync_tree(tmp)
        _apply_umask(tmp)
        if path.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def resolve_dir(path: str | os.PathLike) -> Path | None:
    """The complete copy of a directory written by ``write_dir``: ``path``, else ``path.old``."""
    path = Path(path)
    if path.is_dir():
        return path
    old = path.with_name(path.name + ".old")
    return old if old.is_dir() else None


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def _apply_umask(root: Path) -> None:
    """mkdtemp makes 0700 folders and some writers 0600 files: give them the user's usual modes."""
    mask = _umask()
    os.chmod(root, 0o777 & ~mask)
    for p in root.rglob("*"):
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
