"""Where and how a job computes: device, precision (autocast), CPU threads, and the process's age."""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


def pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("trainer.device=cuda but no CUDA GPU is visible: use trainer.device=auto or cpu")
    return name


def pick_precision(name: str, device: str) -> str:
    import torch

    if name == "auto":
        if device == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"  # V100: fp16
        # CPU: bf16 autocast where the cores do bf16 dot products in hardware (AVX512-BF16, AMX); measured
        # 1.4-1.8x faster per step than fp32 with the same test accuracy (docs/performance.md). Else fp32.
        return "bf16" if cpu_has_bf16() else "fp32"
    if name == "fp16" and device != "cuda":
        raise PipelineError("trainer.precision=fp16 needs a CUDA GPU: use bf16 or fp32 on CPU")
    return name


def cpu_has_bf16() -> bool:
    """True if this CPU has bf16 dot-product instructions (x86 AVX512-BF16 or AMX-BF16; Linux flags)."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_threads() -> int | None:
    """Cores this job was given, for ``torch.set_num_threads``: the scheduler's slot count (LSF
    ``LSB_DJOB_NUMPROC``, Slurm ``SLURM_CPUS_PER_TASK``) capped by the CPU affinity mask; None if
    ``OMP_NUM_THREADS`` is set (torch already follows it). Torch's own default counts every core of the
    node, which oversubscribes a shared cluster node that runs several jobs."""
    env = os.environ
    if env.get("OMP_NUM_THREADS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for key in ("LSB_DJOB_NUMPROC", "SLURM_CPUS_PER_TASK"):
        if env.get(key, "").isdigit() and int(env[key]) > 0:
            return min(int(env[key]), cores)
    return cores


def process_age(started: float | None = None) -> float | None:
    """Seconds since this process started (Linux; ``run.py``'s re-exec keeps the start time), else None.
    ``started``: when the current run began inside a job that runs several (``hydra.launcher.runs_per_job``):
    seconds since then."""
    if started is not None:
        return time.time() - started
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def autocast(device: str, precision: str) -> Any:
    import torch

    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
