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
