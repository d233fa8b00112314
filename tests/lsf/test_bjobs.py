"""bsub/bjobs output parsing, on literal output as LSF 10.1 and OpenLava print it (no LSF needed)."""

from __future__ import annotations

import pytest

from pipeline.launch import SchedJob
from pipeline.launch import lsf as bjobs

# bjobs -a -o "jobid stat job_name exit_code" -json 2041 2042 (LSF 10.1.0.13): array 2041 has three
# elements (JOBID is the array's id, the index is in JOB_NAME), 2042 is a plain job that failed
LSF10_JSON = """{
  "COMMAND":"bjobs",
  "JOBS":4,
  "RECORDS":[
    {
      "JOBID":"2041",
      "STAT":"DONE",
      "JOB_NAME":"train[1]",
      "EXIT_CODE":""
    },
    {
      "JOBID":"2041",
      "STAT":"RUN",
      "JOB_NAME":"train[2]",
      "EXIT_CODE":""
    },
    {
      "JOBID":"2041",
      "STAT":"PEND",
      "JOB_NAME":"train[3]",
      "EXIT_CODE":""
    },
    {
      "JOBID":"2042",
      "STAT":"EXIT",
      "JOB_NAME":"train_aggregate",
      "EXIT_CODE":"1"
    }
  ]
}
"""

# a job LSF no longer knows (finished before CLEAN_PERIOD) next to one it knows; exit code 255
LSF10_JSON_NOT_FOUND = """{
  "COMMAND":"bjobs",
  "JOBS":2,
  "RECORDS":[
    {
      "JOBID":"2050",
      "STAT":"SSUSP",
      "JOB_NAME":"sweep[7]",
      "EXIT_CODE":""
    },
    {
      "ERROR":"Job <2049> is not found"
    }
  ]
}
"""

# LSB_BJOBS_DISPLAY_ENH=Y puts the index into JOBID
LSF10_JSON_DISPLAY_ENH = """{"COMMAND":"bjobs","JOBS":1,"RECORDS":[
  {"JOBID":"2060[12]","STAT":"USUSP","JOB_NAME":"x[12]","EXIT_CODE":""}]}"""

# OpenLava 4 / old LSF: bjobs -a -w 3001 3002 (EXEC_HOST is blank while pending)
OPENLAVA_COLUMNS = """\
JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME
3001    alice   DONE  normal     login1      node07      sweep[1]   Nov 29 13:21
3001    alice   RUN   normal     login1      4*node08    sweep[2]   Nov 29 13:21
3001    alice   PEND  normal     login1                  sweep[3]   Nov 29 13:21
                                             node09
3002    alice   EXIT  normal     login1      node07      sweep_aggregate Nov 29 13:22
"""

# default (narrow) bjobs truncates long names from the left: the index survives
LSF_NARROW_NO_HEADER = """\
3101    bob     RUN   gpua100    n-62-30-1   4*n-62-18-9 *ep_lr[12] Nov 29 14:02
3101    bob     PEND  gpua100    n-62-30-1               *ep_lr[13] Nov 29 14:02
"""


def test_split_and_stem() -> None:
    assert bjobs.split_job_id("123[4]") == ("123", 4)
    assert bjobs.split_job_id("123") == ("123", None)
    assert bjobs.file_stem("123[4]") == "123_4"
    assert bjobs.file_stem("123") == "123"
    assert bjobs.element_id("123", 4) == "123[4]"
    with pytest.raises(ValueError, match="not an LSF job id"):
        bjobs.split_job_id("12 3")


@pytest.mark.parametrize("text, expected", [
    ("Job <2041> is submitted to queue <gpua100>.\n", "2041"),
    ("Job <7> is submitted to default queue <normal>.\n", "7"),
    ("Cannot connect to LSF. Please wait ...\nJob <99> is submitted to queue <hpc>.\n", "99"),
])
def test_parse_bsub_output(text: str, expected: str) -> None:
    assert bjobs.parse_bsub_output(text) == expected


def test_parse_bsub_output_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="Job <id> is submitted"):
        bjobs.parse_bsub_output("Request aborted by esub. Job not submitted.\n")


