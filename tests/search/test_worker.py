"""A study's workers: the decision table as a pure function, then the loop in real processes with a
``run_point`` that writes what a run writes (tests/search/fake_worker.py): exactly ``trials`` finished with two
workers on one journal, a worker killed mid-trial and restarted in its slot, pruning at a reported step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import rundir
from pipeline.search.space import parse_space
from pipeline.search.study import COMPLETE, FAIL, PRUNED, RUNNING, StudySettings, SweepStudy, TrialView
from pipeline.search.worker import (
    ASK,
    RESUME,
    RETRY,
    STOP,
    TELL,
    RunView,
    StudyFailed,
    WorkerRecord,
    decide,
    holders,
    read_records,
    run_worker,
)
from tests.conftest import ROOT
from tests.search import fake_worker

# ------------------------------------------------------------------------------------------ decisions


def _trials(*states: str) -> list[TrialView]:
    return [TrialView(n, s, {"trainer.lr": 1e-4}) for n, s in enumerate(states)]


def _records(**held) -> dict[int, WorkerRecord]:
    """_records(s0=2, s1=None, a3=5): slot 0 holds trial 2, slot 1 nothing, slot 3 was asking for trial 5."""
    out = {}
    for name, n in held.items():
        slot = int(name[1:])
        out[slot] = WorkerRecord(slot, trial=n) if name[0] == "s" else WorkerRecord(slot, asking=n)
    return out


@pytest.mark.parametrize("run, action, state", [
    (RunView(checkpoint=True), RESUME, None),
    (RunView(checkpoint=False), RETRY, None),
    (RunView(checkpoint=True, status="killed"), RESUME, None),
    (RunView(checkpoint=False, status="killed"), RETRY, None),
    (RunView(status=rundir.COMPLETED, value=0.8), TELL, COMPLETE),
    (RunView(status=rundir.PRUNED, value=0.3), TELL, PRUNED),
    (RunView(checkpoint=True, status=rundir.FAILED), TELL, FAIL),
])
def test_a_worker_holding_a_running_trial_finishes_that_trial(run, action, state):
    trials = _trials(COMPLETE, RUNNING, RUNNING)
    d = decide(0, trials, _records(s0=2, s1=1), run, target=3, max_failed=3)
    assert (d.action, d.trial, d.state) == (action, 2, state)
    if state == COMPLETE:
        assert d.value == 0.8


def test_a_requeued_worker_resumes_its_trial_even_when_the_study_looks_full():
    """8 trials: 7 finished and this worker's trial running. It resumes it; it does not stop or ask."""
    trials = _trials(*[COMPLETE] * 7, RUNNING)
    d = decide(1, trials, _records(s0=None, s1=7), RunView(checkpoint=True), target=8, max_failed=3)
    assert (d.action, d.trial) == (RESUME, 7)


@pytest.mark.parametrize("states, records, target, action, failed", [
    ([COMPLETE, PRUNED, COMPLETE], {}, 3, STOP, False),  # the study has `trials` finished
    ([COMPLETE, PRUNED, RUNNING], {1: WorkerRecord(1, trial=2)}, 3, STOP, False),  # the rest is held
    ([COMPLETE, RUNNING], {1: WorkerRecord(1, asking=1)}, 2, STOP, False),  # held by a worker killed mid-ask
    ([COMPLETE, PRUNED, RUNNING], {}, 3, ASK, False),  # a running trial nobody holds does not count
    ([COMPLETE, FAIL, FAIL], {}, 3, ASK, False),  # failed trials do not count: they are replaced
    ([COMPLETE, FAIL, FAIL, FAIL], {}, 3, STOP, True),  # ... until max_failed
    ([COMPLETE, COMPLETE, COMPLETE], {0: WorkerRecord(0, trial=2)}, 3, STOP, False),  # its trial is told
    ([COMPLETE], {0: WorkerRecord(0, trial=0)}, 3, ASK, False),  # killed after telling, before its record
    ([], {}, 3, ASK, False),
])
def test_a_worker_holding_nothing_stops_or_asks(states, records, target, action, failed):
    d = decide(0, _trials(*states), records, RunView(), target=target, max_failed=3)
    assert (d.action, d.failed) == (action, failed)
    assert d.trial is None and d.reason


