"""``hydra/launcher=slurm``: hydra-submitit-launcher's ``submitit_slurm``, plus ``sweep.json``.

The jobs, scripts and parameters are submitit_slurm's own (``sbatch`` arrays ``456_0``, ``456_1``, ...);
this subclass writes the sweep manifest that ``pipeline status/logs/results`` read, and with
``wait: false`` returns right after submission instead of waiting for the results.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

from pipeline.errors import SubmissionError

from . import _sweep

log = logging.getLogger(__name__)


SBATCH_NOT_FOUND = "sbatch not found on PATH: run this on a Slurm login node, or use cluster=local"


class SlurmLaunchError(CompactHydraException, SubmissionError):
    """sbatch missing or refusing the sweep: Hydra prints the message alone (one line)."""


class SlurmManifestLauncher(SlurmLauncher):
    _EXECUTOR = "slurm"

    def make_executor(self) -> Any:
        """submitit's Slurm executor with this launcher's parameters; fails in one line without sbatch."""
        import submitit

        if shutil.which("sbatch") is None:  # submitit would fail later, with a traceback about srun
            raise SlurmLaunchError(SBATCH_NOT_FOUND)
        os.environ["PYTHONPATH"] = _sweep.plugin_pythonpath()  # sbatch exports it: the jobs unpickle us
        params = {k: v for k, v in self.params.items() if k not in ("wait", "runs_per_job", "expected_run_min")}
        init = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init["slurm_max_num_timeout"] = params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster="slurm", **init)
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in baseparams else f"slurm_{k}": v
            for k, v in params.items() if k not in {"submitit_folder", "max_num_timeout"}
        })
        return executor

    @staticmethod
    def submit_array(executor: Any, fn: Any, job_params: Sequence[tuple]) -> list[Any]:
        """One sbatch array; a refusal becomes one line (sbatch's own stderr, not submitit's print)."""
        from submitit.core.utils import FailedJobError

        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                return executor.map_array(fn, *zip(*job_params))
        except FailedJobError as e:
            reason = " | ".join(str(e).strip().splitlines()) or said.getvalue().strip() or "no message"
            change = ("set hydra.launcher.partition to one that `sinfo` lists" if "partition" in reason.lower()
                      else "fix the setting sbatch names (cluster= preset or hydra.launcher.*) and submit again")
            raise SlurmLaunchError(f"sbatch refused the sweep: {reason[:300]}; nothing was submitted: {change}") \
                from None

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from pipeline.launch import packing

        assert self.config is not None
        params = dict(self.params)
        wait = bool(params.pop("wait", True))
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        try:
            k = packing.runs_per_job(params)
            time_line = packing.check_time(k, *packing.expected_run_min(params, sweep_dir),
                                           params.get("timeout_min"), "timeout_min") if k > 1 else ""
        except packing.PackError as e:
            raise SlurmLaunchError(str(e)) from None
        executor = self.make_executor()

        sweep_dir.mkdir(parents=True, exist_ok=True)
        state = Singleton.get_state()
        job_params = []
        for n, overrides in enumerate(job_overrides):
            idx = initial_job_idx + n
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", state))
        dirs = _sweep.run_dirs(self, job_overrides, initial_job_idx)
        groups = packing.chunks(len(job_params), k)
        if k > 1:
            points = [packing.LauncherCall(self, *args) for args in job_params]
            packed = self.submit_array(executor, packing.RunPack(), [(j,) for j in packing.pack(points, dirs, k)])
        else:
            packed = self.submit_array(executor, self, job_params)
        jobs = [packed[g] for g, group in enumerate(groups) for _ in group]  # each point's scheduler job

        one_log = bool(params.get("stderr_to_stdout", False))
        entries = [
            _sweep.job_entry(initial_job_idx + n, job.job_id, dirs[n], job.paths.stdout,
                             job.paths.stdout if one_log else job.paths.stderr, job_overrides[n])
            for n, job in enumerate(jobs)
        ]
        extra = packing.manifest_fields(k, groups, [j.job_id for j in packed], initial_job_idx) if k > 1 else {}
        data = _sweep.manifest(scheduler="slurm", submitit_folder=params["submitit_folder"],
                               arrays=_sweep.arrays_of([j.job_id for j in jobs], initial_job_idx, "slurm"),
                               jobs=entries, gpus_per_job=int(params.get("gpus_per_node") or 0), **extra)
        _sweep.write(sweep_dir, data, initial_job_idx)
        for a in data["arrays"]:
            print(f"[slurm] submitted {a['job_id']} ({a['size']} jobs); sweep {self.config.hydra.sweep.dir}",
                  flush=True)
        if k > 1:
            print(f"[slurm] {packing.describe(k, len(job_params))}; {time_line}", flush=True)
        if wait:
            if k > 1:
                return packing.flatten([job.results()[0] for job in packed])
            return [job.results()[0] for job in jobs]
        return [JobReturn(overrides=list(o), working_dir=dirs[k], status=JobStatus.COMPLETED,
                          _return_value=jobs[k].job_id) for k, o in enumerate(job_overrides)]
