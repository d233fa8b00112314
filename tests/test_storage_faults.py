"""The output file system fills up or turns read-only mid-run: a clear error, earlier checkpoints intact.

Uses a real tmpfs mount (root only; skipped elsewhere with the reason).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY, run_py, train_env

STEPS = ["trainer.eval_every_steps=10", "trainer.checkpoint_every_steps=10"]


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    # tiny model: checkpoints/last ~25 MB, best ~9 MB; 45 MB holds the first pair but not a second copy of last
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=45m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _load_step(run_dir: Path) -> int:
    from pipeline.train.checkpoint import load_last

    return load_last(run_dir)["counters"]["step"]


def test_disk_full_keeps_previous_checkpoint(tmp_path, small_fs):
    run_dir = small_fs / "run"
    env = train_env(tmp_path, PIPELINE_OUTPUT_ROOT=str(tmp_path / "outputs"))
    r = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={run_dir}", env=env)
    assert r.returncode != 0
    assert "No space left on device" in r.stderr and "previous checkpoint is intact" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _load_step(run_dir) == 10  # the first checkpoint survived the failed second one
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # no half-written copy left behind


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
