"""``hydra/launcher=lsf``: a Hydra sweep becomes one ``bsub`` job array (several above max_array_size).

    python run.py -m cluster=dtu_gpua100 trainer.lr=2e-5,3e-5,5e-5 seed=0,1,2

With ``wait: false`` (the default) the launcher validates every setting, submits the array(s), writes
``<sweep_dir>/sweep.json``, submits one aggregation job (``bsub -w "ended(<arrays>)"``), prints the job
ids and the follow-up commands, and returns. With ``wait: true`` it waits for the results like
hydra-submitit-launcher. On the compute node the pickled launcher runs the job (``__call__``) and, at
the run limit, ``checkpoint()`` gives submitit the same call to requeue; ``pipeline.train.train.fit`` saves
``checkpoints/last`` first and resumes from it.

``import submitit`` and the LSF backend are lazy: plugin discovery stays fast.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

from pipeline.errors import SubmissionError

from . import _payload, _sweep

log = logging.getLogger(__name__)

#: BaseQueueConf keys submitit translates (timeout_min -> timeout_min, cpus_per_task -> cores, ...)
GENERIC_KEYS = frozenset(f.name for f in dataclasses.fields(BaseQueueConf)) - {"submitit_folder"}
#: LsfQueueConf keys the launcher itself uses; every other key is a bsub parameter
LAUNCHER_KEYS = frozenset({
    "submitit_folder", "wait", "dry_run", "max_num_timeout", "python",
    "aggregate", "aggregate_queue", "aggregate_timeout_min", "aggregate_mem_per_slot",
    "runs_per_job", "expected_run_min",
})


class LsfLaunchError(CompactHydraException, SubmissionError):
    """A setting LSF would refuse, bsub missing or refusing: Hydra prints the message alone (one line)."""


class LsfLauncher(BaseSubmititLauncher):
    _EXECUTOR = "lsf"

    def make_executor(self) -> Any:
        """An LsfExecutor with every parameter checked (unknown keys, limits, memory, quoting)."""
        from pipeline.launch.submitit_lsf.lsf import LsfExecutor

        p = self.params
        executor = LsfExecutor(Path(str(p["submitit_folder"])).absolute(),
                               max_num_timeout=int(p.get("max_num_timeout", 3)),
                               python=p.get("python"), dry_run=bool(p.get("dry_run", False)))
        generic = {k: v for k, v in p.items() if k in GENERIC_KEYS and v is not None}
        specific = {k: v for k, v in p.items() if k not in GENERIC_KEYS and k not in LAUNCHER_KEYS}
        specific["env"] = {"PYTHONPATH": _sweep.plugin_pythonpath(), **(specific.get("env") or {})}
        if int(p.get("gpus_per_node") or 0) > 0:  # the job refuses to train on the CPU (pipeline.train.doctor)
            specific["env"]["PIPELINE_GPUS"] = str(int(p["gpus_per_node"]))
        executor.update_parameters(**executor._convert_parameters(generic), **specific)
        return executor

    def aggregate_script(self, executor: Any, sweep_dir: Path, depends_on: Sequence[str]) -> str:
        from pipeline.launch.submitit_lsf.lsf import make_aggregate_bsub_string

        p, ex = self.params, executor.parameters
        command = f"{executor.python} -m pipeline.cli aggregate {shlex.quote(str(sweep_dir))}"
        return make_aggregate_bsub_string(
            command, sweep_dir, depends_on=depends_on, job_name=f"{ex.get('job_name', 'sweep')}_aggregate",
            queue=p.get("aggregate_queue") or ex.get("queue"),  # null: the sweep's own queue
            project=ex.get("project"), dialect=ex.get("dialect", "lsf10"),
            timeout_min=int(p.get("aggregate_timeout_min", 30)), mem_per_slot=p.get("aggregate_mem_per_slot"),
            mem_unit=ex.get("mem_unit", "MB"), setup=ex.get("setup"),
            env={k: v for k, v in (ex.get("env") or {}).items() if k != "PIPELINE_GPUS"})  # a CPU job

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedSubmissionError

        from pipeline.launch.lsf import what_to_change
        from pipeline.launch.packing import PackError
        from pipeline.launch.submitit_lsf.lsf import BsubNotFoundError, LsfConfigError

        try:
            return self._launch(job_overrides, initial_job_idx)
        except (LsfConfigError, BsubNotFoundError, PackError) as e:
            raise LsfLaunchError(str(e)) from None
        except FailedSubmissionError as e:  # bsub answered no: nothing ran, no job failed
            said = str(e)
            raise LsfLaunchError(f"{said}; nothing was submitted: {what_to_change(said)}") from None

    def _launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        assert len(job_overrides) > 0
        p = self.params
        wait, dry_run = bool(p.get("wait", False)), bool(p.get("dry_run", False))
        aggregate = bool(p.get("aggregate", True)) and not wait
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()

        # 1. everything that can be wrong fails here, before any file or bsub
        from pipeline.launch import packing
        from pipeline.launch.submitit_lsf import queues

        k = packing.runs_per_job(p)
        executor = self.make_executor()
        time_line = self._check_pack_time(k, executor, sweep_dir) if k > 1 else None
        if aggregate:
            self.aggregate_script(executor, sweep_dir, ["0"])
        executor.check_can_submit()
        queues.check_queues(p, aggregate)  # a queue bqueues does not list: one line, exit 2

        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))

        # 2. the launcher pickled once, a small pickle per job, one bsub per array
        folder = _sweep.folder_of(executor.folder)
        folder.mkdir(parents=True, exist_ok=True)
        payload = _payload.write(folder, self, Singleton.get_state())
        fns = []
        for n, overrides in enumerate(job_overrides):
            idx = initial_job_idx + n
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            fns.append(_payload.SweepJob(payload, list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}"))
        dirs = _sweep.run_dirs(self, job_overrides, initial_job_idx)
        groups = packing.chunks(len(fns), k)
        packed = executor.submit_array(packing.pack(fns, dirs, k) if k > 1 else fns)
        jobs = [packed[g] for g, group in enumerate(groups) for _ in group]  # each point's scheduler job

        # 3. the manifest, then the aggregation job
        one_log = bool(executor.parameters.get("stderr_to_stdout", False))
        entries = [
            _sweep.job_entry(initial_job_idx + n, job.job_id, dirs[n], job.paths.stdout,
                             job.paths.stdout if one_log else job.paths.stderr, job_overrides[n])
            for n, job in enumerate(jobs)
        ]
        arrays = _sweep.arrays_of([job.job_id for job in jobs], initial_job_idx, "lsf")
        extra: dict[str, Any] = {"dialect": executor.parameters.get("dialect", "lsf10")}
        if k > 1:
            extra.update(packing.manifest_fields(k, groups, [j.job_id for j in packed], initial_job_idx))
        if dry_run:
            extra["dry_run"] = True
        data = _sweep.manifest(scheduler="lsf", submitit_folder=executor.folder, arrays=arrays, jobs=entries,
                               gpus_per_job=int(executor.parameters.get("gpus", 0) or 0), **extra)
        data = _sweep.write(sweep_dir, data, initial_job_idx)
        if aggregate:
            from pipeline import rundir

            rundir.set_aggregate_job(data, self.submit_aggregate(executor, sweep_dir, data["arrays"], dry_run))
            _sweep.write(sweep_dir, data, 0)

        self._report(arrays, executor, data.get("aggregate_job_id"), dry_run, wait)
        if note := queues.parallelism_note(p, len(groups), k):  # more jobs at once than the queue has GPUs
            print(note, file=sys.stdout, flush=True)
        if k > 1:
            print(f"[lsf] {packing.describe(k, len(fns))}; {time_line}", file=sys.stdout, flush=True)
        if wait:
            if k > 1:
                return packing.flatten([job.results()[0] for job in packed])
            return [job.results()[0] for job in jobs]
        return [
            JobReturn(overrides=list(overrides), working_dir=dirs[k], task_name=str(self.config.hydra.job.name),
                      status=JobStatus.COMPLETED, _return_value=jobs[k].job_id)
            for k, overrides in enumerate(job_overrides)
        ]

    def _check_pack_time(self, k: int, executor: Any, sweep_dir: Path) -> str:
        """k x the expected run time against the queue's run limit (else the job's timeout_min)."""
        from pipeline.launch import packing

        p = self.params
        per_run, source = packing.expected_run_min(p, sweep_dir)
        if p.get("max_timeout_min") is not None:
            limit, name = p["max_timeout_min"], "the queue's run limit max_timeout_min"
        else:
            limit, name = p.get("timeout_min"), "timeout_min"
        return packing.check_time(k, per_run, source, limit, name)

    def submit_aggregate(self, executor: Any, sweep_dir: Path, arrays: list[dict[str, Any]],
                          dry_run: bool) -> str | None:
        from pipeline import atomic, rundir
        from pipeline.launch.submitit_lsf.lsf import run_bsub

        script = sweep_dir / rundir.AGGREGATE_SCRIPT
        atomic.write_text(script, self.aggregate_script(executor, sweep_dir, [a["job_id"] for a in arrays]))
        if dry_run:
            return None
        try:
            return run_bsub(script)
        except Exception as e:  # noqa: BLE001 - the sweep itself is submitted: say so, do not fail it
            log.error(f"the aggregation job was not submitted ({e}); once the sweep ends run: "
                      f"python -m pipeline.cli aggregate {shlex.quote(str(sweep_dir))}")
            return None

    def _report(self, arrays: list[dict[str, Any]], executor: Any, aggregate_id: str | None, dry_run: bool,
                wait: bool) -> None:
        """One line per array, then what to type next (stdout: this is the command's answer)."""
        assert self.config is not None
        sweep = shlex.quote(str(self.config.hydra.sweep.dir))
        what = "dry run, not submitted:" if dry_run else "submitted"
        lines = []
        for a in arrays:
            first, last = a["first_job_num"], a["first_job_num"] + a["size"] - 1
            kind = "job array" if a["size"] > 1 else "job"
            lines.append(f"[lsf] {what} {kind} {a['job_id']} ({a['size']} jobs, job_num {first}-{last}); "
                         f"logs in {executor.folder}")
        if aggregate_id:
            lines.append(f"[lsf] aggregation job {aggregate_id} runs when they have ended; "
                         f"log {self.config.hydra.sweep.dir}/aggregate_{aggregate_id}.out")
        if dry_run:
            lines.append(f"[lsf] scripts: {executor.folder}/*_submission.sh")
        elif not wait:
            lines += [f"  pipeline watch   {sweep}", f"  pipeline status  {sweep}", f"  pipeline logs    {sweep} 0",
                      f"  pipeline results {sweep}"]
        print("\n".join(lines), file=sys.stdout, flush=True)
