"""``pipeline rerun`` and the scheduler answers it relies on, without a scheduler or training (seconds).

The real reruns (local processes, fake LSF, Slurm) are in test_local.py, test_lsf.py and test_slurm.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.cli.cli import app
from pipeline.launch import Answer
from pipeline.launch import lsf as L
from pipeline.launch import slurm as SL
from pipeline.launch import sweep_status as S
from pipeline.launch.rerun import RerunError, hydra_quote, launcher_settings, merge_overrides, parse_overrides, plan
from pipeline.results import results as R
from tests.results.make_runs import write_run, write_sweep_json

runner = CliRunner()


def test_merge_replaces_the_same_key_and_keeps_the_rest():
    old = ["model=tiny", "trainer.lr=1e12", "+extra=1", "seed=0"]
    assert merge_overrides(old, ["trainer.lr=3e-3"]) == ["model=tiny", "+extra=1", "seed=0", "trainer.lr=3e-3"]
    assert merge_overrides(old, ["~extra"]) == ["model=tiny", "trainer.lr=1e12", "seed=0", "~extra"]
    assert merge_overrides(old, []) == old


def test_overrides_split_into_the_jobs_and_the_launchers():
    task, launcher = parse_overrides(["trainer.lr=3e-3", "hydra.launcher.timeout_min=240",
                                      "hydra.launcher.setup=[a,b]"])
    assert task == ["trainer.lr=3e-3"] and launcher == {"timeout_min": 240, "setup": ["a", "b"]}
    for bad, said in (["trainer.lr=1,2"], "sweep"), (["hydra.sweep.dir=x"], "hydra.launcher"), \
                     (["trainer.lr=[1"], "does not parse"), (["~hydra.launcher.queue"], "only be set"):
        with pytest.raises(RerunError, match=said):
            parse_overrides(bad)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab /'\"\\$,=[]{}()~#*?;&|\n")), min_size=1, max_size=20))
def test_hydra_quote_round_trips(value: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        quoted = hydra_quote(value)
    except RerunError:
        assert "${" in value
        return
    assert OverridesParser.create().parse_override(f"k={quoted}").value() == value


def _lsf_sweep(root: Path, states: list[str]) -> None:
    jobs = []
    for n, state in enumerate(states):
        job = {"job_num": n, "job_id": f"1234[{n + 1}]", "run_dir": str(root / str(n)), "stdout": None,
               "stderr": None, "overrides": [f"seed={n}"]}
        jobs.append(job)
        if state != "missing":
            write_run(root / str(n), job["overrides"], state=state, job_id=job["job_id"], scheduler="lsf")
    write_sweep_json(root, "lsf", jobs)


def _bjobs(states: dict[int, str]):
    """A runner answering ``bjobs -json`` with these element states (others: not found)."""
    recs = [{"JOBID": "1234", "STAT": stat, "JOB_NAME": f"train[{n + 1}]", "EXIT_CODE": ""}
            for n, stat in states.items()]
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, json.dumps({"COMMAND": "bjobs", "JOBS": len(recs), "RECORDS": recs}), ""

    run.calls = calls
    return run


def test_a_rerun_keeps_the_launcher_settings_of_the_sweeps_earlier_reruns():
    """sweep.json ``reruns`` record what each rerun was given; their hydra.launcher.* settings hold for later
    reruns (the jobs' own overrides do not: those were pinned into each job's config), the newest winning."""
    meta = {"reruns": [{"overrides": ["trainer.lr=1e-4", "hydra.launcher.timeout_min=600",
                                      "hydra.launcher.queue=gpuv100"]},
                       {"overrides": ["hydra.launcher.queue=gpua100"]}, {"jobs": [3]}]}
    assert launcher_settings(meta, {}) == {"timeout_min": 600, "queue": "gpua100"}
    assert launcher_settings(meta, {"timeout_min": 30}) == {"timeout_min": 30, "queue": "gpua100"}
    assert launcher_settings({}, {"max_num_timeout": 2}) == {"max_num_timeout": 2}


def test_only_failed_corrupt_and_missing_jobs_are_chosen_after_one_query(tmp_path):
    _lsf_sweep(tmp_path, ["completed", "failed", "corrupt", "running", "running", "missing", "running"])
    bjobs = _bjobs({3: "RUN", 4: "PEND", 6: "EXIT"})
    with pytest.raises(RerunError, match="job 1: no 1234\\[2\\] submission pickle"):
        plan(tmp_path, [], runner=bjobs)  # chosen, but this synthetic sweep has no pickles
    assert len(bjobs.calls) == 1  # one scheduler query for the whole sweep
    answer = L.query(["1234"], "lsf10", _bjobs({3: "RUN", 4: "PEND", 6: "EXIT"}))
    statuses = S.sweep_status(R.load_sweep(tmp_path), answer)
    chosen = [st.run.job_num for st in statuses if st.state in ("failed", "corrupt", "missing")]
    assert chosen == [1, 2, 5, 6]  # 6: the scheduler says EXIT and there is no metrics.json


def test_nothing_to_rerun_is_one_line_exit_1(tmp_path):
    _lsf_sweep(tmp_path, ["completed", "running"])
    with pytest.raises(RerunError) as e:
        plan(tmp_path, [], runner=_bjobs({1: "RUN"}))
    assert e.value.code == 1 and str(e.value).startswith(f"nothing to rerun in {tmp_path}: 1 completed, 1 running")


def test_missing_jobs_are_left_alone_while_the_scheduler_does_not_answer(tmp_path):
    _lsf_sweep(tmp_path, ["completed", "missing"])
    with pytest.raises(RerunError, match="1 missing but the scheduler did not answer"):
        plan(tmp_path, [], runner=lambda argv: (255, "", "LSF is down"))


def test_job_option_must_name_a_failed_job(tmp_path):
    _lsf_sweep(tmp_path, ["completed", "failed"])
    with pytest.raises(RerunError, match="job 0 is completed"):
        plan(tmp_path, [], jobs=[0], runner=_bjobs({}))
    with pytest.raises(RerunError, match="no job 7"):
        plan(tmp_path, [], jobs=[7], runner=_bjobs({}))


@pytest.mark.parametrize("setup, said", [
    ("nothing", "no such directory"),
    ("run_dir", "not a sweep submitted by this project's launchers"),
    ("dry_run", "is a dry run"),
])
def test_cli_errors_are_one_line(tmp_path, setup, said):
    target = tmp_path / "x"
    if setup == "run_dir":
        write_run(target, ["seed=0"], state="failed")
    elif setup == "dry_run":
        write_sweep_json(target, "lsf", [{"job_num": 0, "job_id": "DRYRUN1[1]", "overrides": []}])
        data = json.loads((target / "sweep.json").read_text())
        (target / "sweep.json").write_text(json.dumps({**data, "dry_run": True}))
    result = runner.invoke(app, ["rerun", str(target), "--failed"])
    assert result.exit_code == 2 and said in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_needs_failed(tmp_path):
    result = runner.invoke(app, ["rerun", str(tmp_path)])
    assert result.exit_code == 2 and "--failed" in result.stderr


# ------------------------------------------------------------------------------ scheduler answers


def test_lsf_job_that_bjobs_forgot_without_metrics_is_failed(tmp_path):
    """Killed (no metrics.json) and forgotten since: bjobs -a lists every unfinished job, so it ended."""
    _lsf_sweep(tmp_path, ["completed", "running", "running"])
    sweep = R.load_sweep(tmp_path)
    answer = L.query(["1234"], "lsf10", _bjobs({2: "RUN"}))
    states = {st.run.job_num: (st.state, st.note) for st in S.sweep_status(sweep, answer)}
    assert states[1][0] == "failed" and "no longer lists" in states[1][1]
    assert states[2][0] == "running"
    blind = S.sweep_status(sweep, Answer("lsf"))  # not answering: the files alone say running
    assert [st.state for st in blind] == ["completed", "running", "running"]


def test_slurm_job_not_yet_in_sacct_is_asked_to_squeue(tmp_path):
    calls = []

    def run(argv):
        calls.append(argv[0])
        if argv[0] == "sacct":  # slurmdbd has only the array's master record so far
            return 0, "456|PENDING|0:0\n", ""
        return 0, "456_0|RUNNING\n456_1|PENDING\n", ""

    ans = SL.query(["456"], run)
    assert calls == ["sacct", "squeue"] and ans.answered
    assert ans.jobs["456_0"].state == "running" and ans.jobs["456_1"].state == "pending"
    calls.clear()
    ans = SL.query(["456"], lambda argv: (calls.append(argv[0]) or 0, "456_0|COMPLETED|0:0\n", ""))
    assert calls == ["sacct"]  # listed: one call
    ans = SL.query(["456"], lambda argv: (0, "", "") if argv[0] == "sacct" else (1, "", "slurm_load_jobs error"))
    assert not ans.answered and "squeue failed" in ans.warning  # cannot tell pending from gone