def test_bjobs_command_one_call_for_all_arrays() -> None:
    ids = ["2041[1]", "2041[2]", "2042", "2041[3]", "10000[1]"]
    assert bjobs.bjobs_command(ids, "lsf10") == [
        "bjobs", "-a", "-o", "jobid stat job_name exit_code", "-json", "2041", "2042", "10000"]
    assert bjobs.bjobs_command(ids, "openlava") == ["bjobs", "-a", "-w", "2041", "2042", "10000"]
    with pytest.raises(ValueError, match="unknown LSF dialect"):
        bjobs.bjobs_command(ids, "pbs")


def test_json_array_elements_from_job_name() -> None:
    answer = bjobs.parse_bjobs_json(LSF10_JSON)
    assert answer.answered and not answer.not_found
    assert answer.jobs == {
        "2041[1]": SchedJob("2041[1]", "DONE", "done", None, "train[1]"),
        "2041[2]": SchedJob("2041[2]", "RUN", "running", None, "train[2]"),
        "2041[3]": SchedJob("2041[3]", "PEND", "pending", None, "train[3]"),
        "2042": SchedJob("2042", "EXIT", "exit", "1", "train_aggregate"),
    }
    assert answer.jobs["2041[1]"].finished and not answer.jobs["2041[2]"].finished


def test_json_not_found_record_and_suspended() -> None:
    answer = bjobs.interpret("lsf10", 255, LSF10_JSON_NOT_FOUND, "")
    assert answer.answered
    assert answer.not_found == {"2049"}
    assert answer.jobs["2050[7]"].raw == "SSUSP"  # suspended is not finished
    assert not answer.jobs["2050[7]"].finished


def test_json_index_in_jobid_or_jobindex() -> None:
    assert set(bjobs.parse_bjobs_json(LSF10_JSON_DISPLAY_ENH).jobs) == {"2060[12]"}
    rec = '{"RECORDS":[{"JOBID":"2070","JOBINDEX":"5","STAT":"RUN","JOB_NAME":"noindex"}]}'
    assert set(bjobs.parse_bjobs_json(rec).jobs) == {"2070[5]"}


def test_openlava_columns_with_header() -> None:
    answer = bjobs.interpret("openlava", 0, OPENLAVA_COLUMNS, "")
    assert {k: v.raw for k, v in answer.jobs.items()} == {
        "3001[1]": "DONE", "3001[2]": "RUN", "3001[3]": "PEND", "3002": "EXIT"}


def test_columns_without_header_and_truncated_names() -> None:
    answer = bjobs.parse_bjobs_columns(LSF_NARROW_NO_HEADER)
    assert {k: v.raw for k, v in answer.jobs.items()} == {"3101[12]": "RUN", "3101[13]": "PEND"}


def test_not_found_on_stderr_is_an_answer_not_a_failure() -> None:
    answer = bjobs.interpret("openlava", 255, "", "Job <3001> is not found\nJob <3002> is not found\n")
    assert answer.answered and answer.not_found == {"3001", "3002"} and not answer.jobs


@pytest.mark.parametrize("dialect, stdout, stderr", [
    ("lsf10", "", "LSF is processing your request. Please wait ...\nLSF is down. Please wait ...\n"),
    ("openlava", "", "batch system daemon not responding ... still trying\n"),
    ("lsf10", "<html>proxy error</html>", ""),
])
def test_transient_failure(dialect: str, stdout: str, stderr: str) -> None:
    answer = bjobs.interpret(dialect, 255, stdout, stderr)
    assert not answer.answered and answer.warning


def test_query_never_raises_for_scheduler_trouble() -> None:
    from pipeline.launch import run_command

    assert not bjobs.query(["1"], runner=lambda argv: run_command(["/nonexistent/bjobs", *argv[1:]])).answered
    assert not bjobs.query(["1"], runner=lambda argv: run_command(["sleep", "5"], timeout=0.1)).answered
    ok = bjobs.query(["2041[1]"], runner=lambda argv: (0, LSF10_JSON, ""))
    assert ok.answered and ok.jobs["2041[1]"].raw == "DONE"
