"""Issue 10, cases 2, 3, 6 and 9 without a cluster: the state a user sees is decided from the run directory,
the scheduler's answer for the current jobs, and the requeue marker (real ``pipeline`` CLI, a ``bjobs``
on PATH that prints captured output, and the fake LSF for refused submissions).

The same flows on a real LSF: tests/lsf_real/.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import rundir
from pipeline.launch import lsf as L
from tests.conftest import ROOT, TINY, run_py, train_env
from tests.results.make_runs import write_run, write_sweep_json

#: what volclava's bjobs says to the lsf10 form (exit 99)
EXIT_CODE_REJECTED = "<EXIT_CODE> in the format string is not a valid field name.\n"


def _bjobs_stub(bindir: Path, states: dict[str, str], reject_exit_code: bool = False) -> Path:
    """A ``bjobs`` that answers both forms with these states ({"1234[1]": "EXIT", "19": "PEND"}) and logs
    its calls; with ``reject_exit_code`` it refuses ``-o ... exit_code`` as volclava does."""
    bindir.mkdir(parents=True, exist_ok=True)
    recs = []
    lines = ["JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME"]
    for job_id, stat in states.items():
        base, index = L.split_job_id(job_id)
        name = f"train[{index}]" if index else "train_aggregate"
        recs.append({"JOBID": base, "STAT": stat, "JOB_NAME": name, "EXIT_CODE": "1" if stat == "EXIT" else ""})
        lines.append(f"{base}    root    {stat}  normal     host        host        {name}    Dec  1 10:00")
    (bindir / "answer.json").write_text(json.dumps({"COMMAND": "bjobs", "JOBS": len(recs), "RECORDS": recs}))
    (bindir / "answer.txt").write_text("\n".join(lines) + "\n")
    reject = f'printf %s "{EXIT_CODE_REJECTED.strip()}" >&2; echo >&2; exit 99' if reject_exit_code else ""
    script = bindir / "bjobs"
    script.write_text(f"""#!/bin/sh
echo "bjobs $*" >> "{bindir}/calls.log"
case "$*" in
  *exit_code*) {reject or f'cat "{bindir}/answer.json"; exit 0'} ;;
  *-json*) cat "{bindir}/answer.json" ;;
  *) cat "{bindir}/answer.txt" ;;
