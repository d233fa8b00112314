"""``hydra/launcher=lsf``: a Hydra sweep becomes one ``bsub`` job array (several above max_array_size).

    python run.py -m cluster=dtu_gpua100 trainer.lr=2e-5,3e-5,5e-5 seed=0,1,2

With ``wait: false`` (the default) the launcher validates every setting, submits the array(s), writes
``<sweep_dir>/sweep.json``, submits one aggregation job (``bsub -w "ended(<arrays>)"``), prints the job
ids and the follow-up commands, and returns. With ``wait: true`` it waits for the results. The flow is
:class:`pipeline.launch.launcher.SweepLauncher`'s; LSF itself is :class:`pipeline.launch.lsf.LsfBackend`.
"""

from __future__ import annotations

from pipeline.launch.launcher import SweepLauncher


class LsfLauncher(SweepLauncher):
    backend_name = "lsf"
