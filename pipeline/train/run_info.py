"""``run_info.json``: what produced a run (code version, packages, data, host, scheduler job)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def scheduler_job() -> tuple[str, str | None]:
    """(scheduler, job id) of the current process: LSF ``123[4]``, Slurm ``456_7``, else local/none."""
    env = os.environ
    if "LSB_JOBID" in env:
        idx = env.get("LSB_JOBINDEX", "0")
        return "lsf", env["LSB_JOBID"] + (f"[{idx}]" if idx not in ("", "0") else "")
    if "SLURM_JOB_ID" in env:
        if "SLURM_ARRAY_JOB_ID" in env:
            return "slurm", f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '0')}"
        return "slurm", env["SLURM_JOB_ID"]
    if env.get("SUBMITIT_EXECUTOR") == "local":
        return "local", env.get("SUBMITIT_LOCAL_JOB_ID")
    return "none", None


def collect(data_sha256: str, device: str, gpus: int) -> dict[str, Any]:
    import torch
    import transformers

    import pipeline

    scheduler, job_id = scheduler_job()
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "pipeline": pipeline.__version__},
        "data_sha256": data_sha256,
        "host": socket.gethostname(),
        "scheduler": scheduler,
        "job_id": job_id,
        "device": device,
        "gpus": gpus,
        "start_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