esac
""")
    script.chmod(0o755)
    return bindir


STATE_WORDS = ("COMPLETED", "RUNNING", "REQUEUED", "PENDING", "FAILED", "CORRUPT", "MISSING")


def status_rows(stdout: str) -> dict[str, str]:
    """job number -> its state word, from `pipeline status` output (any table layout)."""
    out = {}
    for line in stdout.splitlines():
        tokens = [t for t in re.split(r"[\s│|]+", line) if t]
        state = next((t for t in tokens[1:] if t in STATE_WORDS), None)
        if tokens and tokens[0].isdigit() and state:
            out[tokens[0]] = state
    return out


def _pipeline(*args: str, path_prefix: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60, cwd=ROOT)


def _lsf_sweep(root: Path, states: list[str], aggregate_id: str | None = None) -> None:
    jobs = []
    for n, state in enumerate(states):
        job = {"job_num": n, "job_id": f"1234[{n + 1}]", "overrides": [f"seed={n}"]}
        jobs.append(job)
        write_run(root / str(n), job["overrides"], state=state, job_id=job["job_id"], scheduler="lsf")
    write_sweep_json(root, "lsf", jobs)
    meta = json.loads((root / rundir.SWEEP_JSON).read_text())
    meta["submitit_folder"] = str(root / rundir.SUBMITIT_DIR)
    meta["aggregate_job_id"] = aggregate_id
    (root / rundir.SWEEP_JSON).write_text(json.dumps(meta))
    (root / rundir.SUBMITIT_DIR).mkdir(exist_ok=True)


# ------------------------------------------------------------------------------ case 6: self-requeue


def test_exit_during_a_requeue_is_not_failed(tmp_path):
    """bjobs shows EXIT for ~3 s between brequeue's kill and the new PEND: with the job's requeue marker
    that is `requeued`; without it (or long after it) the same answer is `failed`."""
    _lsf_sweep(tmp_path / "sweep", ["running", "running"])
    stub = _bjobs_stub(tmp_path / "bin", {"1234[1]": "EXIT", "1234[2]": "EXIT"})
    rundir.mark_requeue(tmp_path / "sweep" / rundir.SUBMITIT_DIR, "1234_1", "1234[1]")
    r = _pipeline("status", str(tmp_path / "sweep"), path_prefix=stub)
    states = status_rows(r.stdout)
    assert states == {"0": "REQUEUED", "1": "FAILED"}, r.stdout  # job 1 has no marker: a real failure
    assert r.returncode == 1  # job 1 failed


def test_points_waiting_in_a_running_packed_job_are_pending(tmp_path):
    """runs_per_job=3: one scheduler job runs points 0-2 one after another, so its RUN says nothing about
    point 2 before point 2 has started; when the job ends, a point it never reached has failed."""
    root = tmp_path / "sweep"
    jobs = [{"job_num": n, "job_id": f"1234[{n // 3 + 1}]", "overrides": [f"seed={n}"]} for n in range(6)]
    write_run(root / "0", ["seed=0"], state="completed", job_id="1234[1]", scheduler="lsf")
    write_run(root / "1", ["seed=1"], state="running", job_id="1234[1]", scheduler="lsf")
    write_sweep_json(root, "lsf", jobs)
    stub = _bjobs_stub(tmp_path / "bin", {"1234[1]": "RUN", "1234[2]": "PEND"})
    r = _pipeline("status", str(root), path_prefix=stub)
    assert status_rows(r.stdout) == {"0": "COMPLETED", "1": "RUNNING", "2": "PENDING", "3": "PENDING",
                                     "4": "PENDING", "5": "PENDING"}, r.stdout
    stub = _bjobs_stub(tmp_path / "bin", {"1234[1]": "EXIT", "1234[2]": "RUN"})
    r = _pipeline("status", str(root), path_prefix=stub)
    assert status_rows(r.stdout) == {"0": "COMPLETED", "1": "FAILED", "2": "FAILED", "3": "PENDING",
                                     "4": "PENDING", "5": "PENDING"}, r.stdout


def test_stale_marker_and_pending_after_requeue():
    from pipeline.launch import SchedJob
    from pipeline.launch.state import decide

    exit_ = SchedJob("1[1]", "EXIT", "exit", "130")
    pend = SchedJob("1[1]", "PEND", "pending")
    assert decide(rundir.RUNNING, True, True, exit_, True, True, 2.0).state == rundir.REQUEUED
    assert decide(rundir.RUNNING, True, True, exit_, True, True, rundir.REQUEUE_GRACE_S + 1).state == rundir.FAILED
    assert decide(rundir.RUNNING, True, True, pend, True, True, 500.0).state == rundir.REQUEUED
    assert decide(rundir.RUNNING, True, True, None, True, True, 1.0).state == rundir.REQUEUED
    assert decide(rundir.COMPLETED, True, True, exit_, True, True, 1.0).state == rundir.COMPLETED


def test_the_job_writes_the_marker_before_brequeue_and_clears_it_at_start(tmp_path, monkeypatch):
    """LsfJobEnvironment: the marker exists when brequeue runs, and a restarted job removes it."""
    from pipeline.launch.submitit_lsf.lsf import LsfJobEnvironment

    folder = tmp_path / ".submitit"
    folder.mkdir()
    seen = tmp_path / "seen"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "brequeue").write_text(f'#!/bin/sh\nls "{folder}" > "{seen}"\necho "Job <7> is being requeued"\n')
    (bindir / "brequeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("SUBMITIT_FOLDER", str(folder))
    monkeypatch.setenv("LSB_JOBID", "7")
    monkeypatch.setenv("LSB_JOBINDEX", "2")
    env = LsfJobEnvironment()
    env._requeue(1)
    assert "7_2" + rundir.REQUEUE_MARKER_SUFFIX in seen.read_text().split()
    assert rundir.requeue_age(folder, "7_2") is not None
    rundir.clear_requeue(folder, "7_2")  # what _handle_signals does when the job starts again
    assert rundir.requeue_age(folder, "7_2") is None


# ------------------------------------------------------------------------ case 2: aggregation job


def test_aggregate_job_pending_after_rerun_is_not_done(tmp_path):
    """results/ from the first aggregation is still there; the rerun's aggregation job 19 is pending."""
    sweep = tmp_path / "sweep"
    _lsf_sweep(sweep, ["completed", "running"], aggregate_id="19")
    (sweep / rundir.RESULTS_DIR).mkdir()
    (sweep / rundir.RESULTS_DIR / rundir.RESULTS_JSON).write_text("{}")
    stub = _bjobs_stub(tmp_path / "bin", {"1234[2]": "PEND", "19": "PEND"})
    r = _pipeline("status", str(sweep), path_prefix=stub)
    assert "aggregate job 19: PEND" in r.stdout, r.stdout
    assert "done" not in r.stdout.split("aggregate job 19:")[1]


