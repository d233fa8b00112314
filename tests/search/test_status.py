"""A study in ``pipeline status`` and ``watch``: the workers' states as a pure function, then a study folder
on disk (real journal, real local "scheduler": process ids) shown above its trials, a trial held by a dead
worker saying so, every line within 80 columns; and a grid sweep's status never importing Optuna."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import rundir
from pipeline.cli.cli import app
from pipeline.launch import S_DONE, S_EXIT, S_PENDING, S_RUNNING, SchedJob
from pipeline.results import watch as W
from pipeline.search.space import parse_space
from pipeline.search.status import DONE, UNKNOWN, worker_state
from pipeline.search.study import StudySettings, SweepStudy
from pipeline.search.worker import WorkerRecord, run_worker, write_record
from tests.conftest import ROOT
from tests.results.make_runs import grid_sweep
from tests.search import fake_worker
from tests.table_fit import assert_fits, render

PEND, RUN, EXIT, DONE_ = (SchedJob("1[1]", "PEND", S_PENDING), SchedJob("1[1]", "RUN", S_RUNNING),
                          SchedJob("1[1]", "EXIT", S_EXIT, exit_code="130"), SchedJob("1[1]", "DONE", S_DONE))


@pytest.mark.parametrize("job, answered, age, holds, over, state, says", [
    (PEND, True, None, None, False, rundir.PENDING, ""),
    (PEND, True, 30.0, 3, False, rundir.REQUEUED, "pending again after a requeue"),
    (RUN, True, None, 3, False, rundir.RUNNING, ""),
    (EXIT, True, 5.0, 3, False, rundir.REQUEUED, "requeue requested 5 s ago"),  # LSF's EXIT between kill and PEND
    (EXIT, True, None, 3, False, rundir.FAILED, "EXIT, exit code 130, holding trial 3"),  # bkill mid-trial
    (EXIT, True, None, None, False, rundir.FAILED, "EXIT, exit code 130, holding no trial"),  # killed between trials
    (EXIT, True, None, None, True, DONE, "EXIT, exit code 130"),  # the study is finished: nothing to bring back
    (DONE_, True, None, None, False, DONE, ""),  # stopped: the rest is held by other workers
    (DONE_, True, None, 3, False, rundir.FAILED, "DONE holding trial 3"),  # its run dir shows it died
    (None, True, None, 3, False, rundir.FAILED, "ended holding trial 3 (the scheduler no longer lists it)"),
    (None, True, None, None, False, DONE, ""),
    (None, False, None, 3, False, UNKNOWN, "the scheduler did not answer"),
])
def test_a_workers_state(job, answered, age, holds, over, state, says):
    assert worker_state(job, answered, True, age, holds, over) == (state, says)


# ------------------------------------------------------------------------------------------ on disk


def dead_pid() -> str:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return str(p.pid)


@pytest.fixture
def study_sweep(tmp_path: Path) -> tuple[Path, str, str]:
    """4 trials, 2 workers, local: slot 0 finished trials 0 and 1 and ended (its result pickle); slot 1 was
    killed holding trial 2 (two evaluations in, no metrics.json). Returns (sweep, job of slot 0, of slot 1)."""
    sweep = tmp_path / "sweep"
    study = SweepStudy.create(sweep, StudySettings(trials=4, workers=2, monitor="accuracy", seed=0),
                              parse_space(["trainer.lr=choice(1e-3, 3e-2)", "data.max_rows=200"]))
    run_worker(sweep, fake_worker.run_point(sweep), slot=0, max_trials=2)
    held = study.ask()
    write_record(sweep, WorkerRecord(1, trial=held.number))
    jobs = dead_pid(), dead_pid()
    run = sweep / str(held.number)
    rundir.hydra_file(run, rundir.OVERRIDES_YAML).parent.mkdir(parents=True)
    rundir.hydra_file(run, rundir.OVERRIDES_YAML).write_text(f"- trainer.lr={held.params['trainer.lr']}\n")
    rundir.metrics_jsonl(run).write_text("".join(json.dumps({"split": "val", "step": s, "accuracy": 0.5}) + "\n"
                                                 for s in (10, 20)))
    rundir.run_info_json(run).write_text(json.dumps({"job_id": jobs[1], "scheduler": "local"}))
    folder = sweep / rundir.SUBMITIT_DIR
    (folder / jobs[0]).mkdir(parents=True)
    (folder / jobs[0] / f"{jobs[0]}_0_result.pkl").write_bytes(b"")  # slot 0 ended with a result
    workers = [{"slot": s, "job_id": j, "stdout": None, "stderr": None, "previous_job_ids": []}
               for s, j in enumerate(jobs)]
    rundir.write_manifest(sweep, rundir.manifest(scheduler="local", submitit_folder=folder, arrays=[], jobs=[],
                                                 gpus_per_job=0, study={"name": study.name, "workers": workers}))
    return sweep, *jobs


def test_status_shows_the_study_above_its_trials_and_the_dead_workers_trial(study_sweep, monkeypatch):
    sweep, job0, job1 = study_sweep
    monkeypatch.chdir(sweep.parent)
    sweep = Path(sweep.name)  # as a user types it: the commands it prints name it so
    out = CliRunner().invoke(app, ["status", str(sweep)], env={"COLUMNS": "80"})
    assert out.exit_code == 1, out.output  # a worker to bring back
    text = out.stdout
    assert_fits(text, 80, [["2", job1, "FAILED", "its worker 1", "died"], ["0", "COMPLETED"]])
    lines = text.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["job"])
    panel = "\n".join(lines[:header])
    assert "study sweep: tpe sampler, median pruner, maximize val_accuracy" in panel
    assert "trials: 2 of 4 finished (2 completed, 0 pruned), 1 running, 0 failed" in panel
    assert "best so far: trial " in panel and "val_accuracy 0.9000\n  trainer.lr=0.001" in panel
    assert "workers: 1 done, 1 failed" in panel
    assert f"worker 1 (job {job1}) failed: gone, holding trial 2" in panel
    assert f"`pipeline rerun {sweep} --failed`" in panel
    said = " ".join(text.split())  # the note under the table, unwrapped
    assert f"job 2: its worker 1 (job {job1}) died; `pipeline rerun {sweep} --failed` resumes it" in said


def test_watch_ends_when_the_workers_have_ended_not_when_the_trials_have(study_sweep):
    sweep, _, job1 = study_sweep
    snap = W.snapshot(sweep, "val_accuracy")
    assert snap.done and snap.workers_left == 0
    view = render(W.render(snap, 80), 80)
    assert_fits(view, 80, [["trials: 2 of 4 finished"]])
    # the same study just submitted: its workers pending, no trial yet
    meta = rundir.read_manifest(sweep)
    for d in [p for p in sweep.iterdir() if p.name.isdigit()]:
        shutil.rmtree(d)
    meta["study"]["workers"] = [{"slot": 0, "job_id": str(os.getpid())}]  # alive: this process
    rundir.write_manifest(sweep, meta)
    snap = W.snapshot(sweep, "val_accuracy")
    assert snap.jobs == [] and snap.workers_left == 1 and not snap.done


PROBE = """
import sys
from pipeline.cli.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print("LOADED=" + ",".join(m for m in ("optuna", "pipeline.search.status", "pipeline.search.study")
                            if m in sys.modules), file=sys.stderr)
