"""The project's Hydra launchers: ``hydra/launcher=lsf`` (bsub job arrays), ``local_processes``
(parallel local processes) and ``slurm`` (submitit_slurm that also writes sweep.json).

This is a namespace plugin package: there is no ``hydra_plugins/__init__.py``.
"""

from ._payload import SweepJob
from ._payload import load as load_payload
from ._sweep import plugin_pythonpath

__all__ = ["SweepJob", "load_payload", "plugin_pythonpath"]
