"""``pipeline watch`` and the progress it reads: the table at 80/120 columns, plain lines per change, ETAs
from progress.json, ``pipeline status``'s step/total and ETA, and watch driven through a real local sweep
(and a fake-LSF one) to its end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest

from pipeline.results import watch as W
from pipeline.train import progress as P
from tests.conftest import ROOT, TINY, run_py, train_env
from tests.table_fit import table_rows


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_sweep(root: Path, scheduler: str = "lsf") -> Path:
    """A sweep in every state a row can show: completed, running (with progress.json), failed, pending."""
    sweep = root / "sweep"
    jobs = []
    for n in range(4):
        jobs.append({"job_num": n, "job_id": f"1001[{n + 1}]", "run_dir": str(sweep / str(n)), "stdout": None,
                     "stderr": None, "overrides": [f"trainer.learning_rate_warmup_long_name={n}e-5", f"seed={n}"]})
    _write(sweep / "sweep.json", {"scheduler": scheduler, "created": "2026-12-01T10:00:00+00:00", "jobs": jobs,
                                  "arrays": [{"job_id": "1001", "size": 4, "first_job_num": 0}]})
    for n in range(3):
        d = sweep / str(n)
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in jobs[n]["overrides"]))
        lines = [{"split": "train", "epoch": 0, "step": 10, "loss": 1.2, "time": 1.0},
                 {"split": "val", "epoch": 1, "step": 1200, "loss": 0.5, "accuracy": 0.8, "macro_f1": 0.7812}]
        if n == 0:
            lines.append({"split": "val", "epoch": 2, "step": 2400, "loss": 0.4, "accuracy": 0.9, "macro_f1": 0.9123})
        (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    _write(sweep / "0" / "metrics.json", {
        "status": "completed", "val": {"macro_f1": 0.9123, "accuracy": 0.9, "loss": 0.4}, "test": {"macro_f1": 0.9},
        "steps": 2400, "epochs": 2, "wall_time_s": 3723.0, "train_samples_per_s": 123.4, "monitor": "macro_f1"})
    _write(sweep / "1" / "progress.json", {"step": 1234, "total_steps": 3600, "epoch": 1, "epochs": 3,
                                           "samples_per_s": 98.76, "seconds_per_step": 0.5, "eta_s": 1183.0,
                                           "time": time.time()})
    _write(sweep / "2" / "metrics.json", {"status": "failed", "error": "RuntimeError: CUDA out of memory"})
    return sweep


def _snap(sweep: Path) -> W.Snapshot:
    # the scheduler: job 1 runs, job 3 pends (what one bjobs answer says)
    from pipeline.launch import sweep_status as S

    real = S.query_sweep

    def fake_query(sw, runner=None):
        from pipeline.launch import S_PENDING, S_RUNNING, Answer, SchedJob

        ans = Answer("lsf", answered=True, complete=True)
        ans.jobs = {"1001[2]": SchedJob("1001[2]", "RUN", S_RUNNING),
                    "1001[4]": SchedJob("1001[4]", "PEND", S_PENDING)}
        return ans

    S.query_sweep = fake_query
    try:
        return W.snapshot(sweep, "val_macro_f1")
    finally:
        S.query_sweep = real


def _render(renderable, width: int) -> list[str]:
    from rich.console import Console

    buf = StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(renderable)
    return buf.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_watch_table_fits_and_no_cell_wraps(tmp_path, width):
    snap = _snap(make_sweep(tmp_path))
    assert [j.state for j in snap.jobs] == ["completed", "running", "failed", "pending"]
    lines = _render(W.table(snap, width), width)
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    rows = {line.split()[0]: line for line in lines if line.strip() and line.split()[0].isdigit()}
    assert sorted(rows) == ["0", "1", "2", "3"], lines  # one line per job: nothing wrapped onto another
    # every value on its job's line
    for needle in ("COMPLETED", "2400/2400", "123.4", "0.9123"):
        assert needle in rows["0"], rows["0"]
    for needle in ("running", "1234/3600", "98.8", "0:19:43", "0.7812"):
        assert needle in rows["1"], rows["1"]
    assert "█" in rows["1"] and "░" in rows["1"]  # the bar, about a third full
    assert "FAILED" in rows["2"] and "pending" in rows["3"]
    header = lines[0].split()
    assert header[:3] == ["job", "state", "step"] and "ETA" in header and "best" in header
    if width == 120:  # a wide terminal shows more: the varying overrides of each job
        assert "config" in header and "seed=1" in rows["1"]


@pytest.mark.parametrize("width", [80, 120])
def test_watch_view_has_totals_best_and_failure_note(tmp_path, width):
    snap = _snap(make_sweep(tmp_path))
    lines = _render(W.render(snap, width), width)
    text = "\n".join(lines)
    assert "4 jobs: 1 completed, 1 running, 1 pending, 1 failed" in text
    assert "ETA 0:19:43 (running jobs)" in text
    assert "best val_macro_f1 0.9123: job 0" in text
    assert "job 2 FAILED: RuntimeError: CUDA out of memory" in text
    assert not snap.done  # a running and a pending job remain


def test_a_big_sweep_shows_the_jobs_that_matter_on_a_short_terminal(tmp_path):
    snap = _snap(make_sweep(tmp_path))
    lines = _render(W.render(snap, 80, height=8), 80)
    rows = [ln.split()[0] for ln in lines if ln.strip() and ln.split()[0].isdigit() and ln.split()[1] != "jobs:"]
    assert rows == ["1", "2", "3"]  # running, failed, pending; the completed job gave way
    assert "... 1 more jobs not shown" in "\n".join(lines)


def test_plain_lines_only_on_change(tmp_path):
    sweep = make_sweep(tmp_path)
    seen: dict = {}
    first = W.changes(seen, _snap(sweep))
    assert len(first) == 4
    assert first[0].startswith("job 0 finished: COMPLETED val_macro_f1=0.9123")
    assert first[1] == ("job 1 running step 1234/3600 val_macro_f1=0.7812 best=0.7812 98.8 samples/s ETA 0:19:43")
    assert first[2] == "job 2 finished: FAILED: RuntimeError: CUDA out of memory"
    assert W.changes(seen, _snap(sweep)) == []  # nothing changed, nothing printed
    with open(sweep / "1" / "metrics.jsonl", "a") as f:  # a new evaluation is a change
        f.write(json.dumps({"split": "val", "epoch": 2, "step": 2400, "macro_f1": 0.85}) + "\n")
    again = W.changes(seen, _snap(sweep))
    assert len(again) == 1 and "val_macro_f1=0.8500 best=0.8500" in again[0]


def test_evals_left():
    # called right after step N is counted, before that step's evaluation
    assert P.evals_left(0, 40, 20) == 2 and P.evals_left(20, 40, 20) == 2 and P.evals_left(21, 40, 20) == 1
    assert P.evals_left(40, 40, 20) == 1 and P.evals_left(41, 40, 20) == 0
    assert P.evals_left(0, 45, 20) == 3  # at 20, 40 and the last step
    assert P.evals_left(44, 45, 20) == 1


def test_progress_eta_counts_steps_and_evaluations_since_the_restart(tmp_path, monkeypatch):
    """The ETA is steps left x training time per step + evaluations left x time per evaluation (+ the test
    split), measured since this attempt started: run.log once said 11 s when ~78 s remained, because it
    multiplied the last step's time by the steps left and forgot every evaluation."""
    clock = [1000.0]
    monkeypatch.setattr(P.time, "time", lambda: clock[0])
    # resumed at step 40 of 100; validation every 20 steps (60, 80, 100); 100 val and 50 test examples
    pf = P.ProgressFile(tmp_path, total_steps=100, epochs=5, start_step=40, attempt=2, eval_every=20,
                        val_size=100, test_size=50)
    assert P.read(tmp_path)["step"] == 40 and P.read(tmp_path)["eta_s"] is None
    clock[0] += 10.0  # 10 steps of 1 s at 30 samples/s, no evaluation yet: one is estimated from throughput
    pf.update(50, 2, 30.0)
    got = P.read(tmp_path)
    per_eval = 100 / 30.0 / 3
    assert got["seconds_per_step"] == pytest.approx(1.0)
    assert got["eta_s"] == pytest.approx(50 * 1.0 + 3 * per_eval + 0.5 * per_eval, abs=0.1)
    clock[0] += 10.0
    pf.update(60, 3, 30.0)
    clock[0] += 8.0
    pf.evaluated(8.0)  # the evaluation at step 60 took 8 s: measured from now on
    clock[0] += 10.0
    pf.update(70, 3, 30.0)
    got = P.read(tmp_path)
    assert got["seconds_per_step"] == pytest.approx(1.0) and got["seconds_per_eval"] == pytest.approx(8.0)
    assert got["eta_s"] == pytest.approx(30 * 1.0 + 2 * 8.0 + 4.0)
    assert got["total_steps"] == 100 and got["attempt"] == 2 and got["start_step"] == 40
    clock[0] += 0.5
    pf.update(71, 3, 30.0)  # throttled: written at most about once a second
    assert P.read(tmp_path)["step"] == 70
    clock[0] += 0.5
    pf.update(100, 5, 30.0)  # the last step is always written
    got = P.read(tmp_path)  # the last validation and the test split are still to come
    assert got["step"] == 100 and got["eta_s"] == pytest.approx(8.0 + 4.0)


