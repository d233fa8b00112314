"""``hydra/launcher=slurm``: a Hydra sweep becomes one ``sbatch`` array (submitit's Slurm executor).

The schema is hydra-submitit-launcher's ``submitit_slurm`` plus ``wait``, ``runs_per_job`` and
``expected_run_min`` (``config.py``); the launch writes the ``sweep.json`` that ``pipeline status/logs/results``
read and, with ``wait: false``, returns right after submission. The flow is
:class:`pipeline.launch.launcher.SweepLauncher`'s; Slurm itself is :class:`pipeline.launch.slurm.SlurmBackend`.
"""

from __future__ import annotations

from pipeline.launch.launcher import SweepLauncher


class SlurmManifestLauncher(SweepLauncher):
    backend_name = "slurm"
