"""A trivial Hydra app for the launcher tests: writes its config and job info into its run directory."""

import json
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

#: the variables the launchers set for every job (pipeline.launch.job_env)
JOB_ENV = ("PYTHONPATH", "PIPELINE_GPUS", "OMP_NUM_THREADS", "HF_HUB_OFFLINE", "TMPDIR")


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig) -> int:
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    info = {"cfg": OmegaConf.to_container(cfg, resolve=True), "job_num": hc.job.num, "job_id": hc.job.id,
            "lsb_jobid": os.environ.get("LSB_JOBID"), "lsb_jobindex": os.environ.get("LSB_JOBINDEX"),
            "env": {k: os.environ.get(k) for k in JOB_ENV}}
    (out / "job.json").write_text(json.dumps(info))
    return int(cfg.get("x", 0) if isinstance(cfg.get("x", 0), int) else 0)


if __name__ == "__main__":
    main()
