"""Fixtures for the LSF backend and launcher tests.

- ``lsf_env``: the fake LSF (``tests/fake_lsf``) on PATH, fast timing, the repository on PYTHONPATH
  (subprocesses such as Hydra's integration tests must find ``hydra_plugins.pipeline_launchers``), and
  the configs of the test app; the shared job watcher is reset around each test.
- ``app``: runs the trivial Hydra app ``tests/lsf/app/my_app.py`` in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).resolve().parent / "app" / "my_app.py"
GOLDEN = Path(__file__).resolve().parent / "golden"


def _pythonpath() -> str:
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(ROOT)]
    return os.pathsep.join([str(ROOT), *parts])


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", _pythonpath())
    monkeypatch.setenv("PIPELINE_REPO_CONFIGS", str(ROOT / "configs"))
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")


@pytest.fixture
def watcher():
    """The watcher LsfJob instances share, reset and made quick for the test."""
    from pipeline.launch.submitit_lsf.lsf import LsfJob

    w = LsfJob.watcher
    saved = (w.dialect, w.max_failures, w.failure_backoff_s, w.missing_polls, w._delay_s)
    w.clear()
    w._registered.clear()
    w._result_files.clear()
    w.failure_backoff_s = 0.2
    yield w
    w.clear()
    w._registered.clear()
    w._result_files.clear()
    w.dialect, w.max_failures, w.failure_backoff_s, w.missing_polls, w._delay_s = saved


@pytest.fixture
def lsf(fake_lsf, watcher, tmp_path):  # fake_lsf: tests/fake_lsf/fixture.py, a plugin of tests/conftest.py
    """The fake LSF with the job watcher reset; ``lsf.set_dialect('openlava')`` switches dialect."""
    return fake_lsf


def run_app(tmp_path: Path, *overrides: str, timeout: float = 120, env: dict | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python tests/lsf/app/my_app.py -m <overrides>`` with the sweep in ``tmp_path/sweep``."""
    full_env = {**os.environ, "APP_SWEEP_DIR": str(tmp_path / "sweep"), **(env or {})}
    return subprocess.run([sys.executable, str(APP), "-m", *overrides], cwd=cwd or tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
