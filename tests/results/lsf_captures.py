"""Scheduler output captured from LSF 10.1, shared by the tests that parse it or put it behind a stub."""


def bjobs_json(*extra_records: str) -> str:
    """What ``bjobs -a -o "jobid stat job_name exit_code" -json 1234 ...`` prints (LSF's own layout): array
    1234's four elements (DONE, EXIT with exit code 1, RUN, PEND), then ``extra_records`` (record texts)."""
    records = ARRAY_1234 + "".join(",\n" + r for r in extra_records)
    count = 4 + len(extra_records)
    return f'{{\n  "COMMAND":"bjobs",\n  "JOBS":{count},\n  "RECORDS":[\n{records}\n  ]\n}}\n'


ARRAY_1234 = """    {
      "JOBID":"1234",
      "STAT":"DONE",
      "JOB_NAME":"train[1]",
      "EXIT_CODE":""
    },
    {
      "JOBID":"1234",
      "STAT":"EXIT",
      "JOB_NAME":"train[2]",
      "EXIT_CODE":"1"
    },
    {
      "JOBID":"1234",
      "STAT":"RUN",
      "JOB_NAME":"train[3]",
      "EXIT_CODE":""
    },
    {
      "JOBID":"1234",
      "STAT":"PEND",
      "JOB_NAME":"train[4]",
      "EXIT_CODE":""
    }"""
