"""Can this node's torch train on its GPUs? ``pipeline doctor`` and the GPU job's start-up check.

A job that was given GPUs must not train on the CPU: ``trainer.device=auto`` would fall back to the CPU
when ``torch.cuda.is_available()`` is False (a CPU-only torch, a driver older than torch's CUDA, a wheel
without the GPU's architecture), and the job would then run on the node's cores until its run limit.
So the job checks first (``require_gpu_if_requested``, before data loading) and stops with one line.

The decision is split in two so that it can be tested without a GPU:

- ``gather()`` collects the ``GpuFacts`` (torch, ``nvidia-smi``, a tiny CUDA matmul);
- ``problems(facts)`` is a pure function of them: one ``Problem`` (cause + fix) per thing that is wrong.

``requested_gpus(env)`` reads how many GPUs the job was given: our LSF and local launchers and
``jobs/train.bsub`` export ``PIPELINE_GPUS`` (``hydra.launcher.gpus_per_node``); Slurm (``--gpus*``) describes
its allocation in ``SLURM_*GPUS*``, and any ``LSB_GPU_*`` variable a site sets counts too. A bare
``CUDA_VISIBLE_DEVICES`` does not: bsub copies the submitting shell's environment into CPU jobs as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.errors import PipelineError

#: the oldest Linux driver each CUDA major version runs on (NVIDIA's CUDA compatibility tables: minor
#: version compatibility within 11.x and 12.x; CUDA 13 needs the 580 series)
MIN_DRIVER = {11: (450, 80, 2), 12: (525, 60, 13), 13: (580, 65, 6)}
ENV_FIX = "install the cu126 environment (environment.yml, docs/dtu.md)"
SCHEDULER_GPU_VARS = ("SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS",
                      "SLURM_GPUS_PER_NODE", "SLURM_GPUS_PER_TASK")


class GpuUnusable(PipelineError):
    """A job that was given GPUs cannot use them; the message names the cause and the fix."""


@dataclass
class GpuFacts:
    """What decides whether torch can train on this node's GPUs (all plain values: easy to build in tests)."""

    torch_version: str
    torch_cuda: str | None                 # torch.version.cuda; None: a CPU-only build
    arch_list: list[str]                   # torch.cuda.get_arch_list(), e.g. ["sm_70", "sm_80", "compute_90"]
    driver: str | None                     # nvidia-smi's driver version; None: no driver (or no nvidia-smi)
    cuda_available: bool                   # torch.cuda.is_available()
    gpus: list[tuple[str, tuple[int, int]]] = field(default_factory=list)  # (name, capability) torch sees
    node_gpus: int = 0                     # GPUs nvidia-smi lists on the node (visible or not)
    bf16: bool | None = None               # native bf16 on device 0 (not the emulation V100 offers)
    matmul_error: str | None = None        # the tiny CUDA matmul's error; None: it ran (or was not tried)
    cuda_visible_devices: str | None = None


@dataclass(frozen=True)
class Problem:
    cause: str
    fix: str

    def line(self) -> str:
        return f"{self.cause}: {self.fix}"


# ---------------------------------------------------------------------------------- the pure decision


def parse_version(text: str | None) -> tuple[int, ...]:
    """``"535.104.05"`` -> (535, 104, 5); junk -> ()."""
    parts = []
    for p in str(text or "").strip().split("."):
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts)


def min_driver(torch_cuda: str | None) -> tuple[int, ...] | None:
    """The oldest driver that runs this torch's CUDA (None: unknown CUDA major, or a CPU build)."""
    major = parse_version(torch_cuda)[:1]
    return MIN_DRIVER.get(major[0]) if major else None