def pipeline_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_status_shows_step_total_and_eta(tmp_path):
    sweep = make_sweep(tmp_path, scheduler="local")
    _write(sweep / "sweep.json", {**json.loads((sweep / "sweep.json").read_text()), "jobs": [
        {**j, "job_id": str(os.getpid())} for j in json.loads((sweep / "sweep.json").read_text())["jobs"]]})
    r = pipeline_cli("status", str(sweep))
    lines = table_rows(r.stdout)
    assert "1234/3600" in lines["1"] and "0:19:43" in lines["1"], r.stdout
    assert "2400/2400" in lines["0"], r.stdout


def test_pipeline_version():
    r = pipeline_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("pipeline 0."), r.stdout + r.stderr


# ------------------------------------------------------------------------------------ real sweeps


def _watch_proc(sweep: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "watch", str(sweep), "--interval", "0.5"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.1)


@pytest.mark.slow
def test_watch_follows_a_local_sweep_to_its_end(shared_data, tmp_path):
    """`pipeline watch` started beside a blocking local sweep: a line per change, each job's "finished"
    line, the results table, exit 0; the sweep's own output shows the same "job k finished" lines."""
    sweep = tmp_path / "sweep"
    env = train_env(tmp_path)
    sweep_proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "-m", *TINY, "trainer.epochs=2", "trainer.lr=1e-3,3e-3",
         f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(sweep / "sweep.json")
        watcher = _watch_proc(sweep, env)
        out, err = watcher.communicate(timeout=600)
        s_out, s_err = sweep_proc.communicate(timeout=600)
    finally:
        sweep_proc.kill()
    assert watcher.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"watching {sweep} (local, 2 jobs")
    for n in (0, 1):
        mine = [ln for ln in lines if ln.startswith(f"job {n} ")]
        assert any(" running" in ln for ln in mine), mine  # seen while it ran
        assert any("step " in ln and "/" in ln for ln in mine), mine  # samples/s only once a step was timed
        assert mine[-1].startswith(f"job {n} finished: COMPLETED val_macro_f1="), mine
        assert sum("finished" in ln for ln in mine) == 1
    assert "best by val_macro_f1" in out  # the results table at the end
    assert sweep_proc.returncode == 0, s_err[-2000:]
    for n in (0, 1):
        assert f"job {n} finished: COMPLETED" in s_out  # the launcher's own progress lines (not a TTY)


