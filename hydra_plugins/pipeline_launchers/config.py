"""Config schemas of the project's launchers, stored in the ConfigStore group ``hydra/launcher``:

- ``lsf``: one ``bsub`` job array per sweep (``LsfQueueConf``);
- ``local_processes``: parallel local processes, bounded by the cores (``LocalProcessesConf``);
- ``slurm``: one ``sbatch`` job array per sweep through submitit's Slurm executor (``SlurmManifestConf``:
  hydra-submitit-launcher's ``SlurmQueueConf`` fields).

Unknown keys fail when Hydra composes the config (these are structured configs); the values are checked
again by ``pipeline.launch.submitit_lsf.script.make_bsub_string`` before anything is submitted.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf

from pipeline import rundir


@dataclass
class LsfQueueConf(BaseQueueConf):
    """LSF (bsub) settings. Defaults suit a generic LSF 10 cluster; configs/cluster/*.yaml fill in sites."""

    _target_: str = "hydra_plugins.pipeline_launchers.lsf_launcher.LsfLauncher"

    # folder for pickles, bsub scripts and logs (%J_%I_0_log.out); must be visible from the compute nodes
    submitit_folder: str = f"${{hydra.sweep.dir}}/{rundir.SUBMITIT_DIR}"
    # false: submit, write sweep.json, print the job ids and return; true: wait for the results
    wait: bool = False
    # write the bsub scripts, pickles and sweep.json but run no bsub (job ids DRYRUN<n>)
    dry_run: bool = False
    # lsf10 (IBM Spectrum LSF 10) or openlava (no -gpu, -wa/-wt, memory units or bjobs -json)
    dialect: str = "lsf10"
    # sweep points run one after another in one job (one process: imports and model load paid once per job)
    runs_per_job: int = 1
    # minutes one run is expected to take: runs_per_job x this must fit the run limit; null: no check
    # (or the longest completed run already in the sweep directory)
    expected_run_min: float | None = None
    # bsub -q; null: the cluster's default queue
    queue: str | None = None
    # bsub -P; null: no project
    project: str | None = None
    # the queue's run limit in minutes: a larger timeout_min fails before submission
    max_timeout_min: int | None = None
    # true: a GPU queue; false: a CPU queue (gpus_per_node > 0 fails before submission); null: unknown
    gpu_queue: bool | None = None
    # GPUs the queue has in all: a sweep running more at once is told how many run and in how many waves
    queue_gpus: int | None = None
    # GPUs of one node of the queue: a job asking more fails before submission; null: unknown
    node_gpus: int | None = None
    # host memory (GB) of one node of the queue: a job asking more fails before submission; null: unknown
    node_mem_gb: int | None = None
    # GPU mode in -gpu "num=G:mode=...": exclusive_process or shared
    gpu_mode: str = "exclusive_process"
    # memory per slot for -R rusage[mem=...], e.g. 8GB or 4096 (MB); or set mem_gb, the job's total
    mem_per_slot: str | None = None
    # how memory is written: suffix (16GB, LSF 10) or the cluster's LSF_UNIT_FOR_LIMITS (KB, MB, GB, TB)
    mem_unit: str = "MB"
    # bsub -M hard memory limit (same forms as mem_per_slot), or auto: mem_per_slot + 25%; null: none
    mem_limit: str | None = None
    # -R select[...] section, e.g. gpu80gb
    select: str | None = None
    # -R span[hosts=N]; null: no span section
    span_hosts: int | None = 1
    # more -R sections, appended to the one -R string
    resources: str | None = None
    # minutes before the run limit at which LSF sends warning_signal (-wa/-wt, lsf10 only); null: none
    warning_time_min: int | None = None
    # signal for -wa; the job checkpoints and requeues on it
    warning_signal: str = "USR2"
    # array elements running at once (-J "name[1-N]%P")
    array_parallelism: int = 256
    # the cluster's MAX_JOB_ARRAY_SIZE: bigger sweeps become several arrays
    max_array_size: int = 1000
    # requeues after a run-limit signal before the job is given up (a fresh start resumes its checkpoint)
    max_num_timeout: int = 3
    # shell lines run in the job before Python (module load ..., conda activate ...)
    setup: list[str] = field(default_factory=list)
    # environment variables exported in the job script
    env: dict[str, str] = field(default_factory=dict)
    # more bsub flags, e.g. {B: true, N: true, u: me@dtu.dk} (known flags only)
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    # shell command for Python on the compute nodes; null: this interpreter
    python: str | None = None
    # submit one job that runs `python -m pipeline.cli aggregate <sweep>` once all arrays ended
    aggregate: bool = True
    # queue of the aggregation job (a CPU queue); null: the sweep's own queue (the cluster's default if none)
    aggregate_queue: str | None = None
    # run limit of the aggregation job
    aggregate_timeout_min: int = 30
    # memory per slot of the aggregation job
    aggregate_mem_per_slot: str = "4GB"


@dataclass
class LocalProcessesConf(BaseQueueConf):
    """Local processes (submitit's LocalExecutor), at most max_parallel at a time; always waits."""

    _target_: str = "hydra_plugins.pipeline_launchers.local_launcher.LocalProcessesLauncher"

    # folder for pickles and logs of the local jobs
    submitit_folder: str = f"${{hydra.sweep.dir}}/{rundir.SUBMITIT_DIR}/%j"
    # per-job time limit in minutes (USR2 at the limit, then kill)
    timeout_min: int = 1440
    # jobs at a time; null: cores // cpus_per_task (one at a time when jobs take GPUs and none are listed)
    max_parallel: int | None = None
    # GPU ids to share out among parallel jobs (gpus_per_node each)
    visible_gpus: list[int] = field(default_factory=list)
    # requeues after the time limit for checkpointable jobs
    max_num_timeout: int = 0
    # sweep points run one after another in one process (imports and model load paid once per job)
    runs_per_job: int = 1
    # minutes one run is expected to take: runs_per_job x this must fit timeout_min; null: no check
    expected_run_min: float | None = None
    # must stay true: local jobs are always waited for
    wait: bool = True


@dataclass
class SlurmManifestConf(SlurmQueueConf):
    """hydra-submitit-launcher's Slurm launcher, plus sweep.json for pipeline status/logs/results."""

    _target_: str = "hydra_plugins.pipeline_launchers.slurm_launcher.SlurmManifestLauncher"

    # false: submit, write sweep.json and return; true: wait for the results (hydra-submitit's behaviour)
    wait: bool = True
    # sweep points run one after another in one job (imports and model load paid once per job)
    runs_per_job: int = 1
    # minutes one run is expected to take: runs_per_job x this must fit timeout_min; null: no check
    expected_run_min: float | None = None


ConfigStore.instance().store(group="hydra/launcher", name="lsf", node=LsfQueueConf(), provider="pipeline")
ConfigStore.instance().store(
    group="hydra/launcher", name="local_processes", node=LocalProcessesConf(), provider="pipeline"
)
ConfigStore.instance().store(group="hydra/launcher", name="slurm", node=SlurmManifestConf(), provider="pipeline")
