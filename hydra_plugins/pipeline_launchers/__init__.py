"""The project's Hydra launchers: ``hydra/launcher=lsf`` (bsub job arrays), ``local_processes``
(parallel local processes) and ``slurm`` (sbatch arrays), one flow (:mod:`pipeline.launch.launcher`) over one
scheduler backend each (:mod:`pipeline.launch.backend`).

This is a namespace plugin package: there is no ``hydra_plugins/__init__.py``.
"""
