"""A queue the LSF clone does not have, named as the aggregation job's queue, is refused before submission.

The clone's ``bqueues`` lists normal, hpc and short. Without this check bsub accepted the sweep's array
and refused only the aggregation job, after the sweep was in (the failure was only logged). Dry runs:
the check runs all the same (``bqueues`` is on PATH), and nothing can reach the shared clone's queues.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import rundir
from tests.conftest import run_py, train_env

pytestmark = [pytest.mark.lsf_real]

SMALL = ["model=tiny", "data.max_rows=200", "trainer.max_length=64", "seed=0,1"]


def sweep_of(tmp_path: Path, real_lsf: dict[str, str], *overrides: str):
    sweep = tmp_path / "sweep"
    res = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.dialect=openlava", "hydra.launcher.queue=normal",
                 "hydra.launcher.dry_run=true", *overrides, *SMALL, f"hydra.sweep.dir={sweep}",
                 env=train_env(tmp_path, **real_lsf), timeout=120)
    return res, sweep


def test_unknown_aggregate_queue_is_one_line_before_submission(real_lsf, tmp_path: Path):
    res, sweep = sweep_of(tmp_path, real_lsf, "hydra.launcher.aggregate_queue=gpuh100")
    err = [ln for ln in res.stderr.splitlines() if ln.strip() and "HYDRA_FULL_ERROR" not in ln]
    assert res.returncode == 2 and len(err) == 1, res.stderr
    assert err[0].endswith("No such queue gpuh100 (hydra.launcher.aggregate_queue): this cluster's queues are "
                           "short, normal, hpc (bqueues); set hydra.launcher.aggregate_queue to one of them, or "
                           "null for the sweep's own queue"), err[0]
    assert not (sweep / rundir.SWEEP_JSON).exists() and not (sweep / ".submitit").exists()


def test_a_listed_aggregate_queue_passes(real_lsf, tmp_path: Path):
    res, sweep = sweep_of(tmp_path, real_lsf, "hydra.launcher.aggregate_queue=hpc")
    assert res.returncode == 0, res.stderr
    assert "#BSUB -q hpc" in (sweep / rundir.AGGREGATE_SCRIPT).read_text().splitlines()
