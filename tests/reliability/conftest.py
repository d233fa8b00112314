"""Shared pieces of the fault-injection suite: the job every exactness check compares with, a module-scoped
fake LSF, the random-step SIGKILL, and the ``pipeline`` CLI in a subprocess.

CONFIG is one small training job (model=tiny, 200 BBC rows, 80 optimizer steps, a checkpoint every
INTERVAL steps and a metrics.jsonl line every step). ``reference`` runs it once, uninterrupted; a job with
the same config that is killed, requeued or rerun must end with exactly the same metrics.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA, read_json, run_py, train_env

INTERVAL = 10  # trainer.checkpoint_every_steps: the most work a kill may cost
CONFIG = [
    "model=tiny", "data.max_rows=200", "trainer.max_length=64", "trainer.batch_size=8", "trainer.epochs=4",
    "trainer.lr=3e-3", "seed=0", "trainer.log_every_steps=1", "trainer.eval_every_steps=20",
    f"trainer.checkpoint_every_steps={INTERVAL}",
]
STEPS = 80  # 158 training rows / 8 per batch = 20 steps per epoch, 4 epochs
#: glibc settings run.py re-executes itself with; scheduler jobs start Python directly, so they need them
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
#: a floor of 0.35 s per optimizer step (each step appends a metrics.jsonl line and sleeps halfway through
#: it), so that a run limit of a few seconds cannot be outrun by a fast machine
SLOW_STEPS = "write_metrics.jsonl:sleep=0.35"


def job_env(tmp: Path, *bases: dict[str, str], **extra: str) -> dict[str, str]:
    """train_env plus MALLOC, then each of ``bases`` (e.g. the fake LSF's variables), then ``extra``."""
    merged = dict(MALLOC)
    for base in bases:
        merged.update(base)
    merged.update(extra)
    return train_env(tmp, **merged)


def without(overrides: list[str], *keys: str) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0] not in keys]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m pipeline.cli <args>`` (from the repository root)."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def final(run_dir: Path) -> dict:
    m = read_json(run_dir / "metrics.json")
    return {k: m[k] for k in ("status", "val", "test", "best_step", "best_epoch", "steps", "epochs")}


def rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the fields that depend on the clock; every line must parse."""
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        out.append({k: v for k, v in row.items() if k not in ("time", "samples_per_s")})
    return out


@pytest.fixture(scope="session")
def data() -> Path:
    """The shared datasets (skips without them)."""
    if not (SHARED_DATA / "bbc_news.csv.gz").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}: set PIPELINE_DATA_DIR")
    return SHARED_DATA


@pytest.fixture(scope="session")
def reference(tmp_path_factory, data) -> Path:
    """CONFIG run once, uninterrupted, as a plain ``python run.py``."""
    tmp = tmp_path_factory.mktemp("reference")
    run_dir = tmp / "run"
    r = run_py(tmp, *CONFIG, f"hydra.run.dir={run_dir}", env=job_env(tmp), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_json(run_dir / "metrics.json")["steps"] == STEPS
    return run_dir


def assert_same_as_reference(run_dir: Path, reference: Path) -> None:
    assert final(run_dir) == final(reference)
    assert rows(run_dir) == rows(reference)


# ------------------------------------------------------------------------------------------ killing


def last_train_step(run_dir: Path) -> int:
    """The last optimizer step that metrics.jsonl records (a torn last line is skipped)."""
    from pipeline.results.results import read_jsonl

    steps = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("split") == "train"]
    return max(steps, default=0)


def kill_at_step(run_dir: Path, step: int, pid_of: Callable[[], int | None], timeout: float = 300) -> tuple[int, float]:
    """Wait until the job has logged optimizer step ``step``, SIGKILL it; (last logged step, kill time)."""
    deadline = time.monotonic() + timeout
    while last_train_step(run_dir) < step:
        assert time.monotonic() < deadline, f"{run_dir} did not reach step {step}"
        time.sleep(0.02)
    pid = pid_of()
    assert pid, f"no process found for the job in {run_dir}"
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    while _alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return last_train_step(run_dir), killed_at


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (the parent has not reaped it yet) is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def job_pid(**environ: str) -> int | None:
    """The pid of the Python process running a submitit job (``python -m submitit.core._submit``, not the
    ``srun`` that started it) whose environment has these values."""
    wanted = {f"{k}={v}".encode() for k, v in environ.items()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"submitit.core._submit" not in argv or not Path(argv[0].decode()).name.startswith("python"):
                continue
            env = set((proc / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= env:
            return int(proc.name)
    return None


_RESUMED = re.compile(r"^\[(\S+ \S+)\]\[INFO\] resumed from checkpoints/last at step (\d+)")


def resumed_after(run_dir: Path, when: float) -> int:
    """The step the first attempt started after ``when`` resumed from (its run.log line; 0: it started over)."""
    for line in (run_dir / "run.log").read_text().splitlines():
        m = _RESUMED.match(line)
        if m and datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() >= when - 1:
            return int(m.group(2))
    return 0


def assert_bounded_redo(run_dir: Path, killed_step: int, killed_at: float) -> int:
    """The rerun resumed from a checkpoint at most INTERVAL steps before the kill."""
    resumed = resumed_after(run_dir, killed_at)
    assert killed_step - INTERVAL <= resumed <= killed_step, (killed_step, resumed)
    return resumed


# ------------------------------------------------------------------------------------------ fake LSF


@contextlib.contextmanager
def fake_lsf_cluster(directory: Path) -> Iterator:
    """The ``fake_lsf`` fixture's cluster for a whole module (the fixture itself is per test)."""
    from tests.fake_lsf.fixture import BIN, DEFAULTS, SCRUB, FakeLSF

    directory.mkdir(parents=True, exist_ok=True)
    mp = pytest.MonkeyPatch()
    fake = FakeLSF(directory, mp)
    try:
        for name in SCRUB:
            mp.delenv(name, raising=False)
        fake.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        fake.setenv("FAKE_LSF_DIR", str(directory))
        for key, value in DEFAULTS.items():
            fake.setenv(key, value)
        yield fake
    finally:
        fake.kill_all()
        mp.undo()


def status_rows(stdout: str) -> dict[str, str]:
    """``pipeline status`` table rows by job number; a column the same in every row is said once above the
    table ("same in all rows: state=FAILED, ..."), so that line is added to every row here."""
    from tests.table_fit import table_rows

    same = next((ln.split(":", 1)[1].split(";")[0] for ln in stdout.splitlines()
                 if ln.startswith("same in all rows:")), "")
    return {k: f"{row}  [{same.strip()}]" if same else row for k, row in table_rows(stdout).items()}


def sweep_json(sweep: Path) -> dict:
    return read_json(sweep / "sweep.json")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)


def completed(run_dir: Path) -> bool:
    try:
        return read_json(run_dir / "metrics.json").get("status") == "completed"
    except (OSError, ValueError):
        return False