"""


def test_a_grid_sweeps_status_never_imports_optuna(tmp_path: Path, study_sweep):
    grid_sweep(tmp_path / "grid", scheduler="lsf")
    for sweep, loaded in ((tmp_path / "grid", ""), (study_sweep[0], "optuna")):
        p = subprocess.run([sys.executable, "-c", PROBE, "status", str(sweep), "--no-scheduler"], cwd=ROOT,
                           capture_output=True, text=True)
        said = next(ln for ln in p.stderr.splitlines() if ln.startswith("LOADED="))
        assert said.startswith(f"LOADED={loaded}"), p.stderr


# ------------------------------------------------------------------------------------------ rerun


def test_rerun_of_a_study_says_in_one_line_why_it_has_nothing_to_do(study_sweep):
    """A trial's config cannot change on a rerun; a study whose workers all run (or that is finished) has no
    worker to bring back; the failed worker's own pickle is what a rerun resubmits (here there is none)."""
    from pipeline.launch.rerun import RerunError
    from pipeline.search.rerun import rerun_workers as rerun

    sweep, _, job1 = study_sweep
    with pytest.raises(RerunError, match="is a study: its trials keep their config") as e:
        rerun(sweep, ["trainer.lr=1e-4"])
    assert e.value.code == 2
    with pytest.raises(RerunError, match=f"worker 1: no {job1} submission pickle under") as e:
        rerun(sweep, [])
    meta = rundir.read_manifest(sweep)
    meta["study"]["workers"][1]["job_id"] = str(os.getpid())  # slot 1 alive: nothing failed
    rundir.write_manifest(sweep, meta)
    with pytest.raises(RerunError, match="nothing to rerun in .*: worker 0 done, worker 1 running") as e:
        rerun(sweep, [])
    assert e.value.code == 1
    held = SweepStudy.open(sweep)
    held.tell(2, "COMPLETE", 0.5)
    held.tell(held.ask().number, "PRUNED")
    with pytest.raises(RerunError, match="the study has its 4 trials finished .3 completed, 1 pruned.") as e:
        rerun(sweep, [])
    assert e.value.code == 1