def test_aggregate_done_only_with_results_written_after_its_submission(tmp_path):
    sweep = tmp_path / "sweep"
    _lsf_sweep(sweep, ["completed"], aggregate_id="19")
    meta = json.loads((sweep / rundir.SWEEP_JSON).read_text())
    rundir.set_aggregate_job(meta, "19")
    (sweep / rundir.SWEEP_JSON).write_text(json.dumps(meta))
    stub = _bjobs_stub(tmp_path / "bin", {"19": "DONE"})
    (sweep / rundir.RESULTS_DIR).mkdir()
    old = sweep / rundir.RESULTS_DIR / rundir.RESULTS_JSON
    old.write_text("{}")
    os.utime(old, (time.time() - 3600, time.time() - 3600))  # an earlier aggregation's
    assert "aggregate job 19: DONE (no current results/)" in _pipeline("status", str(sweep), path_prefix=stub).stdout
    os.utime(old)
    assert "aggregate job 19: done (results/ written)" in _pipeline("status", str(sweep), path_prefix=stub).stdout


# ------------------------------------------------------------------------ case 9: dialect


def test_lsf10_on_an_lsf_without_exit_code_is_detected_on_the_first_poll(tmp_path, monkeypatch, caplog):
    """The watcher asks once in lsf10, is refused (exit 99), answers in openlava at once, says so once
    (naming hydra.launcher.dialect=openlava) and keeps the openlava form from then on."""
    from pipeline.launch.submitit_lsf.lsf import LsfJob

    stub = _bjobs_stub(tmp_path / "bin", {"55[1]": "RUN", "55[2]": "DONE"}, reject_exit_code=True)
    monkeypatch.setenv("PATH", f"{stub}:{os.environ['PATH']}")
    w = LsfJob.watcher
    saved = w.dialect
    w.clear()
    w._registered.clear()
    try:
        w.dialect = "lsf10"
        for job in ("55[1]", "55[2]"):
            w.register_job(job)
        with caplog.at_level(logging.WARNING):
            w.update()
            w.update()
        assert w.get_state("55[1]", mode="cache") == "RUN" and w.get_state("55[2]", mode="cache") == "DONE"
        assert w.dialect == "openlava" and w._failures == 0
        said = [r.getMessage() for r in caplog.records if "dialect" in r.getMessage()]
        assert len(said) == 1 and "hydra.launcher.dialect=openlava" in said[0], said
        calls = (stub / "calls.log").read_text().splitlines()
        assert sum("exit_code" in c for c in calls) == 1 and len(calls) == 3, calls
    finally:
        w.clear()
        w._registered.clear()
        w.dialect = saved


