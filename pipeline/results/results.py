"""The old import path of the results API, from before ``results.py`` was split by what each part does.

Modules of other stages still import it (``launch/sweep_status.py``, ``launch/rerun.py``,
``launch/callbacks.py``, ``train/retention.py``, ``models/predict.py``, ``bench/aggregate.py`` and some
tests); new code imports from :mod:`pipeline.results`. Delete this module once none does.
"""

from pipeline.errors import first_line  # noqa: F401 - rerun.py calls results.first_line
from pipeline.results import *  # noqa: F403
from pipeline.results import __all__  # noqa: F401
