"""The ``fake_lsf`` pytest fixture: puts the fake LSF commands first on PATH with a private state dir.

``tests/conftest.py`` loads this module as a pytest plugin (``pytest_plugins``); a test that uses the
fixture is in the full tier (mark ``lsf``, tests/tiers.py)::

    def test_x(fake_lsf):
        out = subprocess.run(["bsub", "-J", "x", "echo hi"], capture_output=True, text=True).stdout
        fake_lsf.wait_all(timeout=10)
        assert fake_lsf.calls("bsub")

Everything the fixture sets is in ``fake_lsf.env`` (also applied to ``os.environ`` through monkeypatch,
so subprocesses started by the code under test see it). On teardown every supervisor and every job
process group still alive is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fake_lsf import scheduler

BIN = Path(__file__).resolve().parent / "bin"

#: what the fixture sets by default; tests may override any of them with ``fake_lsf.setenv``
DEFAULTS = {
    "FAKE_LSF_SECONDS_PER_MINUTE": "0.5",  # -W 2 means one second
    "FAKE_LSF_KILL_GRACE": "1.0",  # SIGKILL one second after SIGUSR2 at the run limit
    "FAKE_LSF_POLL": "0.1",
}

#: variables from the outer environment that would change the fake's behaviour
SCRUB = (
    "FAKE_LSF_DIALECT", "FAKE_LSF_QUEUES", "FAKE_LSF_DEFAULT_QUEUE", "FAKE_LSF_FORGET_AFTER",
    "FAKE_LSF_MAX_JOB_ARRAY_SIZE", "FAKE_LSF_MAX_RUNNING", "FAKE_LSF_TERMINATE_INTERVAL",
    "FAKE_LSF_BSUB_FAIL", "FAKE_LSF_BJOBS_FAIL", "FAKE_LSF_BKILL_FAIL", "FAKE_LSF_HOST",
    "LSB_STDOUT_DIRECT", "LSB_BSUB_PARSE_SCRIPT", "LSB_BJOBS_FORMAT", "LSB_BJOBS_DISPLAY_ENH",
    "LSB_JOBID", "LSB_JOBINDEX", "LSB_JOBNAME", "LSB_QUEUE",
)

UNFINISHED = ("PEND", "PSUSP", "RUN", "USUSP", "SSUSP")


class FakeLSF:
    """Handle returned by the ``fake_lsf`` fixture."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch):
        self.dir = directory
        self.bin = BIN
        self.env: dict[str, str] = {}
        self._mp = monkeypatch
        self._store = scheduler.Store(str(directory))

    # --- environment -----------------------------------------------------------------------------
    def setenv(self, name: str, value) -> None:
        self._mp.setenv(name, str(value))
        self.env[name] = str(value)

    def delenv(self, name: str) -> None:
        self._mp.delenv(name, raising=False)
        self.env.pop(name, None)

    def set_dialect(self, name: str) -> None:
        """``"lsf10"`` (default) or ``"openlava"`` (older LSF / OpenLava)."""
        self.setenv("FAKE_LSF_DIALECT", name)
        (self.dir / "dialect").write_text(name)

    def fail_next(self, cmd: str, n: int) -> None:
        """Make the next ``n`` calls of ``cmd`` (bjobs, bsub, ...) fail transiently (exit 255)."""
        (self.dir / f"{cmd}_fail").write_text(str(int(n)))

    # --- inspection -------------------------------------------------------------------------------
    def calls(self, cmd: str | None = None) -> list[dict]:
        """Parsed ``calls.log``: ``[{"cmd": "bsub", "argv": [...], "time": ..., ...}, ...]``."""
        path = self.dir / "calls.log"
        if not path.exists():
            return []
        recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in recs if cmd is None or r["cmd"] == cmd]

    def state(self) -> dict:
        return self._store.read()

    def jobs(self) -> dict[int, dict]:
        """Job records keyed by job id; ``rec["elements"]`` maps index (str) to the element state."""
        return {int(k): v for k, v in self.state()["jobs"].items()}

    def job(self, jobid: int) -> dict:
        return self.jobs()[int(jobid)]

    def stats(self, jobid: int) -> dict[int, str]:
        """``{index: STAT}`` of one job (index 0 for a non-array job)."""
        return {int(i): el["stat"] for i, el in self.job(jobid)["elements"].items()}

    def stat(self, jobid: int, index: int = 0) -> str:
        return self.stats(jobid)[index]

    # --- waiting ----------------------------------------------------------------------------------
    def wait_all(self, timeout: float = 30.0, ids=None) -> dict[int, dict]:
        """Wait until no element (of ``ids``, default all jobs) is PEND/PSUSP/RUN/USUSP/SSUSP."""
        wanted = None if ids is None else {int(i) for i in ids}
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            busy = [
                (jid, idx)
                for jid, job in jobs.items()
                if wanted is None or jid in wanted
                for idx, el in job["elements"].items()
                if el["stat"] in UNFINISHED
            ]
            if not busy:
                return jobs
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake LSF jobs still unfinished after {timeout}s: {busy[:10]}")
            time.sleep(0.05)

    def wait_for(self, jobid: int, states, index: int = 0, timeout: float = 15.0) -> str:
        """Wait until element ``index`` of ``jobid`` is in one of ``states`` (a string or a tuple)."""
        states = (states,) if isinstance(states, str) else tuple(states)
        deadline = time.monotonic() + timeout
        while True:
            stat = self.stat(jobid, index)
            if stat in states:
                return stat
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {jobid}[{index}] is {stat}, not {states}, after {timeout}s")
            time.sleep(0.05)

    # --- convenience ------------------------------------------------------------------------------
    def run(self, *args: str, input: str | None = None, cwd=None) -> subprocess.CompletedProcess:
        """Run one fake command (``fake_lsf.run("bjobs", "-a")``) and capture its text output."""
        return subprocess.run(list(args), input=input, cwd=cwd, capture_output=True, text=True, timeout=60)

    def submit(self, *args: str, script: str | None = None, cwd=None) -> int:
        """``bsub args`` (with ``script`` on stdin when given); returns the job id, asserts success."""
        res = self.run("bsub", *args, input=script if script is not None else "", cwd=cwd)
        assert res.returncode == 0, f"bsub failed ({res.returncode}): {res.stderr}"
        return int(res.stdout.split("<", 1)[1].split(">", 1)[0])

    def kill_all(self) -> None:
        """SIGKILL every supervisor and every job process group (teardown)."""
        if not (self.dir / "state.json").exists():
            return
        for _ in range(2):
            # a shared lock keeps supervisors (which write under an exclusive lock) out meanwhile
            with self._store.locked(write=False) as st:
                for job in st["jobs"].values():
                    pid = job.get("supervisor_pid")
                    if pid:
                        _signal_group(pid)
                    for el in job["elements"].values():
                        if el.get("pid"):
                            _signal_group(el["pid"])
            time.sleep(0.05)


def _signal_group(pid) -> None:
    for fn in (os.killpg, os.kill):
        try:
            fn(int(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass


@pytest.fixture
def fake_lsf(tmp_path, monkeypatch):
    """A private fake LSF 10.1 cluster: ``bsub bjobs bkill bpeek brequeue`` on PATH."""
    directory = tmp_path / "fake_lsf_state"
    directory.mkdir()
    for name in SCRUB:
        monkeypatch.delenv(name, raising=False)
    fake = FakeLSF(directory, monkeypatch)
    fake.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    fake.setenv("FAKE_LSF_DIR", str(directory))
    for key, value in DEFAULTS.items():
        fake.setenv(key, value)
    try:
        yield fake
    finally:
        fake.kill_all()
