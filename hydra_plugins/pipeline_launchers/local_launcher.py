"""``hydra/launcher=local_processes``: a sweep as local processes, at most ``max_parallel`` at a time.

submitit's LocalExecutor starts every job at once; this launcher keeps a window of running jobs (by
default cores // cpus_per_task, and one at a time for GPU jobs unless ``visible_gpus`` lists GPUs to
share out), writes ``sweep.json`` (scheduler ``local``, job id = the job's process id, ``launcher_pid``) and
waits, showing the sweep's progress meanwhile (:class:`pipeline.results.watch.SweepView`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra.errors import CompactHydraException
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

from pipeline.errors import SubmissionError

from . import _sweep

log = logging.getLogger(__name__)

POLL_S = 0.2


def parallelism(params: dict[str, Any]) -> tuple[int, list[list[int]]]:
    """How many jobs run at once, and the GPU ids each slot gets (empty lists without GPUs)."""
    gpus = int(params.get("gpus_per_node") or 0)
    visible = [int(g) for g in params.get("visible_gpus") or []]
    cores = max(1, int(params.get("cpus_per_task") or 1))
    n = params.get("max_parallel") or max(1, (os.cpu_count() or 1) // cores)
    if gpus > 0:
        if len(visible) < gpus:
            return 1, [list(range(gpus))]
        slots = [visible[k * gpus:(k + 1) * gpus] for k in range(len(visible) // gpus)]
        n = min(int(n), len(slots))
        return n, slots[:n]
    return int(n), [[] for _ in range(int(n))]


def drop_unexpanded_folder(folder: Path) -> None:
    """Remove the empty ``.submitit/%j`` folder: submitit's local job controller creates its folder
    argument before it expands ``%j`` (the jobs' files go to ``.submitit/<pid>/``)."""
    if "%" in str(folder):
        try:
            Path(folder).rmdir()
        except OSError:  # not there, or not empty: leave it
            pass


class LocalLaunchError(CompactHydraException, SubmissionError):
    """A launcher setting that cannot work: Hydra prints the message alone (one line)."""


class LocalProcessesLauncher(BaseSubmititLauncher):
    _EXECUTOR = "local"

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        from pipeline.launch import packing

        assert self.config is not None
        p = self.params
        try:
            k = packing.runs_per_job(p)
            sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
            time_line = packing.check_time(k, *packing.expected_run_min(p, sweep_dir), p.get("timeout_min"),
                                           "timeout_min") if k > 1 else ""
        except packing.PackError as e:
            raise LocalLaunchError(str(e)) from None
        if not p.get("wait", True):
            raise ValueError("hydra.launcher.wait=false: local_processes always waits for its jobs "
                             "(use an LSF or Slurm launcher to submit and return)")
        n_parallel, slots = parallelism(p)
        os.environ["PYTHONPATH"] = _sweep.plugin_pythonpath()  # the job processes unpickle this launcher
        if int(p.get("gpus_per_node") or 0) > 0:  # the jobs refuse to train on the CPU (pipeline.train.doctor)
            os.environ["PIPELINE_GPUS"] = str(int(p["gpus_per_node"]))
        # share the cores out instead of letting every job start one thread per core (oversubscription)
        at_once = max(1, min(n_parallel, len(job_overrides)))
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // at_once)))
        executor = submitit.LocalExecutor(folder=p["submitit_folder"], max_num_timeout=int(p.get("max_num_timeout", 0)))
        base = {"timeout_min": p.get("timeout_min"), "tasks_per_node": p.get("tasks_per_node") or 1,
                "gpus_per_node": int(p.get("gpus_per_node") or 0), "nodes": p.get("nodes") or 1,
                "stderr_to_stdout": bool(p.get("stderr_to_stdout", False))}
        executor.update_parameters(**{k: v for k, v in base.items() if v is not None})

        sweep_dir.mkdir(parents=True, exist_ok=True)
        state = Singleton.get_state()
        dirs = _sweep.run_dirs(self, job_overrides, initial_job_idx)
        entries = [_sweep.job_entry(initial_job_idx + n, None, dirs[n], None, None, o)
                   for n, o in enumerate(job_overrides)]
        groups = packing.chunks(len(job_overrides), k)
        calls: list[Any] = [None] * len(groups)  # None: self(...) for one point per job

        if k > 1:
            points = [packing.LauncherCall(self, list(o), "hydra.sweep.dir", initial_job_idx + n,
                                           f"job_id_for_{initial_job_idx + n}", state)
                      for n, o in enumerate(job_overrides)]
            calls = packing.pack(points, dirs, k)  # type: ignore[assignment]
            log.info(f"{packing.describe(k, len(job_overrides))}; {time_line}")

        def save() -> None:
            extra = {}
            if k > 1:
                extra = packing.manifest_fields(k, groups, [entries[g[0]]["job_id"] for g in groups],
                                                initial_job_idx)
            data = _sweep.manifest(scheduler="local", submitit_folder=executor.folder, arrays=[], jobs=entries,
                                   gpus_per_job=base["gpus_per_node"], launcher_pid=os.getpid(), **extra)
            _sweep.write(sweep_dir, data, initial_job_idx)

        save()
        log.info(f"Local sweep in {sweep_dir}: {len(job_overrides)} jobs, {n_parallel} at a time; follow it with "
                 f"`pipeline watch {sweep_dir}` or `pipeline logs {sweep_dir} {initial_job_idx} -f`")
        view = _progress_view(sweep_dir, self.config)
        jobs: list[Any] = [None] * len(groups)
        running: dict[int, int] = {}  # scheduler job index -> slot
        free = list(range(n_parallel))
        nxt = 0
        while nxt < len(groups) or running:
            while nxt < len(groups) and free:
                slot = free.pop(0)
                for n in groups[nxt]:
                    log.info(f"\t#{initial_job_idx + n} : {' '.join(filter_overrides(job_overrides[n]))}")
                if slots[slot]:
                    executor.update_parameters(visible_gpus=slots[slot])
                if calls[nxt] is None:
                    idx = initial_job_idx + nxt
                    job = executor.submit(self, list(job_overrides[nxt]), "hydra.sweep.dir", idx,
                                          f"job_id_for_{idx}", state)
                else:
                    job = executor.submit(calls[nxt])
                jobs[nxt] = job
                for n in groups[nxt]:
                    entries[n].update(job_id=str(job.job_id), stdout=str(job.paths.stdout), stderr=str(
                        job.paths.stdout if base["stderr_to_stdout"] else job.paths.stderr))
                running[nxt] = slot
                nxt += 1
                save()
            for done in [done for done in running if jobs[done].done()]:
                free.append(running.pop(done))
            view.refresh()
            if running:
                time.sleep(POLL_S)
        view.refresh(force=True)
        view.close()
        drop_unexpanded_folder(executor.folder)
        if k > 1:
            return packing.flatten([job.results()[0] for job in jobs])
        return [job.results()[0] for job in jobs]


def _progress_view(sweep_dir: Path, config: Any) -> Any:
    """What the sweep shows while it blocks: ``pipeline watch``'s live table on a terminal, else one line
    per change ("job 3 finished: COMPLETED ..."). The results table follows from the AggregateAtEnd callback."""
    from pipeline.results.watch import SweepView

    metric = "val_" + str(config.get("trainer", {}).get("monitor", "macro_f1"))
    return SweepView(sweep_dir, metric, interval=1.0)
