"""How well a training job used its GPU: peak memory (torch's allocator) and utilisation (NVML, sampled).

On a CUDA device :meth:`GpuUse.start` resets torch's peak-memory counter and starts a :class:`UtilSampler`:
a daemon thread that asks NVML (``nvidia-ml-py``, ``import pynvml``) for the training GPU's utilisation
every ``INTERVAL_S`` seconds while the loop trains (evaluations and checkpoint writes are left out: the
loop pauses it). On CPU nothing is started and pynvml is not imported.

``metrics.json`` (completed and pruned runs) gets ``"gpu"``::

    {"name": "NVIDIA H100 80GB HBM3", "count": 1, "peak_mem_gb": 9.41, "mem_total_gb": 79.19,
     "util_mean": 93.2, "util_samples": 1480, "low_util_frac": 0.03, "warning": null}

and ``progress.json`` ``"gpu"`` while training: ``{"util": <mean since the last write>, "mem_gb",
"peak_mem_gb", "mem_total_gb"}``. Memory is in GiB (2**30 bytes), ``count`` is the GPUs the job sees (it
trains on the first), utilisation is NVML's: the percent of time in which at least one kernel ran.

A run whose GPU sat below ``LOW_UTIL_PCT`` in more than ``LOW_MAJORITY`` of the samples gets one warning
(in its log and in ``gpu.warning``) naming the likely cause: a batch too small for the GPU when the peak
memory is a small share of it, else data loading (the CPU prepares batches slower than the GPU uses them).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

#: seconds between NVML samples: a few a second (NVML's own counter covers 1/6 s to 1 s per reading)
INTERVAL_S = 0.2
#: utilisation (percent) below which a sample counts as low. A fine-tuning step that keeps the GPU fed runs
#: kernels 90-100 % of the time; below half, the GPU waits on something else more than it computes.
LOW_UTIL_PCT = 50.0
#: the share of low samples above which the run gets a warning ("most of its steps")
LOW_MAJORITY = 0.5
#: fewer samples than this (2 s of training) say nothing either way: no warning
MIN_SAMPLES = 10
#: a peak below this share of the GPU's memory: the batch, not the input pipeline, is the likely cause
SMALL_BATCH_MEM = 0.25
GIB = 2**30


class UtilSampler:
    """A thread that reads one GPU's utilisation from NVML every ``interval_s`` seconds.

    ``nvml`` is the ``pynvml`` module, or an object with the same functions (``nvmlInit``,
    ``nvmlDeviceGetHandleByUUID``, ``nvmlDeviceGetHandleByIndex``, ``nvmlDeviceGetUtilizationRates``,
    ``nvmlDeviceGetName``, ``nvmlShutdown``): tests pass a fake one."""

    def __init__(self, nvml: Any, index: int = 0, uuid: str | None = None, interval_s: float = INTERVAL_S) -> None:
        self.nvml = nvml
        self.interval_s = interval_s
        nvml.nvmlInit()
        self.handle = _handle(nvml, index, uuid)
        name = nvml.nvmlDeviceGetName(self.handle)
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        self.samples = self.low = 0
        self.total = 0.0
        self._window = (0.0, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-util-sampler", daemon=True)

    def start(self) -> UtilSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self._paused.is_set():
                continue
            try:
                self.add(float(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu))
            except Exception as e:  # noqa: BLE001 - a lost GPU or driver: stop sampling, never stop training
                log.warning("GPU utilisation sampling stopped: %s", e)
                return

    def add(self, util: float) -> None:
        with self._lock:
            self.samples += 1
            self.total += util
            self.low += util < LOW_UTIL_PCT
            total, n = self._window
            self._window = (total + util, n + 1)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No samples inside (an evaluation, a checkpoint write: not training steps)."""
        self._paused.set()
        try:
            yield
        finally:
            self._paused.clear()

    def window(self) -> float | None:
        """The mean utilisation since the last call (None without a new sample)."""
        with self._lock:
            total, n = self._window
            self._window = (0.0, 0)
        return round(total / n, 1) if n else None

    def summary(self) -> dict[str, Any]:
        with self._lock:
            n = self.samples
            return {"util_mean": round(self.total / n, 1) if n else None, "util_samples": n,
                    "low_util_frac": round(self.low / n, 3) if n else None}

    def stop(self) -> None:
        """End the thread; a bounded wait, so that an NVML call stuck on a failed GPU cannot keep the run from
        writing its metrics.json (the thread is a daemon: it dies with the process)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(1.0, 3 * self.interval_s))
        if self._thread.is_alive():
            log.warning("GPU utilisation sampler did not stop (NVML not answering); left to end with the job")
            return
        with contextlib.suppress(Exception):
            self.nvml.nvmlShutdown()


def _handle(nvml: Any, index: int, uuid: str | None) -> Any:
    """NVML's handle of torch's device: by UUID (NVML numbers every GPU of the node, ignoring
    ``CUDA_VISIBLE_DEVICES``; torch numbers the visible ones), else by index."""
    if uuid:
        for form in (uuid, f"GPU-{uuid}"):
            with contextlib.suppress(Exception):
                return nvml.nvmlDeviceGetHandleByUUID(form)
    return nvml.nvmlDeviceGetHandleByIndex(index)


def warning(util: dict[str, Any], peak_gb: float, total_gb: float) -> str | None:
    """One line naming the likely cause when most samples were below ``LOW_UTIL_PCT``; else None."""
    n, frac = util.get("util_samples") or 0, util.get("low_util_frac")
    if n < MIN_SAMPLES or frac is None or frac <= LOW_MAJORITY:
        return None
    head = (f"GPU busy {util['util_mean']:.0f}% on average, below {LOW_UTIL_PCT:.0f}% in {frac:.0%} of "
            f"{n} samples while training")
    if total_gb and peak_gb < SMALL_BATCH_MEM * total_gb:
        return (f"{head}: likely a small batch (peak memory {peak_gb:.1f} of {total_gb:.1f} GiB): raise "
                "trainer.batch_size")
    return (f"{head}: likely data loading (batches are collated on the CPU between steps; few CPU cores for "
            "the job, or a CPU-bound collate): give the job more cores, or raise trainer.batch_size")


class GpuUse:
    """Peak memory and sampled utilisation of the CUDA device a job trains on."""

    def __init__(self, device: Any, sampler: UtilSampler | None) -> None:
        import torch

        self.cuda = torch.cuda
        self.device = device
        props = torch.cuda.get_device_properties(device)
        self.name, self.count = props.name, torch.cuda.device_count()
        self.total_gb = props.total_memory / GIB
        self.sampler = sampler

    @classmethod
    def start(cls, device: str, nvml: Any = None) -> GpuUse | None:
        """None on CPU (no thread, no pynvml import); on CUDA the peak counter reset and the sampler running
        (without it, with one logged line, where NVML cannot be used)."""
        if not device.startswith("cuda"):
            return None
        import torch

        index = torch.cuda.current_device() if device == "cuda" else torch.device(device).index
        torch.cuda.reset_peak_memory_stats(index)
        try:
            if nvml is None:
                import pynvml as nvml
            uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
            sampler = UtilSampler(nvml, index, str(uuid) if uuid else None).start()
        except Exception as e:  # noqa: BLE001 - no NVML (driver library, container): memory figures only
            log.warning("GPU utilisation is not sampled (NVML: %s); peak memory still is", e)
            sampler = None
        return cls(index, sampler)

    def paused(self) -> contextlib.AbstractContextManager:
        return self.sampler.paused() if self.sampler else contextlib.nullcontext()

    def peak_gb(self) -> float:
        return self.cuda.max_memory_allocated(self.device) / GIB

    def progress(self) -> dict[str, Any]:
        """``progress.json``'s ``"gpu"``."""
        return {"util": self.sampler.window() if self.sampler else None,
                "mem_gb": round(self.cuda.memory_allocated(self.device) / GIB, 2),
                "peak_mem_gb": round(self.peak_gb(), 2), "mem_total_gb": round(self.total_gb, 2)}

    def finish(self) -> dict[str, Any]:
        """Stop sampling; ``metrics.json``'s ``"gpu"``."""
        util = {"util_mean": None, "util_samples": 0, "low_util_frac": None}
        if self.sampler:
            self.sampler.stop()
            util = self.sampler.summary()
        return report(self.name, self.count, self.peak_gb(), self.total_gb, util)


def report(name: str, count: int, peak_gb: float, total_gb: float, util: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json``'s ``"gpu"`` from the figures; a low-utilisation warning is logged here, once."""
    line = warning(util, peak_gb, total_gb)
    if line:
        log.warning("%s", line)
    return {"name": name, "count": count, "peak_mem_gb": round(peak_gb, 2), "mem_total_gb": round(total_gb, 2),
            **util, "warning": line}
