"""``bench/gpu.sh --dry-run`` on the CPU: the GPU benchmark's whole code path with tiny settings, so that the
script a person runs on a GPU node does not rot (doctor, the gpu-marked tests, both loops, both models,
the table and report.md)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bench.gpu import flops_per_sample, peak_tflops, plan, table
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_gpu_sh_dry_run_exercises_every_step(shared_data, tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: run bench/gpu.sh itself")
    out = tmp_path / "bench"
    env = {**os.environ, "BENCH_OUT": str(out), "PIPELINE_DATA_DIR": str(shared_data),
           "PIPELINE_OUTPUT_ROOT": str(tmp_path / "outputs"), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([str(ROOT / "bench" / "gpu.sh"), "--dry-run"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "no GPU: " in (out / "doctor.txt").read_text()
    assert " skipped" in (out / "gpu-tests.txt").read_text() and "failed" not in (out / "gpu-tests.txt").read_text()
    report = json.loads((out / "gpu.json").read_text())
    runs = {(r["model"], r["loop"]): r for r in report["runs"]}
    assert report["dry_run"] is True and set(runs) == {(m, lp) for m in ("minilm", "bert-base")
                                                        for lp in ("ours", "hf")}
    for r in runs.values():
        assert r["train_samples_per_s"] > 0 and 0 <= r["test_accuracy"] <= 1 and r["device"] == "cpu"
        assert r["flops_per_sample"] > 0 and r["precision"] in ("bf16", "fp32")
    md = (out / "report.md").read_text()
    assert "| model     | prec | loop | samples/s |" in md and md.count(": ours/HF samples/s = ") == 2
    assert all(len(line) <= 80 for line in md.splitlines() if line.startswith("|"))


def test_gpu_plan_covers_both_models_precisions_and_loops():
    runs = plan(dry_run=False)
    assert {(m, p, lp) for m, p, lp, _ in runs} == {(m, p, lp) for m in ("minilm", "bert-base")
                                                   for p in ("bf16", "fp16") for lp in ("ours", "hf")}
    bert = next(o for m, _, _, o in runs if m == "bert-base")
    assert "model.tiny.hidden_size=768" in bert and "model.tiny.num_hidden_layers=12" in bert
    assert all("trainer.device=cpu" not in o for *_, o in runs)
    assert {p for _, p, _, _ in plan(dry_run=False, bf16=False)} == {"fp16"}  # V100


def test_mfu_arithmetic_and_table_width():
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0 and peak_tflops("Tesla V100-SXM2-32GB") == 125.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0 and peak_tflops(None) is None
    # bert-base, 128 tokens: 6 x 85M x 128 + 12 x 12 x 768 x 128^2
    assert flops_per_sample(12, 768, 3072, [128]) == pytest.approx(6 * 84_934_656 * 128 + 12 * 12 * 768 * 128**2)
    rows = [{"model": "bert-base", "loop": lp, "precision": "bf16", "train_samples_per_s": s, "peak_mem_gb": 3.2,
             "test_accuracy": 0.9, "flops_per_sample": 1e11} for lp, s in (("ours", 600), ("hf", 400))]
    text = table(rows, 312.0)
    assert "19.2%" in text and "bert-base bf16: ours/HF samples/s = 1.50" in text
    assert all(len(line) <= 80 for line in text.splitlines())