def arch_supported(capability: tuple[int, int], arch_list: Sequence[str]) -> bool:
    """Whether a GPU of this compute capability runs kernels from a build with ``arch_list``: a cubin
    ``sm_XY`` runs on the same major X with minor >= Y (sm_86 runs sm_80 code; "a"/"f" variants only on
    their own GPU); PTX ``compute_XY`` is compiled by the driver for any capability >= XY."""
    major, minor = capability
    for arch in arch_list:
        kind, _, num = arch.partition("_")
        digits = num.rstrip("af")
        if not digits.isdigit() or len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and (a_minor <= minor if digits == num else a_minor == minor):
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def problems(f: GpuFacts) -> list[Problem]:
    """Everything that stops this torch from training on this node's GPUs; [] when it can."""
    if f.torch_cuda is None:
        return [Problem(f"torch {f.torch_version} is a CPU-only build", ENV_FIX)]
    if f.cuda_available and f.gpus:  # the driver works (nvidia-smi may just be missing from PATH)
        return _gpu_problems(f)
    if f.driver is None:
        return [Problem("no NVIDIA driver on this node (nvidia-smi not found or failing)",
                        "run on a GPU node (a GPU queue, e.g. cluster=dtu_gpua100); check with `nvidia-smi`")]
    need = min_driver(f.torch_cuda)
    if need and parse_version(f.driver) < need:
        return [Problem(f"driver {f.driver} is too old for torch {f.torch_version} (CUDA {f.torch_cuda} needs "
                        f">= {'.'.join(map(str, need))})",
                        "use a torch built for an older CUDA (cu126 needs driver >= 525.60; docs/dtu.md) "
                        "or a node with a newer driver")]
    if not f.gpus:
        cvd = f.cuda_visible_devices
        hidden = cvd is not None and cvd.strip() in ("", "-1", "NoDevFiles")
        if f.node_gpus and not hidden:
            return [Problem(f"torch cannot open any of the {f.node_gpus} GPU(s) nvidia-smi lists "
                            f"(CUDA_VISIBLE_DEVICES={cvd!r})",
                            "CUDA failed to initialise: `pipeline doctor` on the node shows torch's warning; "
                            "an exclusive GPU taken by another process looks like this too")]
        where = f"CUDA_VISIBLE_DEVICES={cvd!r}" if hidden else f"nvidia-smi lists {f.node_gpus}"
        return [Problem(f"no GPU visible to torch ({where})",
                        "ask the scheduler for a GPU (-gpu num=1 / --gpus=1) and do not override "
                        "CUDA_VISIBLE_DEVICES")]
    found = _gpu_problems(f)
    if found:
        return found
    return [Problem(f"torch.cuda.is_available() is False with driver {f.driver} and {len(f.gpus)} GPU(s)",
                    "run `pipeline doctor` on the node and check the job's log for CUDA warnings")]


def _gpu_problems(f: GpuFacts) -> list[Problem]:
    """GPUs whose architecture the build lacks; else a failed tiny matmul; else nothing."""
    found = []
    for name, cap in f.gpus:
        if not arch_supported(cap, f.arch_list):
            found.append(Problem(
                f"{name} (sm_{cap[0]}{cap[1]}) is not in this torch's architectures "
                f"({' '.join(f.arch_list) or 'none'})",
                "use a torch build that has it: cu126 carries sm_50 to sm_90 (environment.yml, docs/dtu.md)"))
    if found:
        return found
    if f.cuda_available and f.matmul_error:
        return [Problem(f"a tiny CUDA matmul failed ({f.matmul_error})",
                        "the GPU may be in a bad state or taken (exclusive mode): resubmit; "
                        "if it persists, report the node")]
    return []


def requested_gpus(env: Mapping[str, str]) -> int:
    """GPUs this job was given: ``PIPELINE_GPUS`` (our launchers), else the scheduler's allocation (LSF
    ``LSB_GPU_*`` or Slurm ``SLURM_*GPUS*``, counted from ``CUDA_VISIBLE_DEVICES`` where it lists them)."""
    value = env.get("PIPELINE_GPUS", "").strip()
    if value.isdigit():
        return int(value)
    in_lsf = any(k.startswith("LSB_GPU_") and env[k].strip() for k in env)
    in_slurm = any(env.get(k, "").strip() not in ("", "0") for k in SCHEDULER_GPU_VARS)
    if not (in_lsf or in_slurm):
        return 0
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return max(len(visible), 1)


# ---------------------------------------------------------------------------------- gathering the facts


def nvidia_smi() -> tuple[str | None, list[tuple[str, tuple[int, int]]]]:
    """(driver version, [(name, capability)] of every GPU on the node) from nvidia-smi; (None, []) without."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, []
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version,name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None, []
    if out.returncode != 0:
        return None, []
    driver, gpus = None, []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        driver = parts[0]
        cap = parse_version(parts[2])
        gpus.append((parts[1], (cap + (0, 0))[:2] if cap else (0, 0)))
    return driver, gpus


def gather(run_matmul: bool = True) -> GpuFacts:
    """The facts on this node: torch's build, nvidia-smi, the GPUs torch sees, a tiny CUDA matmul."""
    import torch

    driver, node = nvidia_smi()
    facts = GpuFacts(torch_version=torch.__version__, torch_cuda=torch.version.cuda,
                     arch_list=list(torch.cuda.get_arch_list()) if torch.version.cuda else [],
                     driver=driver, cuda_available=False, node_gpus=len(node),
                     cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
    if torch.version.cuda is None:
        return facts
    try:
        facts.cuda_available = torch.cuda.is_available()
        count = torch.cuda.device_count()
        facts.gpus = [(torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)))
                      for i in range(count)]
    except (RuntimeError, AssertionError) as e:
        facts.cuda_available, facts.matmul_error = False, _one_line(e)
    if facts.cuda_available and facts.gpus:
        facts.bf16 = bool(torch.cuda.is_bf16_supported(including_emulation=False))
        if run_matmul:
            facts.matmul_error = tiny_matmul()
    return facts


