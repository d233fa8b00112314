"""GPU-hours count every attempt of a run (attempts.json), failed and killed ones too (issue 10, case 8)."""

from __future__ import annotations

import pytest

from pipeline import atomic, rundir
from pipeline.results import compare, formats
from pipeline.results.runs import load_sweep
from pipeline.train import attempts
from tests.results.make_runs import write_run


def _attempts(run_dir, *records: tuple[float, str]) -> None:
    atomic.write_json(rundir.attempts_json(run_dir), [
        {"id": str(k), "start": "2024-01-01T10:00:00+00:00", "wall_s": wall, "status": status, "step": 10 * k}
        for k, (wall, status) in enumerate(records)])


def test_gpu_hours_sum_every_attempt_failed_ones_included(tmp_path):
    sweep = tmp_path / "s"
    # job 0: killed (1800 s), requeued (900 s), then completed in 1800 s more; its metrics.json says 3600 s
    # of training (what the checkpoints carried), the cluster charged 4500 s
    write_run(sweep / "0", ["seed=0"], hydra_gpus=2, wall_time_s=3600.0)
    _attempts(sweep / "0", (1800.0, "killed"), (900.0, "requeued"), (1800.0, "completed"))
    # job 1: failed twice (no wall_time_s in its metrics.json at all)
    write_run(sweep / "1", ["seed=1"], hydra_gpus=2, state="failed")
    _attempts(sweep / "1", (360.0, "failed"), (1440.0, "failed"))
    # job 2: running, SIGKILLed once (its record stayed "running", with the time up to its last heartbeat)
    write_run(sweep / "2", ["seed=2"], hydra_gpus=2, state="running")
    _attempts(sweep / "2", (720.0, "running"), (180.0, "running"))
    runs = {r.name: r for r in load_sweep(sweep).runs}
    assert runs["0"].metrics["gpu_hours"] == pytest.approx(4500 * 2 / 3600)
    assert runs["1"].state == rundir.FAILED and runs["1"].metrics["gpu_hours"] == pytest.approx(1800 * 2 / 3600)
    assert runs["2"].metrics["gpu_hours"] == pytest.approx(900 * 2 / 3600)
    table = compare.run_table(list(runs.values()))
    assert table.total_gpu_hours == pytest.approx((4500 + 1800 + 900) * 2 / 3600)
    md = formats.to_markdown(table)
    assert "total: 4.000 GPU hours over 3 runs" in md
    assert formats.GPU_HOURS_NOTE in md and "all attempts" in formats.GPU_HOURS_NOTE
    assert all(len(line) <= 80 for line in (formats.total_line(table), formats.GPU_HOURS_NOTE))


def test_runs_without_attempts_record_fall_back_to_wall_time(tmp_path):
    write_run(tmp_path / "s" / "0", ["seed=0"], hydra_gpus=1, wall_time_s=1800.0)
    (run,) = load_sweep(tmp_path / "s").runs
    assert run.metrics["gpu_hours"] == pytest.approx(0.5)


def test_attempt_record_is_written_at_start_heartbeat_and_end(tmp_path, monkeypatch):
    import time

    run_dir = tmp_path / "run"
    first = attempts.Attempt(run_dir, started=time.time() - 100)
    (rec,) = attempts.read(run_dir)
    assert rec["status"] == "running" and rec["wall_s"] >= 100
    monkeypatch.setattr(attempts, "HEARTBEAT_S", 0.0)
    first.beat(step=7)
    assert attempts.read(run_dir)[0]["step"] == 7
    first.end("killed", step=9)
    second = attempts.Attempt(run_dir)  # the rerun appends its own record
    second.end("completed", step=20)
    recs = attempts.read(run_dir)
    assert [(r["status"], r["step"]) for r in recs] == [("killed", 9), ("completed", 20)]
    assert attempts.total_wall_s(run_dir) == pytest.approx(sum(r["wall_s"] for r in recs))
