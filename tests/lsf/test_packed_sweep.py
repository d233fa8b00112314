"""``hydra.launcher.runs_per_job=3`` on the fake LSF (pipeline.launch.packing), real training (model=tiny).

- a packed sweep (k=3 over 7 points, so the last array element runs one point) completes with every run
  dir right, in one bsub array of 3 elements; the dry-run line says what k x the expected run time is;
- USR2 to a packed job in its second point: the requeued job skips the completed point, resumes the
  interrupted one from its checkpoint and runs the rest.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import read_json, run_py, train_env
from tests.test_packing import SEVEN, SHORT, check_packed_sweep


@pytest.mark.lsf
@pytest.mark.slow
def test_packed_lsf_sweep_k3_over_7_points(lsf, shared_data, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    env = train_env(tmp_path, **lsf.env)
    res = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.aggregate=false", *SHORT, SEVEN,
                 "hydra.launcher.runs_per_job=3", "hydra.launcher.expected_run_min=5", f"hydra.sweep.dir={sweep}",
                 env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "runs_per_job=3 x 5.0 min expected per run (hydra.launcher.expected_run_min) = 15 min per job" \
        in res.stdout
    assert len(lsf.calls("bsub")) == 1  # one array of 3 elements
    lsf.wait_all(timeout=600)
    manifest = check_packed_sweep(sweep, "lsf")
    assert manifest["arrays"][0]["size"] == 7  # runs (job_num 0-6), in 3 array elements
    assert len(list((sweep / ".submitit").glob("*_submitted.pkl"))) == 3


@pytest.mark.lsf
@pytest.mark.slow
def test_packed_lsf_job_requeued_midway_resumes_its_point_and_skips_finished_ones(lsf, shared_data,
                                                                                  tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    env = train_env(tmp_path, **lsf.env, PIPELINE_FAULTS="write_metrics.jsonl:sleep=0.2")
    res = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.aggregate=false", *SHORT, "seed=0,1,2",
                 "hydra.launcher.runs_per_job=3", f"hydra.sweep.dir={sweep}", env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = read_json(sweep / "sweep.json")
    job_id = manifest["packs"][0]["job_id"]
    log = sweep / "1" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (log.is_file() and len(log.read_text().splitlines()) >= 12):  # point 1 past its first checkpoint
        assert time.time() < deadline, "point 1 did not start"
        time.sleep(0.2)
    first = (sweep / "0" / "metrics.json").read_bytes()
    assert lsf.run("bkill", "-s", "USR2", job_id).returncode == 0
    lsf.wait_all(timeout=600)
    assert [c["argv"] for c in lsf.calls("brequeue")] == [[job_id]]
    assert (sweep / "0" / "metrics.json").read_bytes() == first  # skipped, not run again
    assert read_json(sweep / "0" / "metrics.json")["attempts"] == 1
    resumed = read_json(sweep / "1" / "metrics.json")
    assert resumed["status"] == "completed" and resumed["attempts"] == 2
    attempts = read_json(sweep / "1" / "attempts.json")
    assert [a["status"] for a in attempts] == ["requeued", "completed"] and attempts[0]["step"] >= 10
    assert read_json(sweep / "1" / "run_info.json")["resumed_from_step"] >= 10  # from its checkpoint
    assert "packed job: run 0 already completed; skipped" in Path(manifest["jobs"][0]["stderr"]).read_text()
    assert read_json(sweep / "2" / "metrics.json")["attempts"] == 1
    assert read_json(sweep / "2" / "metrics.json")["status"] == "completed"


def test_dry_run_says_k_times_the_run_time_and_refuses_a_k_over_the_queue_limit(tmp_path: Path, monkeypatch) -> None:
    import json
    import os

    from tests.lsf.conftest import run_app

    monkeypatch.setenv("PATH", str(Path(os.__file__).parent))  # no bsub anywhere
    env = {"PATH": os.environ["PATH"]}
    common = ["x=range(7)", "hydra.launcher.dry_run=true", "cluster=dtu_gpua100", "hydra.launcher.expected_run_min=400"]
    res = run_app(tmp_path, *common, "hydra.launcher.runs_per_job=3", env=env)
    assert res.returncode == 0, res.stderr
    assert ("[lsf] 7 runs packed 3 per job into 3 scheduler jobs, the last one 1; runs_per_job=3 x 400.0 min "
            "expected per run (hydra.launcher.expected_run_min) = 1200 min per job (the queue's run limit "
            "max_timeout_min 1440 min)") in res.stdout
    data = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert data["packs"] == [{"job_id": "DRYRUN1[1]", "job_nums": [0, 1, 2]},
                             {"job_id": "DRYRUN1[2]", "job_nums": [3, 4, 5]},
                             {"job_id": "DRYRUN1[3]", "job_nums": [6]}]
    assert [j["job_id"] for j in data["jobs"]] == ["DRYRUN1[1]"] * 3 + ["DRYRUN1[2]"] * 3 + ["DRYRUN1[3]"]
    assert '#BSUB -J "my_app[1-3]' in (tmp_path / "sweep" / ".submitit" / "DRYRUN1_submission.sh").read_text()

    again = tmp_path / "again"  # python run.py: the one-line refusal exits 2 (tests/lsf/app exits 1 via Hydra)
    res = run_py(again, "-m", "model=tiny", "seed=range(7)", "hydra.launcher.dry_run=true", "cluster=dtu_gpua100",
                 "hydra.launcher.expected_run_min=400", "hydra.launcher.runs_per_job=4",
                 f"hydra.sweep.dir={again / 'sweep'}", env=train_env(again, PATH=os.environ["PATH"]), timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    said = res.stderr.strip().splitlines()
    assert len(said) == 1 and said[0].endswith("= 1600 min per job (the queue's run limit max_timeout_min 1440 "
                                               "min): too long; use hydra.launcher.runs_per_job=3 or fewer"), said
    assert not (again / "sweep" / "sweep.json").exists() and not (again / "sweep" / ".submitit").exists()
