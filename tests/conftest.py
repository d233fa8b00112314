"""Shared fixtures: data location, a subprocess runner for run.py, and the scheduler test doubles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PIPELINE_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()
os.environ.setdefault("PIPELINE_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

try:  # the fake LSF and the real-Slurm fixtures live beside the tests that use them
    from tests.fake_lsf.fixture import fake_lsf  # noqa: F401
except ImportError:  # pragma: no cover - only while those modules are being written
    pass
try:
    from tests.slurm_fixture import slurm_cluster  # noqa: F401
except ImportError:  # pragma: no cover
    pass

# A tiny, fast training job on a 200-row BBC sample: seconds per run on 2 cores.
TINY = [
    "model=tiny", "data.max_rows=200", "trainer.max_length=64", "trainer.batch_size=8", "trainer.epochs=4",
    "trainer.lr=3e-3", "trainer.log_every_steps=5",
]


def train_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FAKE_LSF"))}
    env.update({
        "PIPELINE_DATA_DIR": str(SHARED_DATA), "PIPELINE_OUTPUT_ROOT": str(tmp_path / "outputs"),
        "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
        "PIPELINE_PROCESSED_DIR": str(tmp_path / "processed"),
    })
    env.update(extra)
    return env


def run_py(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None, timeout: float = 300,
           cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python run.py <overrides>`` in a subprocess with outputs under tmp_path."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd,
                          env=env or train_env(tmp_path), capture_output=True, text=True, timeout=timeout)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "bbc_news.csv.gz").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}: set PIPELINE_DATA_DIR")
    return SHARED_DATA
