"""Slurm: ``sacct``/``squeue`` output and Slurm job ids (``456``, ``456_3``), and ``query``.

``sacct -j <ids> --format=JobID,State,ExitCode -P -n`` first; ``squeue -h -r -j <ids> -o %i|%T`` where
sacct fails, and for ids sacct does not list yet (slurmdbd records a job a moment after sbatch).
:class:`SlurmBackend` is this scheduler's :class:`pipeline.launch.backend.Backend` (submitit's Slurm executor).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pipeline import launch as L
from pipeline.errors import SubmissionError, first_line
from pipeline.launch import Answer, Runner, SchedJob, run_command
from pipeline.launch.backend import Backend, OnStart

SBATCH_NOT_FOUND = "sbatch not found on PATH: run this on a Slurm login node, or use cluster=local"
#: the generic launcher keys (hydra-submitit's BaseQueueConf), which submitit's AutoExecutor translates
GENERIC_KEYS = frozenset({"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes",
                          "name", "stderr_to_stdout"})
#: launcher keys that are not Slurm parameters
LAUNCHER_KEYS = frozenset({"submitit_folder", "max_num_timeout", "wait", "runs_per_job", "expected_run_min"})

STATES = {
    "PENDING": L.S_PENDING, "REQUEUED": L.S_PENDING, "REQUEUE_HOLD": L.S_PENDING, "REQUEUE_FED": L.S_PENDING,
    "RESV_DEL_HOLD": L.S_PENDING,
    "RUNNING": L.S_RUNNING, "COMPLETING": L.S_RUNNING, "CONFIGURING": L.S_RUNNING, "SUSPENDED": L.S_RUNNING,
    "STOPPED": L.S_RUNNING, "SIGNALING": L.S_RUNNING, "STAGE_OUT": L.S_RUNNING, "RESIZING": L.S_RUNNING,
    "COMPLETED": L.S_DONE,
    "FAILED": L.S_EXIT, "CANCELLED": L.S_EXIT, "TIMEOUT": L.S_EXIT, "NODE_FAIL": L.S_EXIT, "OUT_OF_MEMORY": L.S_EXIT,
    "PREEMPTED": L.S_EXIT, "BOOT_FAIL": L.S_EXIT, "DEADLINE": L.S_EXIT, "REVOKED": L.S_EXIT,
    "SPECIAL_EXIT": L.S_EXIT,
}
_RANGE = re.compile(r"^(\d+)_\[([^\]]+)\]$")


def base_id(job_id: str) -> str:
    return job_id.split("_")[0]


def expand(jobid: str) -> list[str]:
    """``456_[2-5,7%2]`` -> ``456_2 ... 456_5, 456_7``; anything else unchanged."""
    m = _RANGE.match(jobid)
    if not m:
        return [jobid]
    base, spec = m.group(1), m.group(2).split("%")[0]
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out += [f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _jobs(jobid: str, state: str, code: str | None) -> list[SchedJob]:
    raw = state.split()[0] if state.split() else state
    raw = raw.rstrip("+")
    return [SchedJob(j, raw, STATES.get(raw, L.S_UNKNOWN), code) for j in expand(jobid)]


def parse_sacct(text: str) -> dict[str, SchedJob]:
    """``sacct --format=JobID,State,ExitCode -P -n``: job steps (``456_0.batch``) are skipped."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0] or "." in parts[0]:
            continue
        for job in _jobs(parts[0], parts[1], parts[2] if len(parts) > 2 else None):
            out[job.job_id] = job
    return out


def parse_squeue(text: str) -> dict[str, SchedJob]:
    """``squeue -h -r -o "%i|%T"``."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            for job in _jobs(parts[0], parts[1], None):
                out[job.job_id] = job
    return out


def query(job_ids: Iterable[str], runner: Runner = run_command) -> Answer:
    ids = list(dict.fromkeys(base_id(str(i)) for i in job_ids))
    ans = Answer("slurm")
    argv = ["sacct", "-j", ",".join(ids), "--format=JobID,State,ExitCode", "-P", "-n"]
    ans.commands.append(argv)
    rc, out, err = runner(argv)
    if rc == 0:
        ans.jobs = parse_sacct(out)
        ans.answered = True
        # just submitted: slurmdbd records jobs (and splits arrays into elements) a moment after sbatch,
        # while squeue knows them at once
        unseen = [i for i in ids if not any(j.startswith(f"{i}_") for j in ans.jobs)
                  and (i not in ans.jobs or ans.jobs[i].state == L.S_PENDING)]
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


class SlurmBackend(Backend):
    """Slurm through submitit's Slurm executor: one ``sbatch`` array per submission, ``sacct``/``squeue``
    once per query; the job environment goes into the script's setup lines."""

    name = "slurm"
    poll_s = 10.0
    cancel_command = ("scancel",)

    def base_id(self, job_id: str) -> str:
        return base_id(str(job_id))

    def query(self, job_ids: Iterable[str], manifest: Mapping[str, Any]) -> Answer:
        ids = list(job_ids)
        if not ids:  # sacct without ids would list every job of the user
            return Answer(self.name)
        return query(ids, self.runner)

    def waits(self) -> bool:
        return bool(self.params.get("wait", True))

    @classmethod
    def job_here(cls, env: Mapping[str, str]) -> str | None:
        """``456_7`` for an array element, ``456`` for a plain job."""
        if "SLURM_JOB_ID" not in env:
            return None
        if "SLURM_ARRAY_JOB_ID" in env:
            return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '0')}"
        return env["SLURM_JOB_ID"]

    def make_executor(self) -> Any:
        """submitit's Slurm executor with this launcher's parameters; one line without sbatch."""
        import shutil

        import submitit

        if shutil.which("sbatch") is None:  # submitit would fail later, with a traceback about srun
            raise SubmissionError(SBATCH_NOT_FOUND)
        p = self.params
        init = {"folder": p["submitit_folder"]}
        if "max_num_timeout" in p:
            init["slurm_max_num_timeout"] = p["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster="slurm", **init)
        setup = [f"export {k}={shlex.quote(str(v))}" for k, v in self.env.items()] + list(p.get("setup") or [])
        executor.update_parameters(**{
            k if k in GENERIC_KEYS else f"slurm_{k}": v
            for k, v in {**p, "setup": setup}.items() if k not in LAUNCHER_KEYS
        })
        return executor

    def submit(self, executor: Any, calls: Sequence[Callable[[], Any]], on_start: OnStart | None = None,
               on_wait: Callable[[], None] | None = None) -> list[Any]:
        """One sbatch array; a refusal becomes one line (sbatch's own stderr, not submitit's print)."""
        import contextlib
        import io

        from submitit.core.utils import FailedJobError

        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                jobs = executor.submit_array(list(calls))
        except FailedJobError as e:
            reason = " | ".join(str(e).strip().splitlines()) or said.getvalue().strip() or "no message"
            change = ("set hydra.launcher.partition to one that `sinfo` lists" if "partition" in reason.lower()
                      else "fix the setting sbatch names (cluster= preset or hydra.launcher.*) and submit again")
            raise SubmissionError(f"sbatch refused the sweep: {reason[:300]}; nothing was submitted: {change}") \
                from None
        for i, job in enumerate(jobs):
            if on_start is not None:
                on_start(i, job)
        return jobs
