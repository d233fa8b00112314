"""What the queues can take, at submission (pipeline.launch.submitit_lsf.queues): the parallelism line of a
sweep larger than its queue's GPUs, and a queue ``bqueues`` does not list (pure functions here; the real
``bqueues`` of the LSF clone in tests/lsf_real/test_queue_check.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline.launch.submitit_lsf.queues import (
    parallelism_line,
    parallelism_note,
    parse_bqueues,
    unknown_queue_error,
)
from tests.conftest import run_py, train_env
from tests.lsf.conftest import run_app

BQUEUES = """\
QUEUE_NAME      PRIO STATUS          MAX JL/U JL/P JL/H NJOBS  PEND   RUN  SUSP
short            40   Open:Active      -    -    -    -     0     0     0     0
normal           30   Open:Active      -    -    -    -     0     0     0     0
hpc              30   Open:Active      -    -    -    -     0     0     0     0
"""


def test_parallelism_line() -> None:
    line = parallelism_line(10, queue="gpua40", queue_gpus=2, gpus_per_job=1, array_parallelism=100)
    assert line == "[lsf] queue gpua40 has 2 GPUs: at most 2 of these 10 jobs run at once (1 GPU each), in 5 waves"
    timed = parallelism_line(10, queue="gpua40", queue_gpus=2, gpus_per_job=1, array_parallelism=100,
                             minutes_per_job=30)
    assert timed.endswith("in 5 waves; at 30 min a job the sweep takes at least 2 h 30 min")
    assert "at most 1 of these 3 jobs" in parallelism_line(3, queue="q", queue_gpus=3, gpus_per_job=2,
                                                           array_parallelism=100)
    # nothing to say: enough GPUs, parallelism already capped, unknown GPU count, a CPU job
    assert parallelism_line(2, queue="gpua40", queue_gpus=2, gpus_per_job=1, array_parallelism=100) is None
    assert parallelism_line(10, queue="gpua40", queue_gpus=2, gpus_per_job=1, array_parallelism=2) is None
    assert parallelism_line(10, queue="gpua100", queue_gpus=None, gpus_per_job=1, array_parallelism=100) is None
    assert parallelism_line(10, queue="hpc", queue_gpus=2, gpus_per_job=0, array_parallelism=100) is None


def test_parallelism_note_counts_packed_runs() -> None:
    params = {"queue": "gpua10", "queue_gpus": 2, "gpus_per_node": 1, "array_parallelism": 100,
              "expected_run_min": 20}
    note = parallelism_note(params, jobs=5, runs_per_job=3)  # 15 runs packed 3 a job: 5 jobs of 60 min
    assert note.endswith("at most 2 of these 5 jobs run at once (1 GPU each), in 3 waves; at 60 min a job the "
                         "sweep takes at least 3 h 00 min")


def test_ten_job_sweep_on_gpua40_says_two_run_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run (no LSF needed) of a 10-job sweep with the dtu_gpua40 preset (one node, 2 GPUs)."""
    monkeypatch.setenv("PATH", str(Path(os.__file__).parent))  # no bsub, no bqueues
    res = run_app(tmp_path, "x=range(10)", "cluster=dtu_gpua40", "hydra.launcher.dry_run=true",
                  "hydra.launcher.expected_run_min=12", env={"PATH": os.environ["PATH"]})
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "GPUs:" in ln]
    assert lines == ["[lsf] queue gpua40 has 2 GPUs: at most 2 of these 10 jobs run at once (1 GPU each), in 5 "
                     "waves; at 12 min a job the sweep takes at least 1 h 00 min"], res.stdout
    script = (tmp_path / "sweep" / ".submitit" / "DRYRUN1_submission.sh").read_text()
    assert '#BSUB -J "my_app[1-10]%10"' in script and "#BSUB -M 10GB" in script.splitlines()


def test_parse_bqueues_and_unknown_queue() -> None:
    listed = parse_bqueues(BQUEUES)
    assert listed == ["short", "normal", "hpc"]
    assert unknown_queue_error({"queue": "normal", "aggregate_queue": "hpc"}, listed) is None
    assert unknown_queue_error({"queue": None, "aggregate_queue": None}, listed) is None
    line = unknown_queue_error({"queue": "normal", "aggregate_queue": "gpuh100"}, listed)
    assert line == ("No such queue gpuh100 (hydra.launcher.aggregate_queue): this cluster's queues are short, "
                    "normal, hpc (bqueues); set hydra.launcher.aggregate_queue to one of them, or null for the "
                    "sweep's own queue")
    assert "null for the cluster's default queue" in unknown_queue_error({"queue": "gpua100"}, listed)


def test_a_job_bigger_than_a_node_is_refused_in_one_line(tmp_path: Path) -> None:
    """``run.py -m`` exits 2 with the one line, before any bsub (none is on PATH here) or sweep.json."""
    env = train_env(tmp_path, PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    res = run_py(tmp_path, "-m", "cluster=dtu_gpua40", "hydra.launcher.gpus_per_node=4", "model=tiny",
                 "data.max_rows=200", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}", env=env, timeout=120)
    err = [ln for ln in res.stderr.splitlines() if ln.strip() and "HYDRA_FULL_ERROR" not in ln]
    assert res.returncode == 2 and len(err) == 1, res.stderr
    assert err[0].endswith("gpus_per_node=4: a node of queue gpua40 has 2 GPUs (node_gpus): ask for at most 2 "
                           "(hydra.launcher.gpus_per_node) or pick another queue")
    assert not list(tmp_path.rglob("sweep.json")) and not list(tmp_path.rglob("*_submission.sh"))
