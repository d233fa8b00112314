"""The output file system fills up or turns read-only mid-run: a clear error, earlier checkpoints intact.

Uses real tmpfs mounts (root only; skipped elsewhere with the reason). The disk fills up while the run
trains (something else writes a ballast file right after its first checkpoint: the storage preflight passed
at the start, as it would on a shared file system): the run ends ``failed`` with ``disk full at PATH (quota
or free space)`` and the command that resumes it; once space is freed, that command (``python run.py
hydra.run.dir=...``, or ``pipeline rerun SWEEP --failed``) resumes from the checkpoint the failed write left
whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY, read_json, run_py, train_env

STEPS = ["trainer.eval_every_steps=10", "trainer.checkpoint_every_steps=10"]


def _mount_tmpfs(mnt: Path, size: str) -> None:
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.decode().strip()}")


@pytest.fixture
def small_fs(tmp_path):
    """A tmpfs with room for the tiny model's run (the storage preflight asks for ~60 MB)."""
    mnt = tmp_path / "mnt"
    _mount_tmpfs(mnt, "100m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def full_fs(tmp_path):
    """A 100 MB tmpfs, empty at the start (the storage preflight passes); :func:`_fill_after_first_checkpoint`
    then leaves 10 MB free beside the tiny model's first checkpoints (checkpoints/last ~25 MB, best ~9 MB): not
    room for a second copy of last. Deleting the ballast is "freeing space"."""
    mnt = tmp_path / "mnt"
    _mount_tmpfs(mnt, "100m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


#: each pass after a checkpoint waits 2 s: the window in which the ballast is written before training goes on
SLOW_AFTER_CHECKPOINT = {"PIPELINE_FAULTS": "after_checkpoint:sleep=2"}


def _fill_after_first_checkpoint(argv: list[str], env: dict[str, str], run_dir: Path,
                                 mnt: Path) -> subprocess.CompletedProcess:
    """Run ``argv``; once ``run_dir`` holds its first checkpoint, fill the file system up to 10 MB free."""
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (run_dir / "checkpoints" / "last").is_dir():
        time.sleep(0.02)
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    with open(mnt / "ballast", "wb") as f:
        f.write(b"\0" * max(0, free - (10 << 20)))
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _load_step(run_dir: Path) -> int:
    from pipeline.train.checkpoint import load_last

    return load_last(run_dir)["counters"]["step"]


def _assert_failed_whole(run_dir: Path, line: str) -> None:
    """metrics.json says failed with the disk-full line; checkpoints/last is the step-10 one, whole; no
    half-written copy, torn JSON or partial metrics.jsonl line is left."""
    from pipeline.train import attempts

    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "failed" and m["error"] == line
    assert _load_step(run_dir) == 10  # the first checkpoint survived the failed second one
    assert not list((run_dir / "checkpoints").glob(".*.tmp")) and not list(run_dir.glob(".*.tmp"))
    for path in run_dir.glob("*.json"):
        json.loads(path.read_text())
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "val"][:2] == [10, 20]
    assert attempts.read(run_dir)[-1]["status"] == "failed"


def test_disk_full_is_one_line_keeps_the_checkpoint_and_resumes_once_space_is_freed(tmp_path, full_fs):
    run_dir = full_fs / "run"
    env = train_env(tmp_path)
    r = _fill_after_first_checkpoint([sys.executable, str(ROOT / "run.py"), *TINY, *STEPS,
                                      f"hydra.run.dir={run_dir}"], {**env, **SLOW_AFTER_CHECKPOINT}, run_dir, full_fs)
    assert r.returncode == 2, r.stderr[-2000:]
    (line,) = r.stderr.strip().splitlines()
    assert line == (f"error: disk full at {run_dir}/checkpoints/last (quota or free space): checkpoints/last is "
                    "intact; free space there or raise the quota (or point PIPELINE_OUTPUT_ROOT elsewhere), then "
                    f"`python run.py hydra.run.dir={run_dir}` resumes it")
    _assert_failed_whole(run_dir, line.removeprefix("error: "))

    (full_fs / "ballast").unlink()  # space freed
    resumed = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={run_dir}", env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from checkpoints/last at step 10" in (run_dir / "run.log").read_text()
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "completed" and m["steps"] == 80 and m["attempts"] == 2


def test_disk_full_in_a_sweep_is_resumed_by_rerun_failed(tmp_path, full_fs):
    sweep = full_fs / "sweep"
    run_dir = sweep / "0"
    env = train_env(tmp_path)
    r = _fill_after_first_checkpoint([sys.executable, str(ROOT / "run.py"), "-m", *TINY, *STEPS,
                                      f"hydra.sweep.dir={sweep}"], {**env, **SLOW_AFTER_CHECKPOINT}, run_dir, full_fs)
    assert r.returncode != 0
    line = read_json(run_dir / "metrics.json")["error"]
    assert line.startswith(f"disk full at {run_dir}/checkpoints/last (quota or free space): ")
    assert line.endswith(f"then `pipeline rerun {sweep} --failed` resumes it")
    _assert_failed_whole(run_dir, line)

    (full_fs / "ballast").unlink()  # space freed
    rerun = subprocess.run([sys.executable, "-m", "pipeline.cli", "rerun", str(sweep), "--failed"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "resumed from checkpoints/last at step 10" in (run_dir / "run.log").read_text()
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == "completed" and m["steps"] == 80 and m["attempts"] == 2


def test_read_only_mid_run_keeps_checkpoint(tmp_path, small_fs):
    run_dir = small_fs / "run"
    env = train_env(tmp_path, PIPELINE_OUTPUT_ROOT=str(tmp_path / "outputs"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *TINY, *STEPS, "trainer.epochs=30",
                             f"hydra.run.dir={run_dir}"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "checkpoints" / "last").is_dir():
        time.sleep(0.05)
    # a read-only view of the run dir from now on (open files stay writable, as after a real remount)
    subprocess.run(["mount", "--bind", str(run_dir), str(run_dir)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(run_dir)], check=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        subprocess.run(["umount", str(run_dir)], check=False)
    assert proc.returncode != 0
    assert "Read-only file system" in err and "intact" in err, err[-2000:]
    assert len(err.strip().splitlines()) == 1, err
    assert _load_step(run_dir) >= 10
