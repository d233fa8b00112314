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
    """(scheduler, job id) of the current process: LSF ``123[4]``, Slurm ``456_7``, else local/none (each
    scheduler's backend reads its own variables)."""
    from pipeline.launch.backend import current_job

    return current_job(os.environ)


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
