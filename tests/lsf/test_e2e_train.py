"""``python run.py -m cluster=lsf model=tiny ...`` on the fake LSF: the real training job, end to end.

Slow (real training, seconds per run): ``pytest -m "lsf and slow" tests/lsf``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import TINY, run_py, train_env

pytestmark = [pytest.mark.lsf, pytest.mark.slow]

TINY_NO_LR = [o for o in TINY if not o.startswith("trainer.lr=")]


def _sweep_dir(tmp_path: Path) -> Path:
    dirs = sorted((tmp_path / "outputs" / "multirun").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.mark.parametrize("dialect", ["lsf10", "openlava"])
def test_run_py_sweep_is_one_array(lsf, shared_data, tmp_path: Path, dialect: str) -> None:
    lsf.set_dialect(dialect)
    res = run_py(tmp_path, "-m", "cluster=lsf", f"hydra.launcher.dialect={dialect}", "hydra.launcher.aggregate=false",
                 "trainer.lr=1e-4,5e-5", "seed=0,1", *TINY_NO_LR, env=train_env(tmp_path, **lsf.env), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(lsf.calls("bsub")) == 1  # the whole sweep is one bsub
    lsf.wait_all(timeout=300)
    sweep = _sweep_dir(tmp_path)
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert manifest["arrays"][0]["size"] == 4 and manifest["dialect"] == dialect
    for job in manifest["jobs"]:
        metrics = json.loads((Path(job["run_dir"]) / "metrics.json").read_text())
        assert metrics["status"] == "completed", (job, Path(job["stderr"]).read_text()[-2000:])
    overrides = [tuple(o for o in j["overrides"] if o.startswith(("trainer.lr=", "seed="))) for j in manifest["jobs"]]
    assert overrides == [("trainer.lr=0.0001", "seed=0"), ("trainer.lr=0.0001", "seed=1"),
                         ("trainer.lr=5e-05", "seed=0"), ("trainer.lr=5e-05", "seed=1")]


def test_usr2_checkpoints_requeues_and_resumes(lsf, shared_data, tmp_path: Path) -> None:
    """USR2 mid-training: fit saves checkpoints/last at the next step, hands the signal to the LSF handler,
    which checkpoints the submitit call and brequeues the element; the rerun resumes and completes."""
    res = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.aggregate=false", "trainer.lr=3e-3", "seed=0,1",
                 "trainer.epochs=8", *[o for o in TINY_NO_LR if not o.startswith("trainer.epochs=")],
                 env=train_env(tmp_path, **lsf.env), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    sweep = _sweep_dir(tmp_path)
    job = json.loads((sweep / "sweep.json").read_text())["jobs"][1]
    log = Path(job["run_dir"]) / "metrics.jsonl"
    deadline = time.time() + 120
    while not (log.is_file() and sum(1 for _ in log.open()) >= 3):  # training has started
        assert time.time() < deadline, "training did not start"
        time.sleep(0.2)
    assert lsf.run("bkill", "-s", "USR2", job["job_id"]).returncode == 0
    lsf.wait_all(timeout=300)
    metrics = json.loads((Path(job["run_dir"]) / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["attempts"] == 2
    assert [c["argv"] for c in lsf.calls("brequeue")] == [[job["job_id"]]]
    other = json.loads((Path(json.loads((sweep / "sweep.json").read_text())["jobs"][0]["run_dir"])
                        / "metrics.json").read_text())
    assert other["status"] == "completed" and other["attempts"] == 1