def tiny_matmul() -> str | None:
    """A 64x64 matmul on cuda:0 checked against the CPU; None if right, else the error in one line."""
    import torch

    try:
        a = torch.arange(64 * 64, dtype=torch.float32).reshape(64, 64) / 4096
        got = (a.cuda() @ a.cuda()).cpu()
        torch.cuda.synchronize()
        if not torch.allclose(got, a @ a, rtol=1e-3, atol=1e-3):
            return "wrong result"
    except Exception as e:  # noqa: BLE001 - any CUDA error is the answer
        return _one_line(e)
    return None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


# ---------------------------------------------------------------------------------- the job's check


def job_verdict(requested: int, device: str, facts: GpuFacts | None) -> str | None:
    """The one line that stops a GPU job, or None to go on. A job with GPUs and ``trainer.device`` auto
    or cuda must train on them; ``trainer.device=cpu`` is an explicit choice and is respected."""
    if requested <= 0 or device == "cpu" or facts is None:
        return None
    found = problems(facts)
    if not found:
        return None
    return f"this job was given {requested} GPU(s) but cannot use them: {found[0].line()}"


def require_gpu_if_requested(device: str, env: Mapping[str, str] | None = None) -> None:
    """At a job's start, before data loading: raise ``GpuUnusable`` (one line) instead of training on the
    CPU when the job was given GPUs that torch cannot use."""
    requested = requested_gpus(os.environ if env is None else env)
    if requested <= 0 or device == "cpu":
        return
    line = job_verdict(requested, device, gather())
    if line:  # PIPELINE_GPUS=0 wins over any scheduler allocation (requested_gpus)
        raise GpuUnusable(f"{line}; to train on the CPU instead: PIPELINE_GPUS=0 or trainer.device=cpu")


# ---------------------------------------------------------------------------------- pipeline doctor


def report(facts: GpuFacts) -> list[str]:
    """``pipeline doctor``'s lines: what was found, then one line per problem with its fix."""
    lines = [f"torch      {facts.torch_version} (CUDA {facts.torch_cuda or 'none: CPU-only build'})"]
    if facts.torch_cuda:
        lines.append(f"arches     {' '.join(facts.arch_list) or '-'}")
    need = min_driver(facts.torch_cuda)
    lines.append(f"driver     {facts.driver or 'none (no nvidia-smi)'}"
                 + (f" (this torch needs >= {'.'.join(map(str, need))})" if need else ""))
    if facts.cuda_visible_devices is not None:
        lines.append(f"CUDA_VISIBLE_DEVICES={facts.cuda_visible_devices}")
    for i, (name, cap) in enumerate(facts.gpus):
        ok = "in build" if arch_supported(cap, facts.arch_list) else "NOT in build"
        lines.append(f"gpu {i}      {name} sm_{cap[0]}{cap[1]} ({ok})")
    if facts.gpus and facts.cuda_available:
        lines.append(f"bf16       {'yes' if facts.bf16 else 'no (precision=auto uses fp16)'}")
        lines.append(f"matmul     {'ok' if facts.matmul_error is None else 'FAILED'}")
    return lines


def doctor(require_gpu: bool = False) -> tuple[list[str], int]:
    """(lines to print, exit code). A node without any NVIDIA GPU is "no GPU", exit 0 (CPU training is
    fine there) unless ``require_gpu``; a node with GPUs that torch cannot use, exit 1."""
    facts = gather()
    lines = report(facts)
    found = problems(facts)
    if not found:
        lines.append(f"ok: {len(facts.gpus)} usable GPU(s)")
        return lines, 0
    if facts.driver is None and facts.node_gpus == 0 and not require_gpu:
        lines.append("no GPU: this node has no NVIDIA GPU or driver; training runs on the CPU")
        return lines, 0
    lines += [f"problem: {p.line()}" for p in found]
    return lines, 1
