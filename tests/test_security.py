"""Secrets never land on disk; files and folders follow the user's umask, never world-writable."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, TINY, train_env

SECRETS = {"WANDB_API_KEY": "wandb-secret-3f9a1c77", "HF_TOKEN": "hf_secret_8d2e4b19",
           "HUGGING_FACE_HUB_TOKEN": "hf_secret_8d2e4b19"}


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def assert_no_secret(root: Path) -> None:
    for p in _all_files(root):
        data = p.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in data, f"{name} leaked into {p}"


def assert_umask_modes(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert not mode & stat.S_IWOTH, f"{p} is world-writable ({oct(mode)})"


def test_local_run_writes_no_secret_and_respects_umask(tmp_path):
    run_dir = tmp_path / "run"
    env = train_env(tmp_path, **SECRETS)
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), *TINY, "trainer.epochs=1", f"hydra.run.dir={run_dir}"],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: os.umask(0o022))
    assert r.returncode == 0, r.stderr
    assert_no_secret(run_dir)
    assert_no_secret(tmp_path / "outputs")
    assert all(v not in r.stdout + r.stderr for v in SECRETS.values())
    assert_umask_modes(run_dir)
    assert stat.S_IMODE((run_dir / "checkpoints" / "best").stat().st_mode) == 0o755
