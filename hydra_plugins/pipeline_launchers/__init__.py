"""The project's Hydra launchers: ``hydra/launcher=lsf`` (bsub job arrays), ``local_processes``
(parallel local processes) and ``slurm`` (submitit_slurm that also writes sweep.json).

This is a namespace plugin package: there is no ``hydra_plugins/__init__.py``.
"""
