"""The GPU path: fp16 AMP with GradScaler, CUDA RNG state in checkpoints, exact resume on CUDA, GPU use.

Marked ``gpu``: ``pytest -m gpu tests`` (bench/gpu.sh runs them). Without a usable CUDA device they skip and
say why (on the development machine: a CPU-only torch and no GPU).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import TINY, read_json, run_py, train_env


def _no_cuda_reason() -> str | None:
    import torch

    if torch.cuda.is_available():
        return None
    return f"no usable CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); " \
           "run `pipeline doctor` for the cause"


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_no_cuda_reason() is not None, reason=_no_cuda_reason() or "")]

STEPS = ["trainer.eval_every_steps=10", "trainer.checkpoint_every_steps=5", "trainer.device=cuda"]


def _tiny_model():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, num_labels=3)
    return BertForSequenceClassification(config).cuda()


def test_fp16_amp_step_with_grad_scaler():
    """What the loop does with precision=fp16: autocast to float16, scaled backward, unscale + clip, step;
    a step with non-finite gradients is skipped and the scale backs off."""
    import torch

    from pipeline.train.device import autocast, pick_precision

    assert pick_precision("fp16", "cuda") == "fp16"
    native_bf16 = torch.cuda.get_device_capability()[0] >= 8  # a V100 only emulates bf16: auto picks fp16 there
    assert pick_precision("auto", "cuda") == ("bf16" if native_bf16 else "fp16")
    model = _tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    scaler = torch.amp.GradScaler("cuda", enabled=True)
    batch = {"input_ids": torch.randint(0, 1000, (4, 16), device="cuda"),
             "attention_mask": torch.ones(4, 16, dtype=torch.long, device="cuda"),
             "labels": torch.tensor([0, 1, 2, 0], device="cuda")}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with autocast("cuda", "fp16"):
        out = model(**batch)
    assert out.logits.dtype == torch.float16
    scale0 = scaler.get_scale()
    scaler.scale(out.loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    assert torch.isfinite(out.loss) and scaler.get_scale() == scale0
    changed = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert any(not torch.equal(before[n], changed[n]) for n in before)

    with autocast("cuda", "fp16"):
        loss = model(**batch).loss * float("inf")  # overflow: the step must be skipped
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == scale0 / 2
    assert all(torch.equal(changed[n], p) for n, p in model.named_parameters())


def test_cuda_rng_state_travels_in_the_checkpoint(tmp_path: Path):
    import torch

    from pipeline.train import checkpoint

    torch.cuda.manual_seed_all(123)
    torch.rand(5, device="cuda")
    checkpoint.save_last(tmp_path, {"rng": checkpoint.rng_state()})
    expected = torch.rand(1000, device="cuda")
    saved = checkpoint.load_last(tmp_path)["rng"]
    assert "cuda" in saved and len(saved["cuda"]) == torch.cuda.device_count()
    torch.cuda.manual_seed_all(999)  # move the generator on
    checkpoint.set_rng_state(saved)
    assert torch.equal(torch.rand(1000, device="cuda"), expected)


def test_the_nvml_sampler_sees_the_gpu_working():
    """The real sampler (pynvml) on the training GPU: found by UUID, non-zero utilisation under matmuls, the
    peak from torch's allocator."""
    import time

    import pynvml
    import torch

    from pipeline.train.gpu_use import GpuUse

    use = GpuUse.start("cuda")
    assert use is not None and use.sampler is not None, "NVML could not be used (see the warning above)"
    uuid = pynvml.nvmlDeviceGetUUID(use.sampler.handle)
    assert str(torch.cuda.get_device_properties(0).uuid) in (uuid.decode() if isinstance(uuid, bytes) else uuid)
    a = torch.randn(4096, 4096, device="cuda")
    deadline = time.time() + 3
    while time.time() < deadline:
        for _ in range(20):
            a = torch.tanh(a @ a)
        torch.cuda.synchronize()
    gpu = use.finish()
    assert gpu["name"] == torch.cuda.get_device_name(0) and gpu["count"] == torch.cuda.device_count()
    assert gpu["util_samples"] >= 5 and gpu["util_mean"] > 0, gpu
    assert 0 < gpu["peak_mem_gb"] < gpu["mem_total_gb"]
    print("sampler on", gpu["name"], gpu)


def _final(run_dir: Path) -> dict:
    m = read_json(run_dir / "metrics.json")
    return {k: m[k] for k in ("status", "val", "test", "best_step", "steps", "device", "precision")}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_resume_on_cuda_is_exact(tmp_path: Path, precision: str):
    """SIGKILL after the 3rd checkpoint, rerun: the same final metrics as an uninterrupted run on the GPU
    (model, optimizer, scheduler, GradScaler and CUDA RNG states all restored)."""
    import torch

    if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU has no bf16 (e.g. V100)")
    args = [*TINY, *STEPS, f"trainer.precision={precision}"]
    env = train_env(tmp_path, CUBLAS_WORKSPACE_CONFIG=":4096:8")
    ref = tmp_path / "ref"
    assert run_py(tmp_path, *args, f"hydra.run.dir={ref}", env=env).returncode == 0
    run_dir = tmp_path / "run"
    killed = run_py(tmp_path, *args, f"hydra.run.dir={run_dir}",
                    env={**env, "PIPELINE_FAULTS": "after_checkpoint:3"})
    assert killed.returncode == -signal.SIGKILL
    resumed = run_py(tmp_path, *args, f"hydra.run.dir={run_dir}", env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from checkpoints/last at step 15" in (run_dir / "run.log").read_text()
    assert _final(run_dir) == _final(ref)
    assert _final(ref)["device"] == "cuda" and _final(ref)["precision"] == precision
    gpu = read_json(ref / "metrics.json")["gpu"]  # the run's GPU use, as pipeline.train.gpu_use records it
    assert set(gpu) == {"name", "count", "peak_mem_gb", "mem_total_gb", "util_mean", "util_samples",
                        "low_util_frac", "warning"}
    assert gpu["peak_mem_gb"] > 0 and isinstance(gpu["util_samples"], int), gpu  # a 2 s run: few samples
    assert set(read_json(ref / "progress.json")["gpu"]) == {"util", "mem_gb", "peak_mem_gb", "mem_total_gb"}
    print("tiny run on", gpu["name"], gpu)
