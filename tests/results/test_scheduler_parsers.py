"""Scheduler output parsers on captured command output, and the merge with run-directory states."""

from __future__ import annotations

from pipeline.launch import lsf as L
from pipeline.launch import slurm as SL
from pipeline.launch import sweep_status as S
from tests.results.lsf_captures import bjobs_json

# LSF 10.1: bjobs -a -o "jobid stat job_name exit_code" -json 1234 9999
BJOBS_JSON = bjobs_json('''    {
      "ERROR":"Job <9999> is not found"
    }''')

# old LSF / OpenLava: plain bjobs -a 1234 (EXEC_HOST empty while pending, JOB_NAME truncated with '*')
BJOBS_PLAIN = """JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME
1234    s123456 DONE  hpc        n-62-30-1   n-62-31-7   train[1]   Jan  1 10:00
1234    s123456 EXIT  hpc        n-62-30-1   n-62-31-7   train[2]   Jan  1 10:00
1234    s123456 RUN   hpc        n-62-30-1   4*n-62-31-8 *_sweep[3] Jan  1 10:00
                                             4*n-62-31-9
1234    s123456 PEND  hpc        n-62-30-1               train[4]   Jan  1 10:00
1240    s123456 PEND  hpc        n-62-30-1               aggregate  Jan  1 10:00
"""

SACCT = """456_0|COMPLETED|0:0
456_0.batch|COMPLETED|0:0
456_0.extern|COMPLETED|0:0
456_1|FAILED|1:0
456_1.batch|FAILED|1:0
456_2|RUNNING|0:0
456_[3-4%2]|PENDING|0:0
457|CANCELLED by 1000|0:15
"""


def test_parse_bjobs_json():
    jobs = L.parse_bjobs_json(BJOBS_JSON).jobs
    assert {k: (v.raw, v.state) for k, v in jobs.items()} == {
        "1234[1]": ("DONE", "done"), "1234[2]": ("EXIT", "exit"),
        "1234[3]": ("RUN", "running"), "1234[4]": ("PEND", "pending"),
    }
    assert jobs["1234[2]"].exit_code == "1" and jobs["1234[1]"].exit_code is None


def test_parse_bjobs_json_with_element_ids():
    text = '{"COMMAND":"bjobs","JOBS":1,"RECORDS":[{"JOBID":"1234[7]","STAT":"USUSP","JOB_NAME":"x"}]}'
    jobs = L.parse_bjobs_json(text).jobs
    assert jobs["1234[7]"].state == "running"


def test_parse_bjobs_plain():
    jobs = L.parse_bjobs_columns(BJOBS_PLAIN).jobs
    assert {k: v.raw for k, v in jobs.items()} == {
        "1234[1]": "DONE", "1234[2]": "EXIT", "1234[3]": "RUN", "1234[4]": "PEND", "1240": "PEND"}


def test_parse_sacct_expands_pending_ranges_and_skips_steps():
    jobs = SL.parse_sacct(SACCT)
    assert {k: v.state for k, v in jobs.items()} == {
        "456_0": "done", "456_1": "exit", "456_2": "running", "456_3": "pending", "456_4": "pending",
        "457": "exit"}
    assert jobs["457"].raw == "CANCELLED"


def test_parse_squeue():
    jobs = SL.parse_squeue("456_2|RUNNING\n456_3|PENDING\n")
    assert jobs["456_2"].state == "running" and jobs["456_3"].state == "pending"


def test_lsf_falls_back_to_plain_when_json_is_rejected():
    calls = []

    def runner(argv):
        calls.append(argv)
        if "-json" in argv:
            return 255, "", "bjobs: illegal option -- j\nUsage: bjobs ..."
        return 0, BJOBS_PLAIN, ""

    ans = L.query(["1234"], "lsf10", runner)
    assert ans.answered and ans.jobs["1234[3]"].raw == "RUN"
    assert len(calls) == 2 and calls[1] == ["bjobs", "-a", "-w", "1234"]
    assert ans.fallback == "openlava" and "hydra.launcher.dialect=openlava" in ans.warning


def test_lsf_down_is_a_warning():
    def runner(argv):
        return 255, "", "LSF is down. Please wait ..."

    ans = L.query(["1234"], "lsf10", runner)
    assert not ans.answered and "bjobs failed (exit 255" in ans.warning


def test_lsf_forgotten_jobs_answer_empty():
    def runner(argv):
        return 255, "", "Job <1234> is not found"

    ans = L.query(["1234"], "lsf10", runner)
    assert ans.answered and ans.jobs == {}


def test_missing_binary():
    ans = SL.query(["456"], lambda argv: (127, "", f"{argv[0]}: command not found"))
    assert not ans.answered and ans.warning


def test_local_pid_liveness(tmp_path):
    import os

    from pipeline.results.runs import load_sweep
    from tests.results.make_runs import write_run, write_sweep_json

    me, gone = str(os.getpid()), "999999999"
    write_run(tmp_path / "0", ["seed=0"], state="running", job_id=me)
    write_run(tmp_path / "1", ["seed=1"], state="running", job_id=gone)
    write_run(tmp_path / "2", ["seed=2"], job_id="999999998")
    write_sweep_json(tmp_path, "local", [{"job_num": i, "job_id": j, "overrides": [f"seed={i}"]}
                                         for i, j in ((0, me), (1, gone), (2, "999999998"))])
    sweep = load_sweep(tmp_path)
    statuses = {st.run.label: st for st in S.sweep_status(sweep, S.query_sweep(sweep))}
    assert statuses["0"].state == "running" and statuses["0"].sched == "alive"
    assert statuses["1"].state == "failed" and "no metrics.json" in statuses["1"].note
    assert statuses["2"].state == "completed" and statuses["2"].sched == ""  # finished: not looked up
