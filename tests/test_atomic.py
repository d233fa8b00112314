"""Atomic writes leave the old or the new file, never half of one."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pipeline import atomic


def test_write_json_replaces_whole_file(tmp_path):
    p = tmp_path / "m.json"
    atomic.write_json(p, {"a": 1})
    atomic.write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [x.name for x in tmp_path.iterdir()] == ["m.json"]


def test_failed_write_dir_keeps_previous_copy(tmp_path):
    target = tmp_path / "ckpt"
    atomic.write_dir(target, lambda d: (d / "f").write_text("one"))

    def boom(d):
        (d / "f").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_dir(target, boom)
    assert (atomic.resolve_dir(target) / "f").read_text() == "one"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ckpt"]


def test_resolve_dir_falls_back_to_old_copy(tmp_path):
    (tmp_path / "ckpt.old").mkdir()
    assert atomic.resolve_dir(tmp_path / "ckpt") == tmp_path / "ckpt.old"
    assert atomic.resolve_dir(tmp_path / "none") is None


def test_modes_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_dir(tmp_path / "d", lambda d: (d / "f").write_text("x"))
        atomic.write_text(tmp_path / "t", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "d" / "f").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "t").stat().st_mode) == 0o644


# ------------------------------------------------------------------------------ concurrent writers

WRITERS, WRITES, SIZE = 4, 150, 64 * 1024


def _payload(writer: int, n: int) -> bytes:
    """A file that says whether it is whole: a header with its own length, then one repeated byte."""
    body = bytes([65 + writer]) * (SIZE + n)
    return f"{writer} {n} {len(body)}\n".encode() + body


def _whole(data: bytes) -> bool:
    header, _, body = data.partition(b"\n")
    writer, _, size = header.split()
    return len(body) == int(size) and body == bytes([65 + int(writer)]) * int(size)


def _write_many(path: str, writer: int, errors) -> None:
    try:
        for n in range(WRITES):
            atomic.write_bytes(path, _payload(writer, n))
    except BaseException as e:  # noqa: BLE001 - reported to the test
        errors.put(f"writer {writer}: {type(e).__name__}: {e}")


def _write_dirs(path: str, writer: int, errors) -> None:
    def fill(d):
        (d / "a.bin").write_bytes(_payload(writer, 0))
        (d / "b.bin").write_bytes(_payload(writer, 1))

    try:
        for _ in range(WRITES // 3):
            atomic.write_dir(path, fill)
    except BaseException as e:  # noqa: BLE001
        errors.put(f"writer {writer}: {type(e).__name__}: {e}")


def _read_many(path: str, stop, errors, reads) -> None:
    """Read the file (or each file of the folder ``write_dir`` made) until told to stop."""
    import pathlib

    count = 0
    while not stop.is_set():
        try:
            folder = atomic.resolve_dir(path)
            files = [folder / "a.bin", folder / "b.bin"] if folder else [pathlib.Path(path)]
            datas = [f.read_bytes() for f in files]
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue  # not written yet, or the folder was swapped out between resolve and read: retry
        count += 1
        if not all(_whole(d) for d in datas):
            errors.put(f"reader: a partial file ({[len(d) for d in datas]} bytes)")
            return
    reads.put(count)


def _run_processes(target, path, tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    errors, reads, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    readers = [ctx.Process(target=_read_many, args=(str(path), stop, errors, reads)) for _ in range(2)]
    writers = [ctx.Process(target=target, args=(str(path), w, errors)) for w in range(WRITERS)]
    for p in readers + writers:
        p.start()
    for p in writers:
        p.join(timeout=300)
    stop.set()
    for p in readers:
        p.join(timeout=60)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert all(p.exitcode == 0 for p in readers + writers)
    return found, [reads.get(timeout=5) for _ in readers]


def test_concurrent_writers_of_one_file_never_break_each_other(tmp_path):
    """Four processes write one path 150 times each while two read it: no writer fails (none deletes
    another's live temp file), every read finds a whole file, and no temp file is left behind."""
    path = tmp_path / "cache.npz"
    errors, reads = _run_processes(_write_many, path, tmp_path)
    assert errors == []
    assert sum(reads) > 0
    assert _whole(path.read_bytes())
    assert [p.name for p in tmp_path.iterdir()] == ["cache.npz"]


def test_concurrent_writers_of_one_folder_each_install_a_whole_copy(tmp_path):
    path = tmp_path / "last"
    errors, reads = _run_processes(_write_dirs, path, tmp_path)
    assert errors == []
    assert sum(reads) > 0
    folder = atomic.resolve_dir(path)
    assert _whole((folder / "a.bin").read_bytes()) and _whole((folder / "b.bin").read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_only_dead_writers_temp_files_are_removed(tmp_path):
    """A temp file of a live process (this one, or another host's recent one) stays; one of a process
    that no longer exists, or one untouched for a day, goes."""
    gone = _dead_pid()
    host = atomic.HOST
    live = tmp_path / f".m.json.{host}.{os.getpid()}.abc123.tmp"
    other_host = tmp_path / ".m.json.elsewhere.1.abc123.tmp"
    dead = tmp_path / f".m.json.{host}.{gone}.abc123.tmp"
    ancient = tmp_path / ".m.json.elsewhere.2.abc123.tmp"
    for p in (live, other_host, dead, ancient):
        p.write_text("x")
    day_ago = os.stat(ancient).st_mtime - atomic.STALE_AFTER_S - 60
    os.utime(ancient, (day_ago, day_ago))
    atomic.write_json(tmp_path / "m.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.json", live.name, other_host.name])


def _dead_pid() -> int:
    import subprocess

    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid
