"""Job states of a sweep: one scheduler query for the whole sweep, merged with the run directories.

The run directory is the ground truth (``metrics.json`` says completed or failed); the scheduler only
tells apart what the files cannot: pending vs. running vs. died without writing ``metrics.json``. A
scheduler that fails or has forgotten the jobs (``bjobs`` forgets finished jobs after a while) costs a
warning, never the answer.

- LSF: ``bjobs -a -o "jobid stat job_name exit_code" -json <array ids>``; where ``-o``/``-json`` are
  rejected (old LSF, OpenLava), plain ``bjobs -a <ids>`` parsed by columns. An array element may show
  only as ``name[idx]`` in JOB_NAME, so the index is taken from there when JOBID lacks it.
- Slurm: ``sacct -j <ids> --format=JobID,State,ExitCode -P -n``, else ``squeue -h -r -j <ids> -o %i|%T``;
  also squeue for ids sacct does not list yet (slurmdbd records a job a moment after sbatch).
- local (submitit's local executor, job id = pid): pid liveness and submitit's result pickle.

Parsers are pure functions of the command's text so the tests feed them captured output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pipeline.results import (
    BAD_STATES,
    COMPLETED,
    CORRUPT,
    FAILED,
    MISSING,
    PENDING,
    RUNNING,
    Run,
    Sweep,
    curve_key,
    default_mode,
    first_line,
)

# generic scheduler states
S_PENDING, S_RUNNING, S_DONE, S_EXIT, S_UNKNOWN = "pending", "running", "done", "exit", "unknown"

LSF_STATES = {
    "PEND": S_PENDING, "PSUSP": S_PENDING, "WAIT": S_PENDING,
    "RUN": S_RUNNING, "USUSP": S_RUNNING, "SSUSP": S_RUNNING, "PROV": S_RUNNING,
    "DONE": S_DONE, "EXIT": S_EXIT,
}
SLURM_STATES = {
    "PENDING": S_PENDING, "REQUEUED": S_PENDING, "REQUEUE_HOLD": S_PENDING, "REQUEUE_FED": S_PENDING,
    "RESV_DEL_HOLD": S_PENDING,
    "RUNNING": S_RUNNING, "COMPLETING": S_RUNNING, "CONFIGURING": S_RUNNING, "SUSPENDED": S_RUNNING,
    "STOPPED": S_RUNNING, "SIGNALING": S_RUNNING, "STAGE_OUT": S_RUNNING, "RESIZING": S_RUNNING,
    "COMPLETED": S_DONE,
    "FAILED": S_EXIT, "CANCELLED": S_EXIT, "TIMEOUT": S_EXIT, "NODE_FAIL": S_EXIT, "OUT_OF_MEMORY": S_EXIT,
    "PREEMPTED": S_EXIT, "BOOT_FAIL": S_EXIT, "DEADLINE": S_EXIT, "REVOKED": S_EXIT,
    "SPECIAL_EXIT": S_EXIT,
}


FINAL_STATES = (COMPLETED, FAILED, CORRUPT)  # run-directory states no scheduler answer can change


@dataclass
class SchedJob:
    job_id: str
    raw: str  # the scheduler's own word (RUN, PEND, COMPLETED, ...)
    state: str  # one of S_*
    exit_code: str | None = None


@dataclass
class SchedAnswer:
    scheduler: str
    jobs: dict[str, SchedJob] = field(default_factory=dict)
    answered: bool = False  # the scheduler was asked and answered
    # the answer lists every job asked about that has not ended (bjobs -a, squeue), so a job missing from it
    # has ended, even if the scheduler has forgotten it (bjobs does after CLEAN_PERIOD)
    complete: bool = False
    warning: str | None = None
    commands: list[list[str]] = field(default_factory=list)


Runner = Callable[[list[str]], tuple[int, str, str]]


def run_command(argv: list[str], timeout: float = 60.0) -> tuple[int, str, str]:
    """Run a scheduler command; a missing binary reads as exit code 127, a hang as 124."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: no answer within {timeout:.0f} s"
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------------------------------
# LSF

_INDEX = re.compile(r"\[(\d+)\]$")
_ARRAY_ID = re.compile(r"^(\d+)(?:\[(\d+)\])?$")


def lsf_key(jobid: str, job_name: str | None, jobindex: str | None = None) -> str:
    """``1234[3]`` for an array element, ``1234`` for a plain job."""
    jobid = jobid.strip()
    if "[" in jobid:
        return jobid
    if jobindex and jobindex.strip() not in ("", "0", "-"):
        return f"{jobid}[{jobindex.strip()}]"
    m = _INDEX.search((job_name or "").strip())
    return f"{jobid}[{m.group(1)}]" if m else jobid


