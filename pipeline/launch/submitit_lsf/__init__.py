"""LSF for submitit: ``submitit.AutoExecutor(folder, cluster="lsf")`` finds ``LsfExecutor`` through the
``submitit`` entry points (``executor``, ``job_environment``) that setup.cfg declares.

The names below load ``pipeline.launch.submitit_lsf.lsf`` (and submitit) on first use, so that ``pipeline status``
(which asks ``bjobs`` through ``pipeline.launch.lsf``) stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BsubNotFoundError",
    "LsfConfigError",
    "LsfExecutor",
    "LsfInfoWatcher",
    "LsfJob",
    "LsfJobEnvironment",
    "LsfJobPaths",
    "LsfPartlySubmittedError",
    "LsfStatusError",
    "LsfSubmissionError",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pipeline.launch.submitit_lsf import lsf

        return getattr(lsf, name)
    raise AttributeError(f"module 'pipeline.launch.submitit_lsf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
