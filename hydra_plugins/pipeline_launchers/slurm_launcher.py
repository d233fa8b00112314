"""``hydra/launcher=slurm``: hydra-submitit-launcher's ``submitit_slurm``, plus ``sweep.json``.

The jobs, scripts and parameters are submitit_slurm's own (``sbatch`` arrays ``456_0``, ``456_1``, ...);
this subclass writes the sweep manifest that ``pipeline status/logs/results`` read, and with
``wait: false`` returns right after submission instead of waiting for the results.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

from . import _sweep

log = logging.getLogger(__name__)


class SlurmManifestLauncher(SlurmLauncher):
    _EXECUTOR = "slurm"

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        os.environ["PYTHONPATH"] = _sweep.plugin_pythonpath()  # sbatch exports it: the jobs unpickle us
        params = dict(self.params)
        wait = bool(params.pop("wait", True))
        init = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init["slurm_max_num_timeout"] = params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster="slurm", **init)
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in baseparams else f"slurm_{k}": v
            for k, v in params.items() if k not in {"submitit_folder", "max_num_timeout"}
        })

        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        state = Singleton.get_state()
        job_params = []
        for k, overrides in enumerate(job_overrides):
            idx = initial_job_idx + k
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", state))
        jobs = executor.map_array(self, *zip(*job_params))

        dirs = _sweep.run_dirs(self, job_overrides, initial_job_idx)
        one_log = bool(params.get("stderr_to_stdout", False))
        entries = [
            _sweep.job_entry(initial_job_idx + k, job.job_id, dirs[k], job.paths.stdout,
                             job.paths.stdout if one_log else job.paths.stderr, job_overrides[k])
            for k, job in enumerate(jobs)
        ]
        data = _sweep.manifest(scheduler="slurm", submitit_folder=params["submitit_folder"],
                               arrays=_sweep.arrays_of([j.job_id for j in jobs], initial_job_idx),
                               jobs=entries, gpus_per_job=int(params.get("gpus_per_node") or 0))
        _sweep.write(sweep_dir, data, initial_job_idx)
        for a in data["arrays"]:
            print(f"[slurm] submitted {a['job_id']} ({a['size']} jobs); sweep {self.config.hydra.sweep.dir}",
                  flush=True)
        if wait:
            return [job.results()[0] for job in jobs]
        return [JobReturn(overrides=list(o), working_dir=dirs[k], status=JobStatus.COMPLETED,
                          _return_value=jobs[k].job_id) for k, o in enumerate(job_overrides)]