def test_status_in_lsf10_on_such_an_lsf_names_the_setting(tmp_path):
    _lsf_sweep(tmp_path / "sweep", ["running"])
    stub = _bjobs_stub(tmp_path / "bin", {"1234[1]": "RUN"}, reject_exit_code=True)
    r = _pipeline("status", str(tmp_path / "sweep"), path_prefix=stub)
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(warnings) == 1 and "hydra.launcher.dialect=openlava" in warnings[0], r.stderr
    assert "RUNNING" in r.stdout


# ------------------------------------------------------------------------ case 3: refused submission


@pytest.mark.lsf
@pytest.mark.parametrize("existed", [False, True])
def test_refused_bsub_is_one_line_exit_2_and_leaves_nothing_it_made(tmp_path, fake_lsf, existed):
    """Issue 22 item 8: the refused launch removes what it made (a new sweep folder entirely; in a folder
    that was there, only its own files), so `ls -d outputs/multirun/*/ | tail -n 1` never picks it up."""
    fake_lsf.setenv("FAKE_LSF_QUEUES", "normal,hpc")  # bsub -q gpua100: "gpua100: No such queue", exit 255
    env = train_env(tmp_path, **fake_lsf.env)
    env.pop("HYDRA_FULL_ERROR", None)
    sweep = tmp_path / "sweep"
    if existed:
        (sweep / "notes").mkdir(parents=True)
        (sweep / "notes" / "keep.txt").write_text("mine")
    r = run_py(tmp_path, "-m", *TINY, "cluster=lsf", "hydra.launcher.queue=gpua100", "seed=0,1",
               f"hydra.sweep.dir={sweep}", env=env, timeout=120)
    err = [ln for ln in r.stderr.splitlines() if ln.strip() and "HYDRA_FULL_ERROR" not in ln]
    assert r.returncode == 2, r.stderr
    assert len(err) == 1 and "No such queue" in err[0] and "hydra.launcher.queue" in err[0], r.stderr
    assert "pipeline rerun" not in r.stderr and "pipeline logs" not in r.stderr
    if existed:
        assert sorted(p.relative_to(sweep).as_posix() for p in sweep.rglob("*")) == ["notes", "notes/keep.txt"]
    else:
        assert not sweep.exists()
    assert not (tmp_path / "outputs" / ".tmp").exists()  # the jobs' TMPDIR, made for this launch


def test_no_sbatch_is_one_line_exit_2_and_no_results(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = train_env(tmp_path)
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not (Path(p) / "sbatch").exists())
    env.pop("HYDRA_FULL_ERROR", None)
    sweep = tmp_path / "sweep"
    r = run_py(tmp_path, "-m", *TINY, "cluster=slurm", "seed=0,1", f"hydra.sweep.dir={sweep}", env=env, timeout=120)
    err = [ln for ln in r.stderr.splitlines() if ln.strip() and "HYDRA_FULL_ERROR" not in ln]
    assert r.returncode == 2, r.stderr
    assert len(err) == 1 and "sbatch not found" in err[0] and "cluster=local" in err[0], r.stderr
    assert "pipeline rerun" not in r.stderr
    assert not (sweep / rundir.RESULTS_DIR).exists()


def _no_jobs_everywhere(sweep: Path) -> None:
    """Every pipeline command on a folder with no submitted jobs: one line saying so, exit 2."""
    for args in (["status"], ["watch"], ["logs"], ["results"], ["aggregate"], ["best"], ["rerun", "--failed"]):
        r = _pipeline(args[0], str(sweep), *args[1:])
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "no jobs were submitted" in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_folder_with_no_submitted_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / rundir.SUBMITIT_DIR).mkdir(parents=True)
    (sweep / rundir.MULTIRUN_YAML).write_text("hydra: {}\n")
    _no_jobs_everywhere(sweep)
