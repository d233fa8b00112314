"""What a study's worker job runs: :class:`WorkerJob`, pickled once per job (about 1 KB) beside the sweep's
payload pickle, as a grid job's :class:`pipeline.launch.payload.SweepJob` is.

It loads the payload (the launcher and Hydra's singleton state) once, then calls
:func:`pipeline.search.worker.run_worker` for its slot with a ``run_point`` that trains each trial exactly as a
grid point: the launcher's per-point ``__call__`` (Hydra's singletons, the sweep config with the trial's
overrides, the ``Preflight`` callback, Hydra's ``run_job``) into ``<sweep>/<trial number>/``, with
``started`` and ``on_eval`` passed to the task function (``run.py``'s ``main``).

The slot is fixed per array element: a requeue at the run limit runs :meth:`WorkerJob.checkpoint`'s
``DelayedSubmission`` of the same object, and ``pipeline rerun --failed`` resubmits the job's own pickle, so the
slot's record (``study_workers/<slot>.json``) leads the new process back to the trial it held.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipeline.search.worker import OnEval, Outcome, RunPoint

#: Hydra's key of the sweep folder: a trial's run directory is ``<hydra.sweep.dir>/<hydra.sweep.subdir>``
SWEEP_DIR_KEY = "hydra.sweep.dir"


class WorkerJob:
    """The callable of one worker job: run trials of the study in ``sweep_dir`` as worker ``slot``;
    checkpointable (submitit requeues it)."""

    def __init__(self, payload: Path | str, sweep_dir: Path | str, slot: int) -> None:
        self.payload = str(payload)
        self.sweep_dir = str(sweep_dir)
        self.slot = int(slot)

    def __call__(self) -> list[Outcome]:
        from pipeline.launch import payload
        from pipeline.search.worker import run_worker

        launcher, state = payload.load(self.payload)
        return run_worker(self.sweep_dir, trial_runner(launcher, state, self.sweep_dir), slot=self.slot)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Run this worker again after a requeue: its record names the trial it holds, which resumes from
        that trial's ``checkpoints/last``."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)

    def __repr__(self) -> str:
        return f"WorkerJob(slot {self.slot} of the study in {self.sweep_dir})"


def pins(sweep_dir: str | Path, number: int) -> list[str]:
    """The overrides that put trial ``number`` in ``<sweep_dir>/<number>/`` whatever ``hydra.sweep.subdir``
    the sweep was given (and wherever the sweep folder is now)."""
    from pipeline.search.space import format_value

    return [f"{SWEEP_DIR_KEY}={format_value(str(Path(sweep_dir).absolute()))}", f"hydra.sweep.subdir={int(number)}"]


def trial_runner(launcher: Any, singleton_state: Any, sweep_dir: str | Path) -> RunPoint:
    """``run_point(overrides, trial_number, on_eval)`` that runs a trial through the launcher's per-point call;
    the best validation value, or the trial's own exception when its run failed."""

    def run_point(overrides: list[str], number: int, on_eval: OnEval) -> float:
        ret = launcher([*overrides, *pins(sweep_dir, number)], SWEEP_DIR_KEY, int(number), f"trial_{number}",
                       singleton_state, started=time.time(), on_eval=on_eval)
        return float(ret.return_value)  # JobReturn: raises the task's exception when the run failed

    return run_point
