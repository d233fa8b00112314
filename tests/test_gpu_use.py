"""GPU use without a GPU: the NVML sampler's thread, mean, low fraction and warning, against a fake NVML.

The fake is a small module object with the pynvml functions the sampler calls, passed in as ``nvml`` (pynvml
itself is never patched). The real sampler on CUDA: ``tests/test_gpu.py`` (marked ``gpu``).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import types

from pipeline.train import gpu_use
from pipeline.train.gpu_use import LOW_UTIL_PCT, UtilSampler, report, warning
from tests.conftest import ROOT


class NvmlGone(Exception):
    """What the fake raises once it has served every value (as pynvml raises NVMLError)."""


def fake_nvml(values: list[float], uuids: tuple[str, ...] = ()) -> types.ModuleType:
    """A module with the pynvml functions UtilSampler calls, answering ``values`` one per reading, then
    raising (the sampler stops); ``served`` is set once all are out."""
    nvml = types.ModuleType("fake_pynvml")
    nvml.served = threading.Event()
    nvml.log = []
    queue = list(values)

    def utilization(handle):
        nvml.log.append(handle)
        if not queue:
            nvml.served.set()
            raise NvmlGone("no more readings")
        return types.SimpleNamespace(gpu=queue.pop(0), memory=0)

    def by_uuid(uuid):
        if uuid not in uuids:
            raise NvmlGone(f"no GPU with UUID {uuid}")
        return f"uuid:{uuid}"

    nvml.nvmlInit = lambda: nvml.log.append("init")
    nvml.nvmlShutdown = lambda: nvml.log.append("shutdown")
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"index:{i}"
    nvml.nvmlDeviceGetHandleByUUID = by_uuid
    nvml.nvmlDeviceGetName = lambda handle: b"Fake GPU 80GB"
    nvml.nvmlDeviceGetUtilizationRates = utilization
    return nvml


def test_the_sampler_thread_reads_nvml_and_reports_the_mean_and_the_low_fraction():
    values = [10, 20, 30, 40, 45, 95, 95, 100, 90, 70]  # 5 of 10 below LOW_UTIL_PCT
    nvml = fake_nvml(values)
    sampler = UtilSampler(nvml, index=1, interval_s=0.01).start()
    assert any(t.name == "gpu-util-sampler" and t.daemon for t in threading.enumerate())  # in the background
    assert nvml.served.wait(10), "the sampler never read NVML"
    sampler.stop()
    assert sampler.name == "Fake GPU 80GB" and nvml.log[0] == "init" and nvml.log[-1] == "shutdown"
    assert set(nvml.log[1:-1]) == {"index:1"}  # no UUID given: by torch's index
    assert sampler.summary() == {"util_mean": 59.5, "util_samples": 10, "low_util_frac": 0.5}
    assert LOW_UTIL_PCT == 50.0


def test_an_nvml_call_that_never_returns_does_not_keep_the_run_from_ending(caplog):
    """A GPU fault can leave an NVML call hanging: stop() waits a bounded time, then leaves the daemon thread to
    end with the job, so the run still writes its metrics.json."""
    nvml = fake_nvml([])
    stuck = threading.Event()
    release = threading.Event()

    def hang(handle):
        stuck.set()
        release.wait(30)
        return types.SimpleNamespace(gpu=50, memory=0)

    nvml.nvmlDeviceGetUtilizationRates = hang
    sampler = UtilSampler(nvml, interval_s=0.01).start()
    assert stuck.wait(10)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=gpu_use.__name__):
        sampler.stop()
    assert time.monotonic() - started < 5
    assert "did not stop" in caplog.text and "shutdown" not in nvml.log
    release.set()


def test_the_window_is_the_mean_since_the_last_progress_write_and_paused_time_is_not_sampled():
    nvml = fake_nvml([80, 60, 0, 0, 0, 0], uuids=("GPU-abc",))
    sampler = UtilSampler(nvml, uuid="abc", interval_s=0.01)
    with sampler.paused():
        sampler.start()
        time.sleep(0.2)
        assert sampler.summary()["util_samples"] == 0 and "uuid:GPU-abc" not in nvml.log  # nothing read
    assert nvml.served.wait(10)
    sampler.stop()
    assert "uuid:GPU-abc" in nvml.log  # NVML's numbering ignores CUDA_VISIBLE_DEVICES: found by UUID
    assert sampler.window() == round(140 / 6, 1) and sampler.window() is None
    assert sampler.summary() == {"util_mean": 23.3, "util_samples": 6, "low_util_frac": round(4 / 6, 3)}


def test_a_gpu_idle_most_of_the_time_gets_one_warning_naming_the_likely_cause(caplog):
    low = {"util_mean": 31.0, "util_samples": 600, "low_util_frac": 0.8}
    small = warning(low, peak_gb=3.1, total_gb=79.2)
    assert small == ("GPU busy 31% on average, below 50% in 80% of 600 samples while training: likely a small "
                     "batch (peak memory 3.1 of 79.2 GiB): raise trainer.batch_size")
    data = warning(low, peak_gb=60.0, total_gb=79.2)
    assert data.startswith("GPU busy 31% on average") and "likely data loading" in data
    assert "more cores" in data and "trainer.batch_size" in data
    assert warning({**low, "low_util_frac": 0.5}, 3.1, 79.2) is None  # half the time is not "most"
    assert warning({**low, "util_samples": 5}, 3.1, 79.2) is None  # a second of samples says nothing
    assert warning({"util_mean": None, "util_samples": 0, "low_util_frac": None}, 3.1, 79.2) is None

    with caplog.at_level(logging.WARNING, logger=gpu_use.__name__):
        out = report("NVIDIA H100 80GB HBM3", 1, 3.14159, 79.19, low)
    assert out == {"name": "NVIDIA H100 80GB HBM3", "count": 1, "peak_mem_gb": 3.14, "mem_total_gb": 79.19,
                   "util_mean": 31.0, "util_samples": 600, "low_util_frac": 0.8, "warning": small}
    assert [r.getMessage() for r in caplog.records] == [out["warning"]]  # one line in the job's log
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=gpu_use.__name__):
        assert report("x", 1, 70.0, 79.19, {**low, "low_util_frac": 0.1})["warning"] is None
    assert not caplog.records


def test_on_cpu_nothing_is_started_and_pynvml_is_not_imported():
    code = ("import sys, threading\n"
            "from pipeline.train.gpu_use import GpuUse\n"
            "before = threading.active_count()\n"
            "assert GpuUse.start('cpu') is None\n"
            "assert 'pynvml' not in sys.modules and threading.active_count() == before\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