def test_a_worker_killed_between_ask_and_record_takes_its_trial_up():
    trials = _trials(COMPLETE, RUNNING)
    assert holders(trials, _records(a0=1)) == {1: 0}
    d = decide(0, trials, _records(a0=1), RunView(), target=3, max_failed=3)
    assert (d.action, d.trial) == (RETRY, 1)
    # ... unless another worker recorded that number as its own (the lock was broken after the first died)
    assert holders(trials, _records(a0=1, s1=1)) == {1: 1}
    d = decide(0, trials, _records(a0=1, s1=1), RunView(), target=3, max_failed=3)
    assert d.action == ASK


# ------------------------------------------------------------------------------------------ the loop


def _study(tmp_path: Path, trials: int, lrs: str = "choice(1e-4, 3e-4, 1e-3, 3e-3)", **settings) -> Path:
    sweep = tmp_path / "sweep"
    SweepStudy.create(sweep, StudySettings(trials=trials, monitor="accuracy", **settings),
                      parse_space([f"trainer.lr={lrs}", "data.max_rows=200"]))
    return sweep


def _worker(sweep: Path, slot: int, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.search.fake_worker", str(sweep), str(slot)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 120) -> list[dict]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _assert_exact(sweep: Path, trials: int) -> SweepStudy:
    """Exactly `trials` finished, none running, each finished trial's run directory says the same once."""
    study = SweepStudy.open(sweep)
    views = study.trials()
    finished = [t for t in views if t.state in (COMPLETE, PRUNED)]
    assert len(finished) == trials, [(t.number, t.state) for t in views]
    assert not [t for t in views if t.state == RUNNING]
    for t in finished:
        status = json.loads(rundir.metrics_json(sweep / str(t.number)).read_text())["status"]
        assert status == {COMPLETE: rundir.COMPLETED, PRUNED: rundir.PRUNED}[t.state]
    assert all(r.trial is None for r in read_records(sweep).values())
    return study


def test_one_worker_runs_the_study_to_exactly_its_trials(tmp_path):
    sweep = _study(tmp_path, trials=5)
    outcomes = run_worker(sweep, fake_worker.run_point(sweep), slot=0)
    assert [(o.trial, o.how) for o in outcomes] == [(n, ASK) for n in range(5)]
    study = _assert_exact(sweep, 5)
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1", "2", "3", "4"]
    # Optuna's steps are the evaluation numbers; the value told is the run's best
    trial_id = study.storage.get_trial_id_from_study_id_trial_number(study.study_id, 0)
    frozen = study.storage.get_trial(trial_id)
    assert sorted(frozen.intermediate_values) == [1, 2, 3]
    assert frozen.value == pytest.approx(fake_worker.accuracy(frozen.params["trainer.lr"], 3))
    assert study.summary()["finished"] == 5 and study.summary()["best"]["value"] == pytest.approx(0.9)
    # a worker started on a finished study stops at once
    assert run_worker(sweep, fake_worker.run_point(sweep), slot=1) == []


def test_two_worker_processes_on_one_journal_finish_exactly_the_trials(tmp_path):
    sweep = _study(tmp_path, trials=8, workers=2)
    procs = [_worker(sweep, slot, FAKE_SLEEP="0.05") for slot in (0, 1)]
    runs = [_finish(p) for p in procs]
    _assert_exact(sweep, 8)
    numbers = [o["trial"] for r in runs for o in r]
    assert sorted(numbers) == list(range(8))  # every trial run once, by one worker
    assert all(runs), "both workers ran trials"
    for n in range(8):  # each trial started once
        assert len((sweep / str(n) / "starts.txt").read_text().splitlines()) == 1


@pytest.mark.parametrize("hang, first_eval, how", [("ckpt:2", 2, RESUME), ("before:1", 0, RETRY)])
def test_a_worker_killed_mid_trial_takes_the_same_trial_up_when_its_slot_runs_again(tmp_path, hang, first_eval,
                                                                                     how):
    """Slot 0 is SIGKILLed inside its first trial; slot 1 finishes every other trial and stops, because the
    rest is held; slot 0 run again resumes (checkpoint) or retries (none) that trial, in its run directory."""
    sweep = _study(tmp_path, trials=4, workers=2)
    victim = _worker(sweep, 0, FAKE_HANG=hang)
    hanging = next(iter(_wait_any(sweep, "hanging")))
    held = int(hanging.parent.name)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert read_records(sweep)[0].trial == held
    other = _finish(_worker(sweep, 1))
    assert held not in [o["trial"] for o in other] and len(other) == 3
    study = SweepStudy.open(sweep)
    assert sum(t.state in (COMPLETE, PRUNED) for t in study.trials()) == 3  # it waits for the held trial
    again = _finish(_worker(sweep, 0))
    assert [(o["trial"], o["how"]) for o in again] == [(held, how)]
    _assert_exact(sweep, 4)
    assert len(study.trials()) == 4  # no trial asked twice, none lost
    starts = [int(line.split()[1]) for line in (sweep / str(held) / "starts.txt").read_text().splitlines()]
    assert starts == [0, first_eval]
    rows = [json.loads(x) for x in rundir.metrics_jsonl(sweep / str(held)).read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30]  # the resumed trial's curve is whole, with no repeats


def _wait_any(sweep: Path, name: str, timeout: float = 60) -> list[Path]:
    deadline = time.time() + timeout
    while not (found := list(sweep.glob(f"*/{name}"))):
        assert time.time() < deadline, f"no {name} in {sweep}"
        time.sleep(0.05)
    return found


def test_a_worker_killed_after_its_run_ended_tells_it_without_training_again(tmp_path):
    sweep = _study(tmp_path, trials=2)
    study = SweepStudy.open(sweep)
    from pipeline.search.worker import WorkerRecord, write_record

    trial = study.ask()
    write_record(sweep, WorkerRecord(0, trial=trial.number))
    fake_worker.run_point(sweep)(study.space.overrides(trial.params), trial.number, lambda step, m: False)
    outcomes = run_worker(sweep, fake_worker.run_point(sweep), slot=0)
    assert (outcomes[0].trial, outcomes[0].how, outcomes[0].state) == (trial.number, TELL, COMPLETE)
    assert len((sweep / str(trial.number) / "starts.txt").read_text().splitlines()) == 1
    _assert_exact(sweep, 2)


def test_the_pruner_stops_trials_that_cannot_learn_at_a_reported_evaluation(tmp_path):
    """Half the learning rates cannot learn (accuracy 0.1 against 0.9): with asha, those asked after a good
    trial completed are pruned at their first evaluation; their run ends pruned, its curve kept."""
    sweep = _study(tmp_path, trials=8, lrs="choice(1e-4, 1e-1)", pruner="asha", sampler="random", seed=3)
    run_worker(sweep, fake_worker.run_point(sweep), slot=0)
    study = _assert_exact(sweep, 8)
    views = study.trials()
    pruned = [t for t in views if t.state == PRUNED]
    assert pruned, [(t.number, t.state, t.params) for t in views]
    first_good = min(t.number for t in views if t.params["trainer.lr"] == 1e-4)
    for t in views:
        if t.params["trainer.lr"] == 1e-1 and t.number > first_good:
            assert t.state == PRUNED
    for t in pruned:
        assert t.params["trainer.lr"] == 1e-1
        done = json.loads(rundir.metrics_json(sweep / str(t.number)).read_text())
        assert done["status"] == rundir.PRUNED and done["pruned_at_step"] < 30  # before its last evaluation
        assert len(rundir.metrics_jsonl(sweep / str(t.number)).read_text().splitlines()) == 1
        assert not (sweep / str(t.number) / rundir.CHECKPOINTS_DIR).exists()


def test_a_failed_trial_is_told_fail_and_replaced_until_max_failed(tmp_path, monkeypatch):
    sweep = _study(tmp_path, trials=4, lrs="choice(1e-4, 1e-3)", sampler="random", seed=1, max_failed=10)
    monkeypatch.setenv("FAKE_FAIL_LR", "0.001")
    outcomes = run_worker(sweep, fake_worker.run_point(sweep), slot=0)
    study = _assert_exact(sweep, 4)
    failed = [t for t in study.trials() if t.state == FAIL]
    assert len(failed) == sum(o.state == FAIL for o in outcomes) >= 1
    assert all(t.params["trainer.lr"] == 1e-3 for t in failed)
    assert len(study.trials()) == 4 + len(failed)  # each failure replaced by a new trial

    sweep2 = _study(tmp_path / "all", trials=4, lrs="choice(1e-3)", max_failed=2)
    with pytest.raises(StudyFailed, match=r"2 trials failed \(max_failed=2\)"):
        run_worker(sweep2, fake_worker.run_point(sweep2), slot=0)
    assert [t.state for t in SweepStudy.open(sweep2).trials()] == [FAIL, FAIL]


def test_the_value_told_is_the_run_directorys_monitor_not_what_run_point_returned(tmp_path):
    """A config whose trainer.monitor differs from the study's makes fit return another metric: the study
    takes the monitored one from metrics.json."""
    sweep = _study(tmp_path, trials=1)

    def run_point(overrides, number, on_eval):
        (sweep / str(number)).mkdir()
        rundir.metrics_json(sweep / str(number)).write_text(json.dumps(
            {"status": rundir.COMPLETED, "val": {"accuracy": 0.7, "macro_f1": 0.1}}))
        return 0.1

    (outcome,) = run_worker(sweep, run_point, slot=0)
    assert outcome.value == 0.7 and SweepStudy.open(sweep).trials()[0].value == 0.7


@pytest.mark.parametrize("status, moved", [("killed", True), ("gave_up", True), (rundir.COMPLETED, False),
                                           (rundir.PRUNED, False), (rundir.FAILED, False)])
def test_a_rerun_sets_aside_only_a_stopped_attempt_not_a_run_that_ended(tmp_path, status, moved):
    """``pipeline rerun`` of a study sets aside the held trial's metrics.json before its worker comes back. A
    run that ended before its worker could tell the study keeps it, so the new worker tells it (TELL) instead
    of training the trial again from the start."""
    from pipeline.search.worker import run_view, set_aside_result

    run_dir = tmp_path / "3"
    run_dir.mkdir()
    rundir.metrics_json(run_dir).write_text(json.dumps({"status": status, "val": {"accuracy": 0.8}}))
    where = set_aside_result(run_dir)
    assert (where is not None) == moved
    assert rundir.metrics_json(run_dir).is_file() != moved
    if not moved:
        assert run_view(run_dir, "accuracy").status == status


def test_a_trial_told_between_the_two_reads_of_a_decision_counts_once(tmp_path, monkeypatch):
    """Worker 1 tells its trial and clears its record without the ask lock, so it can land between worker 0's
    reads of the records and of the trials. The trial must count once (finished, or held by worker 1): counted
    neither way, worker 0 would ask one trial more than the study's one."""
    import pipeline.search.worker as W
    from pipeline.search.worker import write_record

    sweep = _study(tmp_path, trials=1)
    held = SweepStudy.open(sweep).ask()
    write_record(sweep, WorkerRecord(1, trial=held.number))
    landed: list[bool] = []

    def land_once() -> None:
        if not landed:
            landed.append(True)
            SweepStudy.open(sweep).tell(held.number, COMPLETE, 0.9)
            write_record(sweep, WorkerRecord(1))

    real_trials, real_records = SweepStudy.trials, W.read_records

    def trials(self):
        out = real_trials(self)
        land_once()
        return out

    def records(path):
        out = real_records(path)
        land_once()
        return out

    monkeypatch.setattr(SweepStudy, "trials", trials)
    monkeypatch.setattr(W, "read_records", records)
    assert run_worker(sweep, fake_worker.run_point(sweep), slot=0) == []  # it stops: the study has its trial
    assert landed
    monkeypatch.undo()
    assert [(t.number, t.state) for t in SweepStudy.open(sweep).trials()] == [(held.number, COMPLETE)]
