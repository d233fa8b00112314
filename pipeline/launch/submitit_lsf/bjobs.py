"""LSF's answers: ``bsub``'s output, ``bjobs`` output and LSF job ids, as pure functions of the text,
and ``query`` (one ``bjobs`` call).

Job ids are strings: ``"123"`` for a plain job, ``"123[4]"`` for element 4 of array 123. One ``bjobs``
call asks about every array at once (``bjobs <array id>`` lists all of its elements).

The backend (:class:`pipeline.launch.lsf.LsfBackend`) and this package's executor both read LSF through
these; they import nothing of either.

Dialects:

- ``lsf10`` (IBM Spectrum LSF 10.1): ``bjobs -a -o "jobid stat job_name exit_code" -json <ids>``. An
  array element shows as JOBID ``"123"`` with JOB_NAME ``"name[4]"`` (or as JOBID ``"123[4]"`` where
  ``LSB_BJOBS_DISPLAY_ENH=Y``, or with a JOBINDEX field); a job LSF has forgotten comes back as a record
  with only ``ERROR: "Job <123> is not found"``.
- ``openlava`` (OpenLava, volclava and old LSF: no ``exit_code`` field, maybe no ``-o``/``-json``):
  ``bjobs -a -w <ids>``, parsed by columns under the ``JOBID USER STAT QUEUE FROM_HOST EXEC_HOST
  JOB_NAME SUBMIT_TIME`` header (EXEC_HOST is blank for pending jobs, so columns are found by content).

An LSF that rejects the lsf10 form (``<EXIT_CODE> ... is not a valid field name``, exit 99, or an illegal
``-o``) is answered at once in the openlava form, and the answer says so (``fallback``, ``warning``), so a
caller can tell the user once to set ``hydra.launcher.dialect=openlava`` instead of retrying forever.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from pipeline.errors import first_line
from pipeline.launch import (
    S_DONE,
    S_EXIT,
    S_PENDING,
    S_RUNNING,
    S_UNKNOWN,
    Answer,
    Runner,
    SchedJob,
    run_command,
)

DIALECTS = ("lsf10", "openlava")
#: states after which a job never runs again (unless someone brequeues it)
FINISHED_STATES = frozenset({"DONE", "EXIT"})
#: states of a job that is not finished: suspended jobs (PSUSP, USUSP, SSUSP) are not finished, UNKWN
#: (mbatchd lost sbatchd) and ZOMBI (being killed) end as EXIT later
UNFINISHED_STATES = frozenset({"PEND", "PROV", "PSUSP", "RUN", "USUSP", "SSUSP", "WAIT", "UNKWN", "ZOMBI"})
STATES = {
    "PEND": S_PENDING, "PSUSP": S_PENDING, "WAIT": S_PENDING,
    "RUN": S_RUNNING, "USUSP": S_RUNNING, "SSUSP": S_RUNNING, "PROV": S_RUNNING, "UNKWN": S_RUNNING,
    "ZOMBI": S_RUNNING, "DONE": S_DONE, "EXIT": S_EXIT,
}
BJOBS_FIELDS = "jobid stat job_name exit_code"
DIALECT_HINT = "set hydra.launcher.dialect=openlava"

_ID_RE = re.compile(r"^(?P<base>[^\[\]\s]+)(?:\[(?P<index>\d+)\])?$")
_NAME_INDEX_RE = re.compile(r"\[(?P<index>\d+)\]$")
_NOT_FOUND_RE = re.compile(r"Job <(?P<id>[^>]+)> is not found")
_SUBMITTED_RE = re.compile(r"Job <(?P<id>\d+)> is submitted")
_REJECTED_RE = re.compile(r"not a valid field name|invalid field name|illegal option|unknown option|"
                          r"invalid option", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------ ids


def split_job_id(job_id: str) -> tuple[str, int | None]:
    """``"123[4]"`` -> ``("123", 4)``; ``"123"`` -> ``("123", None)``."""
    m = _ID_RE.match(job_id.strip())
    if m is None:
        raise ValueError(f"not an LSF job id: {job_id!r} (expected 123 or 123[4])")
    index = m.group("index")
    return m.group("base"), None if index is None else int(index)


def base_id(job_id: str) -> str:
    try:
        return split_job_id(job_id)[0]
    except ValueError:
        return job_id


def element_id(base: str, index: int | None) -> str:
    return base if not index else f"{base}[{index}]"


def file_stem(job_id: str) -> str:
    """The file-name form of a job id, as LSF writes ``%J_%I``: ``"123[4]"`` -> ``"123_4"``."""
    base, index = split_job_id(job_id)
    return base if not index else f"{base}_{index}"


def parse_bsub_output(stdout: str) -> str:
    """The job id from ``Job <123> is submitted to queue <normal>.``; ValueError if there is none."""
    m = _SUBMITTED_RE.search(stdout)
    if m is None:
        raise ValueError(f"bsub did not say 'Job <id> is submitted': {stdout.strip()[:500]!r}")
    return m.group("id")


def what_to_change(said: str) -> str:
    """For a refused ``bsub``: the setting to change, from what LSF answered."""
    low = said.lower()
    if "queue" in low:
        return "set hydra.launcher.queue to a queue that `bqueues` lists (or pick another cluster= preset)"
    if "project" in low:
        return "set hydra.launcher.project to a project you may charge"
    if "memory" in low or "rusage" in low or "resource" in low:
        return "lower the memory/resource request (hydra.launcher.mem_per_slot, gpus, cores)"
    if "run limit" in low or "runlimit" in low:
        return "lower hydra.launcher.timeout_min to the queue's run limit"
    return "fix the setting bsub names (cluster= preset or hydra.launcher.*) and submit again"


# ------------------------------------------------------------------------------------------------ bjobs


def bjobs_command(job_ids: Iterable[str], dialect: str = "lsf10") -> list[str]:
    """One ``bjobs`` call for all the given jobs (array elements are asked for through their array)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown LSF dialect {dialect!r}; valid: {', '.join(DIALECTS)}")
    bases = sorted({split_job_id(j)[0] for j in job_ids}, key=lambda b: (len(b), b))
    if dialect == "lsf10":
        return ["bjobs", "-a", "-o", BJOBS_FIELDS, "-json", *bases]
    return ["bjobs", "-a", "-w", *bases]


