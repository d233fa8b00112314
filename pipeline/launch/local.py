"""Local processes (submitit's local executor): the job id is the pid; a result pickle means it ended."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline.atomic import pid_alive
from pipeline.launch import S_DONE, S_EXIT, S_RUNNING, Answer, SchedJob


def base_id(job_id: str) -> str:
    return job_id


def query(job_ids: Iterable[str], submitit_folder: str | Path | None = None) -> Answer:
    """Each pid: alive (running), ended with a result pickle (done), or gone (exit)."""
    ans = Answer("local", answered=True)
    for job_id in job_ids:
        if not str(job_id).isdigit():
            continue
        if pid_alive(int(job_id)):
            ans.jobs[job_id] = SchedJob(job_id, "alive", S_RUNNING)
        elif submitit_folder and (Path(submitit_folder) / f"{job_id}_0_result.pkl").exists():
            ans.jobs[job_id] = SchedJob(job_id, "ended", S_DONE)
        else:
            ans.jobs[job_id] = SchedJob(job_id, "gone", S_EXIT)
    return ans