@pytest.mark.slow
@pytest.mark.lsf
def test_watch_follows_a_fake_lsf_sweep_with_one_bjobs_per_refresh(fake_lsf, shared_data, tmp_path):
    env = train_env(tmp_path, **fake_lsf.env)
    res = run_py(tmp_path, "-m", "cluster=lsf", "hydra.launcher.aggregate=false", "trainer.lr=1e-3,3e-3",
                 *[o for o in TINY if not o.startswith("trainer.lr=")], "trainer.epochs=2",
                 f"hydra.sweep.dir={tmp_path / 'sweep'}", env=env, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    before = len(fake_lsf.calls("bjobs"))
    t0 = time.time()
    watcher = _watch_proc(tmp_path / "sweep", env)
    out, err = watcher.communicate(timeout=600)
    took = time.time() - t0
    assert watcher.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"watching {tmp_path / 'sweep'} (lsf, 2 jobs")
    for n in (0, 1):
        mine = [ln for ln in lines if ln.startswith(f"job {n} ")]
        assert mine[-1].startswith(f"job {n} finished: COMPLETED"), mine
    assert "best by val_macro_f1" in out
    polls = len(fake_lsf.calls("bjobs")) - before
    assert 1 <= polls <= took / 0.5 + 2, (polls, took)  # one bjobs per refresh at most
