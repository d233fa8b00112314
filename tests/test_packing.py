"""``hydra.launcher.runs_per_job=k``: several sweep points per scheduler job (pipeline.launch.packing).

- unit: grouping, the time check (one line, exit 2, before submission), narrowing a pickled pack to one
  run, the warm model cache giving exactly the weights of a cold load;
- a packed sweep (k=3 over 7 points, so the last job is short) completes with every run dir right, on
  local processes and on the real Slurm (the fake LSF: tests/lsf/test_packed_sweep.py); ``pipeline status``
  and ``results`` work per run, and status shows at most one point of a running job as running;
- ``pipeline rerun --failed`` in a packed sweep resubmits only the failed point.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeline.launch import packing
from tests.conftest import TINY, read_json, run_py, train_env

#: one epoch of 20 steps per run (158 training rows / 8), a checkpoint every 10 steps
SHORT = [*(o for o in TINY if not o.startswith(("trainer.epochs=", "trainer.log_every_steps="))),
         "trainer.epochs=1", "trainer.log_every_steps=1", "trainer.checkpoint_every_steps=10"]
SEVEN = "seed=0,1,2,3,4,5,6"


# ------------------------------------------------------------------------------------------ unit


def test_chunks_leave_the_last_job_short() -> None:
    assert packing.chunks(7, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert packing.chunks(4, 4) == [[0, 1, 2, 3]]
    assert packing.chunks(2, 1) == [[0], [1]]
    assert packing.describe(3, 7) == "7 runs packed 3 per job into 3 scheduler jobs, the last one 1"


@pytest.mark.parametrize("raw", [0, -1, "x"])
def test_runs_per_job_must_be_positive(raw) -> None:
    with pytest.raises(packing.PackError, match="runs_per_job"):
        packing.runs_per_job({"runs_per_job": raw})


def test_time_check_says_k_times_the_estimate_and_refuses_what_exceeds_the_limit() -> None:
    line = packing.check_time(4, 12.0, "hydra.launcher.expected_run_min", 60, "timeout_min")
    assert "4 x 12.0 min" in line and "= 48 min per job" in line and "timeout_min 60 min" in line
    with pytest.raises(packing.PackError, match=r"= 72 min per job.*runs_per_job=5 or fewer"):
        packing.check_time(6, 12.0, "hydra.launcher.expected_run_min", 60, "timeout_min")
    assert "no run-time estimate" in packing.check_time(6, None, "no estimate", 60, "timeout_min")


def test_estimate_from_completed_runs_in_the_sweep(tmp_path: Path) -> None:
    for n, (status, wall) in enumerate([("completed", 120.0), ("completed", 300.0), ("failed", 9999.0)]):
        (tmp_path / str(n)).mkdir()
        (tmp_path / str(n) / "metrics.json").write_text(json.dumps({"status": status, "wall_time_s": wall}))
    minutes, source = packing.expected_run_min({}, tmp_path)
    assert minutes == pytest.approx(5.0) and "2 completed" in source
    assert packing.expected_run_min({"expected_run_min": 2}, tmp_path) == (2.0, "hydra.launcher.expected_run_min")


class _Point:
    def __init__(self, num: int, log: list[int], fail: bool = False) -> None:
        self.job_num, self.overrides, self.log, self.fail = num, [f"seed={num}"], log, fail

    def __call__(self, started: float | None = None) -> int:
        self.log.append(self.job_num)
        self.started = started
        if self.fail:
            raise RuntimeError(f"point {self.job_num}")
        return self.job_num


def test_pack_skips_completed_points_and_a_failure_does_not_stop_the_rest(tmp_path: Path) -> None:
    dirs = [tmp_path / str(n) for n in range(3)]
    dirs[0].mkdir()
    (dirs[0] / "metrics.json").write_text(json.dumps({"status": "completed"}))
    ran: list[int] = []
    points = [_Point(0, ran), _Point(1, ran, fail=True), _Point(2, ran)]
    job = packing.PackedJob(points, [str(d) for d in dirs])
    before = time.time()
    with pytest.raises(RuntimeError, match="point 1"):
        job()
    assert ran == [1, 2]
    assert before <= points[1].started <= points[2].started <= time.time()  # each point's own start, as an argument


def test_unpack_call_gives_the_single_points_call() -> None:
    from submitit.core.utils import DelayedSubmission

    from pipeline.launch.payload import SweepJob

    points = [SweepJob("payload.pkl", [f"seed={n}"], "hydra.sweep.dir", n) for n in range(3)]
    call = DelayedSubmission(packing.PackedJob(points, [None] * 3))
    one = packing.unpack_call(call, 1)
    assert one.function is points[1] and one.args == ()
    plain = DelayedSubmission(print, 1)
    assert packing.unpack_call(plain, 0) is plain
    with pytest.raises(ValueError, match="run 9"):
        packing.unpack_call(call, 9)


def test_warm_model_is_exactly_a_cold_one_even_after_training_changed_the_first() -> None:
    """Second and later points of a packed job build the model from the cached weights: same tensors (and
    the same seeded head) as from_pretrained reading the file, even after the first model was changed."""
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoModelForSequenceClassification

    from pipeline.models import model as model_lib

    source = model_lib.offline_minilm_path()
    cfg = OmegaConf.create({"pretrained": True, "path": source, "name": None})
    labels = ["a", "b", "c"]
    first = model_lib.build_model(cfg, labels, 0, seed=1)
    with torch.no_grad():
        for p in first.parameters():
            p.add_(1.0)  # what training does to the first point's model
    warm = model_lib.build_model(cfg, labels, 0, seed=1)
    torch.manual_seed(1)
    cold = AutoModelForSequenceClassification.from_pretrained(source, num_labels=3, ignore_mismatched_sizes=True)
    cold_sd, warm_sd = cold.state_dict(), warm.state_dict()
    assert cold_sd.keys() == warm_sd.keys()
    assert all(torch.equal(cold_sd[k], warm_sd[k]) for k in cold_sd)


# ------------------------------------------------------------------------------------------ sweeps


def check_packed_sweep(sweep: Path, scheduler: str) -> dict:
    manifest = read_json(sweep / "sweep.json")
    assert manifest["scheduler"] == scheduler and manifest["runs_per_job"] == 3
    assert [p["job_nums"] for p in manifest["packs"]] == [[0, 1, 2], [3, 4, 5], [6]]
    jobs = {j["job_num"]: j for j in manifest["jobs"]}
    assert sorted(jobs) == list(range(7))
    for pack in manifest["packs"]:
        assert {jobs[n]["job_id"] for n in pack["job_nums"]} == {pack["job_id"]}  # one scheduler job each
    assert len({p["job_id"] for p in manifest["packs"]}) == 3
    for n, job in jobs.items():
        run_dir = Path(job["run_dir"])
        assert run_dir == sweep / str(n)
        metrics = read_json(run_dir / "metrics.json")
        assert metrics["status"] == "completed" and metrics["attempts"] == 1, (n, metrics)
        assert f"seed={n}" in (run_dir / ".hydra" / "overrides.yaml").read_text()
        assert read_json(run_dir / "run_info.json")
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) > 0
    return manifest


@pytest.mark.slow
def test_packed_local_sweep_k3_over_7_points(shared_data, tmp_path: Path) -> None:
    from tests.reliability.conftest import cli

    sweep = tmp_path / "sweep"
    env = train_env(tmp_path)
    res = run_py(tmp_path, "-m", *SHORT, SEVEN, "hydra.launcher.runs_per_job=3", f"hydra.sweep.dir={sweep}",
                 env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "7 runs packed 3 per job into 3 scheduler jobs, the last one 1" in res.stdout + res.stderr
    check_packed_sweep(sweep, "local")
    status = cli("status", str(sweep), env=env)
    assert status.returncode == 0, status.stderr
    results = cli("results", str(sweep), "--format", "json", env=env)
    assert results.returncode == 0, results.stderr
    assert len(json.loads(results.stdout)["rows"]) == 7


@pytest.mark.slurm
@pytest.mark.slow
def test_packed_slurm_sweep_k3_over_7_points(slurm_cluster, shared_data, tmp_path: Path) -> None:
    """The real Slurm: one sbatch array of 3 tasks runs the 7 points; while it runs, `pipeline status` never
    shows more than one point of a task as running (the others wait their turn: pending)."""
    import time

    from tests.reliability.conftest import cli, status_rows

    sweep = tmp_path / "sweep"
    env = train_env(tmp_path)
    res = run_py(tmp_path, "-m", "cluster=slurm", f"hydra.launcher.partition={slurm_cluster.partition}",
                 "hydra.launcher.wait=false", *SHORT, SEVEN, "hydra.launcher.runs_per_job=3",
                 f"hydra.sweep.dir={sweep}", env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    packs = [p["job_nums"] for p in read_json(sweep / "sweep.json")["packs"]]
    seen: set[str] = set()
    deadline = time.time() + 600
    while not all((sweep / str(n) / "metrics.json").is_file() for n in range(7)):
        assert time.time() < deadline, "the packed Slurm sweep did not finish"
        rows = status_rows(cli("status", str(sweep), "--columns", "job,state", env=env).stdout)
        seen.update(rows.values())
        for nums in packs:
            running = [n for n in nums if "RUNNING" in rows.get(str(n), "")]
            assert len(running) <= 1, (nums, rows)  # one process runs a task's points one after another
        time.sleep(1)
    assert any("PENDING" in r for r in seen) and any("RUNNING" in r for r in seen), seen
    manifest = check_packed_sweep(sweep, "slurm")
    assert len({p["job_id"].split("_")[0] for p in manifest["packs"]}) == 1  # one sbatch array


def test_packed_k_too_long_for_the_limit_is_refused_before_anything_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    res = run_py(tmp_path, "-m", *SHORT, SEVEN, "hydra.launcher.runs_per_job=4", "hydra.launcher.timeout_min=30",
                 "hydra.launcher.expected_run_min=10", f"hydra.sweep.dir={sweep}", timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    said = res.stderr.strip().splitlines()
    assert len(said) == 1 and "= 40 min per job (timeout_min 30 min): too long" in said[0], said
    assert not (sweep / "sweep.json").exists() and not (sweep / ".submitit").exists()


@pytest.mark.slow
def test_rerun_of_one_failed_point_in_a_packed_sweep_resubmits_only_it(shared_data, tmp_path: Path) -> None:
    from tests.reliability.conftest import cli

    sweep = tmp_path / "sweep"
    env = train_env(tmp_path)
    res = run_py(tmp_path, "-m", *SHORT, "trainer.max_grad_norm=0", "trainer.lr=3e-3,1e12,5e-3",
                 "hydra.launcher.runs_per_job=3", f"hydra.sweep.dir={sweep}", env=env, timeout=600)
    assert res.returncode != 0  # the sweep reports its failed run
    assert read_json(sweep / "1" / "metrics.json")["status"] == "failed"
    kept = {n: (sweep / n / "metrics.json").read_bytes() for n in ("0", "2")}
    assert all(read_json(sweep / n / "metrics.json")["status"] == "completed" for n in kept)  # 2 ran after 1

    again = cli("rerun", str(sweep), "--failed", "trainer.lr=3e-3", env=env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    started = [ln for ln in again.stdout.splitlines() if ln.startswith("rerun:")]
    assert len(started) == 1 and started[0].startswith("rerun: job 1 "), again.stdout
    assert read_json(sweep / "1" / "metrics.json")["status"] == "completed"
    assert {n: (sweep / n / "metrics.json").read_bytes() for n in kept} == kept
    after = read_json(sweep / "sweep.json")
    assert after["reruns"][0]["jobs"] == [1]
