"""Shared fixtures: the data location, ``python run.py`` in a subprocess (``run_py``) or in this process
(``run_py_here``), the fast tier's one real sweep (``shared_sweep``), and the scheduler test doubles.
Which tier a test runs in is decided in ``tests/tiers.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import runpy
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PIPELINE_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()
os.environ.setdefault("PIPELINE_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# the tiers, and the fake LSF and real-Slurm fixtures beside the tests that use them; a broken one fails loudly
pytest_plugins = ["tests.tiers", "tests.fake_lsf.fixture", "tests.slurm_fixture"]

# A tiny, fast training job on a 200-row BBC sample: seconds per run on 2 cores.
TINY = [
    "model=tiny", "data.max_rows=200", "trainer.max_length=64", "trainer.batch_size=8", "trainer.epochs=4",
    "trainer.lr=3e-3", "trainer.log_every_steps=5",
]

#: the shared sweep: 2 learning rates x 2 seeds of TINY, 2 epochs each (4 local jobs)
SHARED_SWEEP = [*TINY, "trainer.epochs=2", "trainer.lr=1e-3,3e-3", "seed=0,1"]


# ------------------------------------------------------------------------------------------ run.py


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
    """``python run.py <overrides>`` in a subprocess with outputs under tmp_path (full tier only)."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd,
                          env=env or train_env(tmp_path), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def run_py_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                hydra_restore_singletons: None) -> Callable[..., subprocess.CompletedProcess]:
    """``python run.py <args>`` in this process: run.py's own code (its command-line check, Hydra's main,
    the preflight checks), with the environment of ``run_py`` (``env`` replaces it, as there), the exit
    code from SystemExit and what it printed. Refused input costs a fraction of a second instead of a
    new Python with torch. Hydra's singletons, the logging set-up, sys.argv and the environment are put
    back afterwards."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        environ = {**(env or train_env(tmp_path)), "PIPELINE_NO_REEXEC": "1"}
        for name in set(os.environ) - set(environ):
            monkeypatch.delenv(name)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", [str(ROOT / "run.py"), *args])
        monkeypatch.chdir(ROOT)
        capsys.readouterr()
        with _logging_restored():
            try:
                runpy.run_path(str(ROOT / "run.py"), run_name="__main__")
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["run.py", *args], code, out.out, out.err)

    return run


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    """Hydra's main configures logging (a console and a file handler on the root logger, the ``hydra``
    logger's own); put the handlers and levels of those loggers back, and close what it opened."""
    loggers = [logging.getLogger(), logging.getLogger("hydra")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for lg, handlers, level, propagate in saved:
            for h in set(lg.handlers) - set(handlers):
                h.close()
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


@pytest.fixture(scope="session")
def shared_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SHARED_SWEEP trained once per session (``python run.py -m``, local processes) and aggregated: the
    fast tier's one real sweep. Read it, do not change it: copy it to a test's tmp_path first."""
    from tests.tiers import allow_run_py  # imported here: pytest loads tests.tiers itself, as a plugin

    tmp = tmp_path_factory.mktemp("shared")
    sweep = tmp / "sweep"
    with allow_run_py():
        r = run_py(tmp, "-m", *SHARED_SWEEP, f"hydra.sweep.dir={sweep}", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "best by val_macro_f1" in r.stdout  # the table printed at the end of the sweep
    return sweep


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "bbc_news.csv.gz").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}: set PIPELINE_DATA_DIR")
    return SHARED_DATA
