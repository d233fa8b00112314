"""LSF: ``bsub``'s answer, ``bjobs`` output and LSF job ids, as pure functions of the text, and ``query``.

Job ids are strings: ``"123"`` for a plain job, ``"123[4]"`` for element 4 of array 123. One ``bjobs``
call asks about every array at once (``bjobs <array id>`` lists all of its elements).

:class:`LsfBackend` is this scheduler's :class:`pipeline.launch.backend.Backend`.

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
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import SubmissionError, first_line
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
from pipeline.launch.backend import Backend, OnStart, PartlySubmitted

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


# ------------------------------------------------------------------------------------------------ backend

#: the generic launcher keys (hydra-submitit's BaseQueueConf) and the LsfExecutor parameter each one sets
GENERIC_KEYS = {
    "name": "job_name", "timeout_min": "timeout_min", "mem_gb": "mem_gb", "nodes": "nodes",
    "cpus_per_task": "cores", "gpus_per_node": "gpus", "tasks_per_node": "tasks_per_node",
    "stderr_to_stdout": "stderr_to_stdout",
}
#: launcher keys that are not bsub parameters (the launcher, the aggregation job and packing use them)
LAUNCHER_KEYS = frozenset({
    "submitit_folder", "wait", "dry_run", "max_num_timeout", "python",
    "aggregate", "aggregate_queue", "aggregate_timeout_min", "aggregate_mem_per_slot",
    "runs_per_job", "expected_run_min",
})


def executor_parameters(params: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``hydra.launcher.*`` -> ``LsfExecutor.update_parameters`` keywords: generic keys renamed
    (:data:`GENERIC_KEYS`), the launcher's own keys left out, the job environment exported in the script
    (PYTHONPATH first, then the user's ``env``, then the rest of the job environment)."""
    out = {GENERIC_KEYS[k]: v for k, v in params.items() if k in GENERIC_KEYS and v is not None}
    out.update({k: v for k, v in params.items() if k not in GENERIC_KEYS and k not in LAUNCHER_KEYS})
    ours = dict(env)
    first = {"PYTHONPATH": ours.pop("PYTHONPATH")} if "PYTHONPATH" in ours else {}
    out["env"] = {**first, **(params.get("env") or {}), **ours}
    return out


class LsfBackend(Backend):
    """LSF through ``pipeline.launch.submitit_lsf`` (one ``bsub`` array per submission, ``bjobs`` once per
    query, an aggregation job that waits with ``-w "ended(...)"``)."""

    name = "lsf"
    poll_s = 10.0
    cancel_command = ("bkill",)

    def base_id(self, job_id: str) -> str:
        return base_id(str(job_id))

    def file_stem(self, job_id: str) -> str:
        try:
            return file_stem(str(job_id))
        except ValueError:
            return str(job_id)

    def query(self, job_ids: Iterable[str], manifest: Mapping[str, Any]) -> Answer:
        ids = list(job_ids)
        if not ids:  # bjobs without ids would list every job of the user
            return Answer(self.name)
        return query(ids, str(manifest.get("dialect") or "lsf10"), self.runner)

    def peek_command(self, job_id: str, follow: bool = False) -> list[str] | None:
        return ["bpeek", *(["-f"] if follow else []), str(job_id)]

    @classmethod
    def job_here(cls, env: Mapping[str, str]) -> str | None:
        """``LSB_JOBID`` and ``LSB_JOBINDEX`` (0 outside an array): ``123[4]`` or ``123``."""
        if "LSB_JOBID" not in env:
            return None
        index = env.get("LSB_JOBINDEX", "0")
        return element_id(env["LSB_JOBID"], int(index) if index.isdigit() else None)

    def make_executor(self) -> Any:
        """An LsfExecutor with every parameter checked (unknown keys, limits, memory, quoting)."""
        from pipeline.launch.submitit_lsf.lsf import LsfExecutor

        p = self.params
        executor = LsfExecutor(Path(str(p["submitit_folder"])).absolute(),
                               max_num_timeout=int(p.get("max_num_timeout", 3)),
                               python=p.get("python"), dry_run=bool(p.get("dry_run", False)))
        executor.update_parameters(**executor_parameters(p, self.env))
        return executor

    def check_can_submit(self, executor: Any) -> None:
        """bsub on PATH (unless a dry run), and every queue this launch names listed by ``bqueues``."""
        from pipeline.launch.submitit_lsf import queues
        from pipeline.launch.submitit_lsf.lsf import BsubNotFoundError

        try:
            executor.check_can_submit()
        except BsubNotFoundError as e:
            raise SubmissionError(str(e)) from None
        queues.check_queues(self.params, not self.waits() and bool(self.params.get("aggregate", True)))

    def notes(self, n_jobs: int, runs_per_job: int = 1) -> list[str]:
        """How many of the jobs the queue's GPUs run at once, when that is fewer than the array asks for."""
        from pipeline.launch.submitit_lsf import queues

        note = queues.parallelism_note(self.params, n_jobs, runs_per_job)
        return [note] if note else []

    def submit(self, executor: Any, calls: Sequence[Callable[[], Any]], on_start: OnStart | None = None,
               on_wait: Callable[[], None] | None = None) -> list[Any]:
        from submitit.core.utils import FailedSubmissionError

        from pipeline.launch.submitit_lsf.lsf import LsfPartlySubmittedError

        try:
            jobs = executor.submit_array(list(calls))
        except LsfPartlySubmittedError as e:  # a later array of a big sweep: the earlier ones run
            raise PartlySubmitted(str(e)) from None
        except FailedSubmissionError as e:  # bsub answered no
            said = str(e)
            raise SubmissionError(f"{said}; nothing was submitted: {what_to_change(said)}") from None
        for i, job in enumerate(jobs):
            if on_start is not None:
                on_start(i, job)
        return jobs

    def manifest_fields(self, executor: Any) -> dict[str, Any]:
        return {"dialect": executor.parameters.get("dialect", "lsf10")}

    def aggregate_script(self, executor: Any, sweep_dir: Path, depends_on: Sequence[str]) -> str:
        from pipeline.launch.submitit_lsf.lsf import make_aggregate_bsub_string

        p, ex = self.params, executor.parameters
        command = f"{executor.python} -m pipeline.cli aggregate {shlex.quote(str(sweep_dir))}"
        return make_aggregate_bsub_string(
            command, sweep_dir, depends_on=depends_on, job_name=f"{ex.get('job_name', 'sweep')}_aggregate",
            queue=p.get("aggregate_queue") or ex.get("queue"),  # null: the sweep's own queue
            project=ex.get("project"), dialect=ex.get("dialect", "lsf10"),
            timeout_min=int(p.get("aggregate_timeout_min", 30)), mem_per_slot=p.get("aggregate_mem_per_slot"),
            mem_unit=ex.get("mem_unit", "MB"), setup=ex.get("setup"),
            env={k: v for k, v in (ex.get("env") or {}).items() if k != "PIPELINE_GPUS"})  # a CPU job

    def submit_aggregate(self, executor: Any, sweep_dir: Any, depends_on: Sequence[str],
                         dry_run: bool = False, check_only: bool = False) -> str | None:
        """``bsub -w "ended(<arrays>)"`` running ``pipeline aggregate``; ``check_only``: build the script (its
        settings fail here) and submit nothing. A refusal is logged, not raised: the sweep is submitted."""
        import logging

        from pipeline import atomic, rundir
        from pipeline.launch.submitit_lsf.lsf import run_bsub

        if not self.params.get("aggregate", True):
            return None
        text = self.aggregate_script(executor, Path(sweep_dir), list(depends_on) or ["0"])
        if check_only:
            return None
        script = Path(sweep_dir) / rundir.AGGREGATE_SCRIPT
        atomic.write_text(script, text)
        if dry_run:
            return None
        try:
            return run_bsub(script)
        except Exception as e:  # noqa: BLE001 - the sweep itself is submitted: say so, do not fail it
            logging.getLogger(__name__).error(
                f"the aggregation job was not submitted ({e}); once the sweep ends run: "
                f"python -m pipeline.cli aggregate {shlex.quote(str(sweep_dir))}")
            return None