def parse_bjobs_json(text: str) -> dict[str, SchedJob]:
    """``bjobs -o "jobid stat job_name exit_code" -json`` (LSF 10.1). Raises ValueError if not JSON."""
    data = json.loads(text)
    if not isinstance(data, dict) or "RECORDS" not in data:
        raise ValueError("no RECORDS in bjobs -json output")
    out = {}
    for rec in data["RECORDS"]:
        if not isinstance(rec, dict) or rec.get("ERROR") or not rec.get("JOBID") or not rec.get("STAT"):
            continue
        key = lsf_key(str(rec["JOBID"]), rec.get("JOB_NAME"), rec.get("JOBINDEX"))
        raw = str(rec["STAT"]).strip()
        code = str(rec.get("EXIT_CODE") or "").strip()
        out[key] = SchedJob(key, raw, LSF_STATES.get(raw, S_UNKNOWN), code if code not in ("", "-") else None)
    return out


def parse_bjobs_plain(text: str) -> dict[str, SchedJob]:
    """Plain ``bjobs -a`` columns (JOBID USER STAT QUEUE FROM_HOST EXEC_HOST JOB_NAME SUBMIT_TIME).

    EXEC_HOST is empty for pending jobs, so columns after STAT are not positional: the array index is
    the first ``name[idx]`` token after the queue.
    """
    out = {}
    for line in text.splitlines():
        if not line.strip() or line[0].isspace() or line.startswith("JOBID"):
            continue  # blank, continuation of a multi-host EXEC_HOST, or the header
        tokens = line.split()
        if len(tokens) < 3 or not tokens[0].isdigit():
            continue
        jobid, raw = tokens[0], tokens[2]
        name = next((t for t in tokens[3:] if _INDEX.search(t)), None)
        key = lsf_key(jobid, name)
        out[key] = SchedJob(key, raw, LSF_STATES.get(raw, S_UNKNOWN))
    return out


def _forgotten(err: str) -> bool:
    return "not found" in err.lower() or "no matching job" in err.lower() or "no unfinished job" in err.lower()


def query_lsf(ids: list[str], runner: Runner = run_command) -> SchedAnswer:
    ans = SchedAnswer("lsf")
    argv = ["bjobs", "-a", "-o", "jobid stat job_name exit_code", "-json", *ids]
    ans.commands.append(argv)
    rc, out, err = runner(argv)
    if rc == 127:
        ans.warning = "bjobs not found: states from run directories only"
        return ans
    try:
        ans.jobs = parse_bjobs_json(out)
        ans.answered = ans.complete = True
        return ans
    except ValueError:
        pass
    # -o/-json rejected (old LSF, OpenLava): plain columns with a header
    argv = ["bjobs", "-a", *ids]
    ans.commands.append(argv)
    rc, out, err = runner(argv)
    ans.jobs = parse_bjobs_plain(out)
    if ans.jobs or rc == 0 or _forgotten(err):
        ans.answered = ans.complete = True
    else:
        ans.warning = f"bjobs failed (exit {rc}: {first_line(err) or 'no output'}): states from run directories only"
    return ans


# --------------------------------------------------------------------------------------------------
# Slurm

_SLURM_RANGE = re.compile(r"^(\d+)_\[([^\]]+)\]$")


def _expand_slurm(jobid: str) -> list[str]:
    """``456_[2-5,7%2]`` -> ``456_2 ... 456_5, 456_7``; anything else unchanged."""
    m = _SLURM_RANGE.match(jobid)
    if not m:
        return [jobid]
    base, spec = m.group(1), m.group(2).split("%")[0]
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out += [f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _slurm_job(jobid: str, state: str, code: str | None) -> list[SchedJob]:
    raw = state.split()[0] if state.split() else state
    raw = raw.rstrip("+")
    return [SchedJob(j, raw, SLURM_STATES.get(raw, S_UNKNOWN), code) for j in _expand_slurm(jobid)]


def parse_sacct(text: str) -> dict[str, SchedJob]:
    """``sacct --format=JobID,State,ExitCode -P -n``: job steps (``456_0.batch``) are skipped."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0] or "." in parts[0]:
            continue
        for job in _slurm_job(parts[0], parts[1], parts[2] if len(parts) > 2 else None):
            out[job.job_id] = job
    return out


def parse_squeue(text: str) -> dict[str, SchedJob]:
    """``squeue -h -r -o "%i|%T"``."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            for job in _slurm_job(parts[0], parts[1], None):
                out[job.job_id] = job
    return out


def query_slurm(ids: list[str], runner: Runner = run_command) -> SchedAnswer:
    ans = SchedAnswer("slurm")
    argv = ["sacct", "-j", ",".join(ids), "--format=JobID,State,ExitCode", "-P", "-n"]
    ans.commands.append(argv)
    rc, out, err = runner(argv)
    if rc == 0:
        ans.jobs = parse_sacct(out)
        ans.answered = True
        # just submitted: slurmdbd records jobs (and splits arrays into elements) a moment after sbatch,
        # while squeue knows them at once
        unseen = [i for i in ids if not any(j.startswith(f"{i}_") for j in ans.jobs)
                  and (i not in ans.jobs or ans.jobs[i].state == S_PENDING)]
        if unseen:
            argv = ["squeue", "-h", "-r", "-j", ",".join(unseen), "-o", "%i|%T"]
            ans.commands.append(argv)
            rc2, out2, err2 = runner(argv)
            if rc2 == 0:
                ans.jobs.update(parse_squeue(out2))
            elif "invalid job id" not in err2.lower():  # cannot tell pending from gone: do not guess
                ans.answered = False
                ans.warning = (f"sacct does not list job {', '.join(unseen)} yet and squeue failed "
                               f"({first_line(err2) or rc2}): states from run directories only")
        return ans
    argv = ["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i|%T"]
    ans.commands.append(argv)
    rc2, out2, err2 = runner(argv)
    if rc2 == 0 or "invalid job id" in err2.lower():
        ans.jobs = parse_squeue(out2)  # squeue lists active jobs only; the rest have ended
        ans.answered = ans.complete = True
        return ans
    ans.warning = (f"sacct and squeue failed ({first_line(err) or rc}; {first_line(err2) or rc2}): "
                   "states from run directories only")
    return ans


# --------------------------------------------------------------------------------------------------
# local processes (submitit's local executor: the job id is the pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def query_local(sweep: Sweep) -> SchedAnswer:
    ans = SchedAnswer("local", answered=True)
    folder = (sweep.meta or {}).get("submitit_folder")
    for run in sweep.runs:
        if not run.job_id or not run.job_id.isdigit() or run.state in FINAL_STATES:
            continue
        if _alive(int(run.job_id)):
            ans.jobs[run.job_id] = SchedJob(run.job_id, "alive", S_RUNNING)
        elif folder and (Path(folder) / f"{run.job_id}_0_result.pkl").exists():
            ans.jobs[run.job_id] = SchedJob(run.job_id, "ended", S_DONE)
        else:
            ans.jobs[run.job_id] = SchedJob(run.job_id, "gone", S_EXIT)
    return ans


# --------------------------------------------------------------------------------------------------
# the sweep


def _base_id(job_id: str, scheduler: str) -> str:
    if scheduler == "slurm":
        return job_id.split("_")[0]
    m = _ARRAY_ID.match(job_id)
    return m.group(1) if m else job_id


def query_ids(sweep: Sweep) -> list[str]:
    """The ids one query needs: the arrays (and plain jobs) of runs that have not finished."""
    sched = sweep.scheduler
    meta = sweep.meta or {}
    unfinished = [r for r in sweep.runs if r.state not in FINAL_STATES and r.job_id]
    ids: list[str] = []
    for run in unfinished:
        base = _base_id(str(run.job_id), sched)
        if base not in ids:
            ids.append(base)
    agg = meta.get("aggregate_job_id")
    if agg and not (sweep.path / "results" / "results.json").exists() and str(agg) not in ids:
        ids.append(str(agg))
    return ids


def query_sweep(sweep: Sweep, runner: Runner = run_command) -> SchedAnswer:
    """At most one scheduler query (plus a fallback form where the first is rejected)."""
    sched = sweep.scheduler
    ids = query_ids(sweep)
    if sched == "local":
        return query_local(sweep)
    if not ids:
        return SchedAnswer(sched)
    if sched == "lsf":
        return query_lsf(ids, runner)
    if sched == "slurm":
        return query_slurm(ids, runner)
    return SchedAnswer(sched)


@dataclass
class JobStatus:
    run: Run
    state: str
    sched: str = ""  # the scheduler's word, when it was asked
    runtime_s: float | None = None
    epoch: float | None = None
    step: float | None = None
    best: float | None = None
    note: str | None = None


def _iso_ts(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.timestamp()


_LOG_ERRORS = (
    re.compile(r"\bTERM_[A-Z_]+"),  # LSF's termination reason (TERM_RUNLIMIT, TERM_MEMLIMIT, ...)
    re.compile(r"DUE TO TIME LIMIT|CANCELLED AT|oom[-_ ]kill|Out Of Memory", re.IGNORECASE),  # Slurm
    re.compile(r"^\w*(Error|Exception|Interrupt)\b|Killed"),  # Python's last line, the kernel's kill
)


def error_from_log(*paths: str | Path | None) -> str | None:
    """The most telling error line in the tail of a job log (for jobs that left no metrics.json)."""
    for p in paths:
        if not p:
            continue
        try:
            with open(p, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 65536))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        lines = [ln.strip() for ln in tail.splitlines()]
        for pat in _LOG_ERRORS:
            hits = [ln for ln in lines if pat.search(ln)]
            if hits:
                return hits[-1][:200]
    return None


def job_status(run: Run, sj: SchedJob | None, answered: bool, metric: str, now: float,
               complete: bool = False) -> JobStatus:
    """Merge one run's files with what the scheduler said about it (``complete``: see SchedAnswer)."""
    st = JobStatus(run=run, state=run.state, sched=sj.raw if sj else "", note=run.error)
    key = curve_key(metric)
    better = max if default_mode(metric) == "max" else min
    if run.state in (COMPLETED, FAILED) and run.final is not None:
        st.runtime_s = run.metrics.get("wall_time_s")
        st.epoch = run.metrics.get("epochs")
        st.step = run.metrics.get("steps")
        st.best = run.metrics.get(metric)
    if run.state not in FINAL_STATES:
        if sj is None and complete and run.run_dir is not None and run.job_id:
            st.state = FAILED  # started, ended without metrics.json (killed), and forgotten since
            log = error_from_log(run.stderr, run.stdout)
            st.note = "ended without metrics.json (the scheduler no longer lists the job)" + \
                (f": {log}" if log else "")
        elif sj is None:
            st.state = RUNNING if run.run_dir is not None else MISSING
            if st.state == MISSING and not answered:
                st.note = "no run directory; scheduler not asked or not answering"
        elif sj.state == S_PENDING:
            st.state = PENDING
        elif sj.state == S_RUNNING:
            st.state = RUNNING
        elif sj.state in (S_EXIT, S_DONE):
            st.state = FAILED
            code = f", exit code {sj.exit_code}" if sj.exit_code and sj.exit_code != "0" else ""
            log = error_from_log(run.stderr, run.stdout)
            st.note = f"scheduler: {sj.raw}{code}, no metrics.json" + (f": {log}" if log else "")
        else:
            st.state = RUNNING if run.run_dir is not None else PENDING
    if run.run_dir is not None and (st.epoch is None or st.best is None):
        lines = run.jsonl()
        vals = [ln[key] for ln in lines if ln.get("split") == "val" and isinstance(ln.get(key), (int, float))]
        if vals and st.best is None:
            st.best = float(better(vals))
        for ln in reversed(lines):
            if st.step is None and isinstance(ln.get("step"), (int, float)):
                st.step = ln["step"]
            if st.epoch is None and isinstance(ln.get("epoch"), (int, float)):
                st.epoch = ln["epoch"]
            if st.step is not None and st.epoch is not None:
                break
        if st.runtime_s is None and st.state == RUNNING:
            start = _iso_ts(run.info.get("start_time"))
            if start is None:
                try:
                    start = (run.run_dir / ".hydra" / "config.yaml").stat().st_mtime
                except OSError:
                    start = None
            if start is not None:
                st.runtime_s = max(0.0, now - start)
    return st


def sweep_status(sweep: Sweep, answer: SchedAnswer, metric: str = "val_macro_f1") -> list[JobStatus]:
    now = time.time()
    out = []
    for run in sweep.runs:
        sj = answer.jobs.get(str(run.job_id)) if run.job_id else None
        out.append(job_status(run, sj, answer.answered, metric, now, answer.complete))
    return out


def aggregate_state(sweep: Sweep, answer: SchedAnswer) -> str | None:
    agg = (sweep.meta or {}).get("aggregate_job_id")
    if not agg:
        return None
    if (sweep.path / "results" / "results.json").exists():
        return "done (results/ written)"
    sj = answer.jobs.get(str(agg))
    return sj.raw if sj else "unknown"


def has_failures(statuses: list[JobStatus]) -> bool:
    return any(s.state in BAD_STATES for s in statuses)
