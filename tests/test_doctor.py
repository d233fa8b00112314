"""The GPU check: the pure decision over every combination of facts (no GPU needed), ``pipeline doctor``
on this CPU machine, and a GPU preset sweep that ends each job with the one-line cause on the fake LSF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.train.doctor import GpuFacts, arch_supported, job_verdict, problems, requested_gpus
from tests.conftest import ROOT, TINY, run_py, train_env

# torch 2.13's published arch lists (PyTorch's support matrix, issues #172352 and #190385)
CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
V100, A100, A40, L40S, H100 = (("Tesla V100-SXM2-32GB", (7, 0)), ("NVIDIA A100-PCIE-40GB", (8, 0)),
                               ("NVIDIA A40", (8, 6)), ("NVIDIA L40S", (8, 9)), ("NVIDIA H100", (9, 0)))
GOOD = GpuFacts(torch_version="2.13.0+cu126", torch_cuda="12.6", arch_list=CU126, driver="550.54.15",
                cuda_available=True, gpus=[A100], node_gpus=1, bf16=True)


@pytest.mark.parametrize("gpu", [V100, A100, A40, L40S, H100], ids=lambda g: g[0].split()[-1])
def test_cu126_runs_on_every_dtu_gpu(gpu):
    assert problems(replace(GOOD, gpus=[gpu])) == []


@pytest.mark.parametrize("facts, cause", [
    (replace(GOOD, torch_version="2.13.0+cpu", torch_cuda=None, arch_list=[], cuda_available=False, gpus=[]),
     "torch 2.13.0+cpu is a CPU-only build"),
    (replace(GOOD, driver=None, cuda_available=False, gpus=[], node_gpus=0), "no NVIDIA driver on this node"),
    (replace(GOOD, torch_version="2.13.0", torch_cuda="13.0", arch_list=CU130, driver="550.54.15",
             cuda_available=False, gpus=[]), "driver 550.54.15 is too old for torch 2.13.0 (CUDA 13.0 needs >= 580"),
    (replace(GOOD, driver="470.82.01", cuda_available=False, gpus=[]), "driver 470.82.01 is too old"),
    (replace(GOOD, gpus=[], cuda_available=False, cuda_visible_devices=""),
     "no GPU visible to torch (CUDA_VISIBLE_DEVICES='')"),
    (replace(GOOD, gpus=[], cuda_available=False, node_gpus=0), "no GPU visible to torch (nvidia-smi lists 0)"),
    (replace(GOOD, gpus=[], cuda_available=False, cuda_visible_devices="0"),
     "torch cannot open any of the 1 GPU(s) nvidia-smi lists (CUDA_VISIBLE_DEVICES='0')"),
    (replace(GOOD, torch_version="2.13.0", torch_cuda="13.0", arch_list=CU130, driver="580.65.06", gpus=[V100]),
     "Tesla V100-SXM2-32GB (sm_70) is not in this torch's architectures (sm_75 sm_80"),
    (replace(GOOD, cuda_available=False), "torch.cuda.is_available() is False with driver 550.54.15"),
    (replace(GOOD, matmul_error="RuntimeError: CUDA error: busy"), "a tiny CUDA matmul failed (RuntimeError"),
], ids=["cpu-build", "no-driver", "cu130-old-driver", "cu126-old-driver", "hidden", "none-visible", "no-init",
        "arch-missing", "unavailable", "matmul"])
def test_each_cause_is_one_line_with_a_fix(facts, cause):
    found = problems(facts)
    assert len(found) == 1 and found[0].cause.startswith(cause), found
    line = job_verdict(1, "auto", facts)
    assert line == f"this job was given 1 GPU(s) but cannot use them: {found[0].line()}"
    assert "\n" not in line and ": " in found[0].line() and found[0].fix
    assert job_verdict(0, "auto", facts) is None      # no GPU asked for: CPU training is fine
    assert job_verdict(1, "cpu", facts) is None       # trainer.device=cpu: an explicit choice


def test_a_working_gpu_without_nvidia_smi_on_path_is_fine():
    assert problems(replace(GOOD, driver=None, node_gpus=0)) == []
    assert problems(replace(GOOD, driver=None, gpus=[V100], torch_cuda="13.0", arch_list=CU130))[0].cause \
        .startswith("Tesla V100-SXM2-32GB (sm_70) is not in")


def test_only_the_unsupported_gpu_is_named():
    facts = replace(GOOD, torch_cuda="13.0", arch_list=CU130, driver="580.65.06", gpus=[A100, V100])
    assert [p.cause.split(" (")[0] for p in problems(facts)] == ["Tesla V100-SXM2-32GB"]
    assert job_verdict(2, "cuda", replace(facts, gpus=[A100, L40S])) is None


@pytest.mark.parametrize("cap, arches, ok", [
    ((7, 0), CU126, True), ((7, 0), CU130, False), ((8, 9), ["sm_80", "sm_86"], True),
    ((8, 0), ["sm_86"], False), ((9, 0), ["sm_80", "compute_80"], True), ((7, 5), ["compute_80"], False),
    ((9, 0), ["sm_90a"], True), ((9, 1), ["sm_90a"], False), ((12, 0), ["sm_120"], True), ((10, 0), ["sm_90"], False),
])
def test_arch_compatibility(cap, arches, ok):
    assert arch_supported(cap, arches) is ok


@pytest.mark.parametrize("env, n", [
    ({}, 0), ({"CUDA_VISIBLE_DEVICES": "0"}, 0),                       # a GPU in sight is not a request
    ({"PIPELINE_GPUS": "2"}, 2), ({"PIPELINE_GPUS": "0", "LSB_GPU_REQ": "num=1"}, 0),
    ({"LSB_GPU_ALLOC_INFO": "gpu1:0", "CUDA_VISIBLE_DEVICES": "0,1"}, 2), ({"LSB_GPU_REQ": "num=1"}, 1),
    ({"LSB_GPU_REQ": ""}, 0), ({"SLURM_GPUS_ON_NODE": "1"}, 1), ({"SLURM_GPUS_ON_NODE": "0"}, 0),
    ({"SLURM_JOB_GPUS": "3,4", "CUDA_VISIBLE_DEVICES": "0,1"}, 2), ({"SLURM_JOB_ID": "5"}, 0),
])
def test_requested_gpus_from_launcher_and_scheduler(env, n):
    assert requested_gpus(env) == n


def _pipeline(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, cwd=ROOT)


def test_doctor_on_a_cpu_machine_says_no_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    res = _pipeline("doctor")
    assert res.returncode == 0, res.stderr
    assert f"torch      {torch.__version__}" in res.stdout
    assert res.stdout.strip().splitlines()[-1].startswith("no GPU: ")
    res = _pipeline("doctor", "--require-gpu")
    assert res.returncode == 1
    problem = [x for x in res.stdout.splitlines() if x.startswith("problem: ")]
    assert len(problem) == 1 and ("CPU-only build" in problem[0] or "no NVIDIA driver" in problem[0]), res.stdout


def test_job_given_a_gpu_stops_before_loading_data(monkeypatch):
    import torch

    from pipeline.train.doctor import GpuUnusable, require_gpu_if_requested

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    with pytest.raises(GpuUnusable, match=r"^this job was given 1 GPU\(s\) but cannot use them: "):
        require_gpu_if_requested("auto", {"LSB_GPU_REQ": "num=1:mode=exclusive_process"})
    require_gpu_if_requested("cpu", {"PIPELINE_GPUS": "1"})  # explicit CPU: no check
    require_gpu_if_requested("auto", {})


GPU_SWEEP = ["-m", "cluster=dtu_gpua100", "hydra.launcher.aggregate=false", "seed=0,1", *TINY]


def test_gpu_preset_dry_run_carries_the_gpu_requirement(tmp_path):
    res = run_py(tmp_path, *GPU_SWEEP, "hydra.launcher.dry_run=true",
                 env=train_env(tmp_path, PATH=str(Path(sys.executable).parent)), timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    script = next((tmp_path / "outputs").rglob("DRYRUN1_submission.sh")).read_text()
    assert '#BSUB -gpu "num=1:mode=exclusive_process"' in script
    assert "export PIPELINE_GPUS=1" in script
    assert "module load cuda" not in script  # the wheel brings its CUDA; a toolkit on LD_LIBRARY_PATH can clash


@pytest.mark.lsf
@pytest.mark.slow
def test_gpu_sweep_on_a_cpu_node_ends_each_job_with_the_cause(fake_lsf, shared_data, tmp_path):
    lsf = fake_lsf
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    res = run_py(tmp_path, *GPU_SWEEP, env=train_env(tmp_path, **lsf.env), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = lsf.wait_all(timeout=300)
    assert all(e["stat"] == "EXIT" for j in jobs.values() for e in j["elements"].values()), jobs
    sweep = next((tmp_path / "outputs").rglob("sweep.json")).parent
    manifest = json.loads((sweep / "sweep.json").read_text())
    cause = f"this job was given 1 GPU(s) but cannot use them: torch {torch.__version__} is a CPU-only build"
    for job in manifest["jobs"]:
        run_dir = Path(job["run_dir"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["status"] == "failed" and metrics["error"].startswith(cause), metrics
        assert not (run_dir / "metrics.jsonl").exists()  # not one training step on the CPU
    status = subprocess.run([sys.executable, "-m", "pipeline.cli", "status", str(sweep)], capture_output=True,
                            text=True, timeout=60, env=train_env(tmp_path, **lsf.env), cwd=ROOT)
    # the same note on every row is said once above the table (pipeline.results.tables drops constant columns)
    assert f"state=FAILED, note={cause}" in status.stdout and "2 jobs: 2 failed" in status.stdout, status.stdout
