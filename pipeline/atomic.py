"""Atomic file writes: a temp file in the same folder, fsync, then ``os.replace``.

A kill at any moment leaves either the old file or the new one, never half of one. Several processes may
write the same path at once (the array elements of a sweep share the token cache): each writes its own
temp file, named ``.<name>.<host>.<pid>.<random>.tmp``, and the last ``os.replace`` wins. A writer deletes
only temp files that are provably dead: left by a process of this host that no longer exists, or untouched
for ``STALE_AFTER_S`` (a writer on another node of a shared file system that was killed).

A write refused for lack of space or quota (``ENOSPC``, ``EDQUOT``) raises :class:`DiskFull` naming the
file or folder it was writing, after removing its temp copy: what was there before is intact.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import faults

#: a temp file or folder untouched this long is dead whoever wrote it (no write stalls for a day)
STALE_AFTER_S = 24 * 3600
#: a write that fails with these ran out of space (ENOSPC) or quota (EDQUOT; BeeGFS and NFS quotas)
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(OSError):
    """A write failed for lack of free space or quota; ``filename`` is the file or folder being written.
    Whatever was there before is intact (the half-written temp copy has been removed)."""


def is_disk_full(error: BaseException | None) -> bool:
    """ENOSPC or EDQUOT anywhere in the exception's chain: as an ``OSError``, or as the OS's own words in the
    message of a library that dropped the errno (safetensors' Rust writer, torch's zip writer)."""
    texts = tuple(os.strerror(n) for n in DISK_FULL_ERRNOS)
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(error) for text in texts):
            return True
        error = error.__cause__ or error.__context__
    return False


def raise_disk_full(error: BaseException, path: str | os.PathLike) -> None:
    """Raise :class:`DiskFull` for ``path`` if ``error`` is a full disk or quota; else return."""
    if is_disk_full(error) and not isinstance(error, DiskFull):
        code = getattr(error, "errno", None)
        code = code if code in DISK_FULL_ERRNOS else errno.ENOSPC
        raise DiskFull(code, os.strerror(code), str(path)) from error


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    except OSError as e:
        raise_disk_full(e, path)
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_half_then_fault(f, data, path))  # tests: die with the temp file half written
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        raise_disk_full(e, path)
        raise


def _half_then_fault(f: Any, data: Any, path: Path) -> Any:
    """Fault injection (``PIPELINE_FAULTS=write_<name>:n``): write half of ``data`` and die; else all of it.

    Returns what is left to write."""
    point = f"write_{path.name}"
    if not faults.planned(point):
        return data
    f.write(data[:len(data) // 2])
    f.flush()
    faults.hit(point)
    return data[len(data) // 2:]


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON line. A write that fails (a full disk) is cut off again, so the file never holds
    part of a line from it; a kill mid-write can leave a torn last line, which readers skip."""
    path = Path(path)
    line = (json.dumps(obj, default=str) + "\n").encode("utf-8")
    with open(path, "ab", buffering=0) as f:
        start = f.seek(0, os.SEEK_END)
        try:
            rest = _half_then_fault(f, line, path)  # tests: die with half the line written
            while rest:
                rest = rest[f.write(rest):]
            os.fsync(f.fileno())
        except BaseException as e:
            with contextlib.suppress(OSError):
                f.truncate(start)
            raise_disk_full(e, path)
            raise


def write_dir(path: str | os.PathLike, fill: Callable[[Path], None]) -> None:
    """Build a directory with ``fill(tmpdir)`` and swap it into place.

    The old directory is renamed aside first and deleted only after the new one is in place, so at
    every instant either ``path`` or ``path.old`` holds a complete copy (``resolve_dir`` finds it).
    Concurrent writers of one path each put a complete copy in place; the last one wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
    except OSError as e:
        raise_disk_full(e, path)
        raise
    old = aside(path)
    try:
        fill(tmp)
        _fsync_tree(tmp)
        _apply_umask(tmp)
        _swap_in(tmp, path, old)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)  # the space the half-built copy took is free again
        raise_disk_full(e, path)
        raise
    _discard(old)


def aside(path: str | os.PathLike) -> Path:
    """Where ``write_dir`` keeps the previous copy of ``path`` while it swaps the new one in."""
    path = Path(path)
    return path.with_name(path.name + ".old")


def _swap_in(tmp: Path, path: Path, old: Path, tries: int = 1000) -> None:
    """``os.replace(tmp, path)``; a ``path`` already there goes to ``old`` first (whose previous copy is
    discarded). Each step is one rename; one that another writer beat us to is simply tried again."""
    for _ in range(tries):
        try:
            os.replace(tmp, path)  # works when path is absent (or an empty folder)
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if old.exists() and path.exists():
            _discard(old)
        try:
            os.replace(path, old)
        except FileNotFoundError:
            pass  # another writer moved it aside already
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    raise OSError(errno.EBUSY, f"could not put {path} in place: other writers kept replacing it", str(path))


def _discard(folder: Path) -> None:
    """Delete a folder after renaming it to a temp name of ours (a rename is atomic, a delete is not)."""
    trash = folder.with_name(f"{_temp_prefix(folder)}{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.replace(folder, trash)
    except OSError:
        return  # gone already, or another writer is using the name now
    shutil.rmtree(trash, ignore_errors=True)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{HOST}.{os.getpid()}."


#: this host's short name, part of every temp name (a pid means something only on its own host)
HOST = socket.gethostname().split(".")[0].replace(".", "_") or "host"


def remove_dead_temps(path: str | os.PathLike) -> None:
    """Delete the temp files/folders of ``path`` whose writer is provably gone (see the module docstring).
    A live writer's temp file is never touched: deleting it would make that writer fail."""
    path = Path(path)
    now = time.time()
    for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        parts = temp.name[len(path.name) + 2:].split(".")
        mine = len(parts) == 4 and parts[0] == HOST and parts[1].isdigit()
        try:
            idle = now - temp.lstat().st_mtime
        except OSError:
            continue
        if (mine and not pid_alive(int(parts[1]))) or idle > STALE_AFTER_S:
            if temp.is_dir():
                shutil.rmtree(temp, ignore_errors=True)
            else:
                temp.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (ours, or another user's)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve_dir(path: str | os.PathLike) -> Path | None:
    """The complete copy of a directory written by ``write_dir``: ``path``, else ``path.old``."""
    path = Path(path)
    if path.is_dir():
        return path
    old = aside(path)
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