def _key(jobid: str, name: str | None, jobindex: str | None = None) -> str:
    base, index = split_job_id(jobid)
    if index is None and jobindex not in (None, "", "0", "-"):
        index = int(str(jobindex))
    if index is None and name:
        m = _NAME_INDEX_RE.search(name.strip())
        if m is not None:
            index = int(m.group("index"))
    return element_id(base, index)


def _job(key: str, stat: str, name: str | None, code: object = None) -> SchedJob:
    text = "" if code is None else str(code).strip()
    return SchedJob(key, stat, STATES.get(stat, S_UNKNOWN), text if text not in ("", "-") else None, name)


def parse_not_found(text: str) -> set[str]:
    """Ids from ``Job <123> is not found`` lines (bjobs says this on stderr, or in a JSON ERROR field)."""
    return {m.group("id") for m in _NOT_FOUND_RE.finditer(text)}


def parse_bjobs_json(text: str) -> Answer:
    """``bjobs -o "jobid stat job_name exit_code" -json`` (LSF 10.1). ValueError if it is not that."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("RECORDS"), list):
        raise ValueError("bjobs -json output without RECORDS")
    answer = Answer("lsf", answered=True, complete=True)
    for rec in data["RECORDS"]:
        if not isinstance(rec, dict):
            continue
        if rec.get("ERROR"):
            found = parse_not_found(str(rec["ERROR"]))
            answer.not_found |= found or ({str(rec["JOBID"])} if rec.get("JOBID") else set())
            continue
        if not rec.get("JOBID") or not rec.get("STAT"):
            continue
        key = _key(str(rec["JOBID"]), rec.get("JOB_NAME"), rec.get("JOBINDEX"))
        answer.jobs[key] = _job(key, str(rec["STAT"]).upper(), rec.get("JOB_NAME"), rec.get("EXIT_CODE"))
    return answer


def parse_bjobs_columns(text: str) -> Answer:
    """Default ``bjobs``/``bjobs -w`` columns, with or without the header line (OpenLava, old LSF).

    JOBID USER STAT come first and are never blank; the array index is read from the JOBID (``123[4]``)
    or from the first later token shaped like ``name[4]`` (host names never carry brackets). Extra lines
    of a multi-host job (only an EXEC_HOST) and messages are skipped.
    """
    answer = Answer("lsf", answered=True, complete=True)
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) < 3 or tokens[0] == "JOBID" or _ID_RE.match(tokens[0]) is None:
            continue
        if not tokens[0][0].isdigit():
            continue
        stat = tokens[2].upper()
        if stat not in FINISHED_STATES | UNFINISHED_STATES:
            continue
        name = next((t for t in tokens[3:] if _NAME_INDEX_RE.search(t)), None)
        key = _key(tokens[0], name)
        answer.jobs[key] = _job(key, stat, name)
    answer.not_found |= parse_not_found(text)
    return answer


def rejected(returncode: int, stdout: str, stderr: str) -> bool:
    """bjobs refused the lsf10 form itself (a field or option this LSF does not know)."""
    return returncode != 0 and bool(_REJECTED_RE.search(stderr or stdout))


def interpret(dialect: str, returncode: int, stdout: str, stderr: str) -> Answer:
    """Turn one ``bjobs`` run into an answer. The exit code and stderr are the truth:

    - ``Job <x> is not found`` lines are answers (LSF forgot x), not failures, even with exit code 255;
    - a non-zero exit with no records and no such lines is a failure (LSF down, mbatchd busy, ...);
    - output that does not parse is a failure too (the caller retries).
    """
    not_found = parse_not_found(stderr)
    try:
        if dialect == "lsf10":
            answer = parse_bjobs_json(stdout) if stdout.strip() else Answer("lsf", answered=True, complete=True)
        else:
            answer = parse_bjobs_columns(stdout)
    except ValueError as e:
        return Answer("lsf", warning=f"unreadable bjobs output ({e}): {_head(stdout or stderr)}")
    answer.not_found |= not_found
    if returncode != 0 and not answer.jobs and not answer.not_found:
        return Answer("lsf", warning=f"bjobs failed (exit {returncode}: {_head(stderr or stdout) or 'no output'}): "
                                     "states from run directories only")
    return answer


def query(job_ids: Iterable[str], dialect: str = "lsf10", runner: Runner = run_command) -> Answer:
    """Ask ``bjobs`` once about all the given jobs (twice where the lsf10 form is rejected); never raises."""
    ids = list(job_ids)
    argv = bjobs_command(ids, dialect)
    rc, out, err = runner(argv)
    if rc == 127:
        return Answer("lsf", warning="bjobs not found on PATH", commands=[argv])
    if dialect == "lsf10" and (rejected(rc, out, err) or (rc == 0 and out.strip() and not _is_json(out))):
        said = first_line(err or out)
        answer = query(ids, "openlava", runner)
        answer.commands.insert(0, argv)
        answer.fallback = "openlava"
        answer.warning = (f"this LSF rejects the lsf10 bjobs form ({said}); {DIALECT_HINT} "
                          "(asking in that dialect meanwhile)")
        return answer
    answer = interpret(dialect, rc, out, err)
    answer.commands.append(argv)
    return answer


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _head(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[:lines])[:500]


#: the generic launcher keys (hydra-submitit's BaseQueueConf) and the LsfExecutor parameter each one sets
GENERIC_KEYS = {
    "name": "job_name", "timeout_min": "timeout_min", "mem_gb": "mem_gb", "nodes": "nodes",
    "cpus_per_task": "cores", "gpus_per_node": "gpus", "tasks_per_node": "tasks_per_node",
    "stderr_to_stdout": "stderr_to_stdout",
}
