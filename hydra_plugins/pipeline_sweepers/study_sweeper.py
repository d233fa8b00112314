"""``hydra/sweeper=study``: an Optuna study whose search runs inside the scheduler jobs (docs/search.md).

    python run.py -m hydra/sweeper=study cluster=dtu_gpua100 hydra.sweeper.trials=64 hydra.sweeper.workers=8 \\
      hydra.sweeper.pruner=asha 'trainer.lr=tag(log, interval(1e-5, 1e-3))' 'trainer.batch_size=choice(16, 32)'

Before anything is written or submitted, everything that can be wrong is one line and exit 2: the space
(:func:`pipeline.search.space.parse_space`: the sweep arguments and ``hydra.sweeper.params``), the settings,
``hydra.launcher.runs_per_job`` (a study's workers run one trial after another by themselves), a swept key
the composed config lacks, and every distinct categorical combination preflighted as a grid point would be
(:func:`pipeline.search.space.preflight_points` through ``sweep_preflight.check_sweep``, whose storage
estimate counts ``trials`` runs, ``workers`` at a time). Then :func:`pipeline.search.submit.submit_study`
creates the study in the sweep folder and submits one array of ``workers`` jobs (plus the aggregation job)
through the launcher's own steps: it returns at once where a grid sweep would (LSF, Slurm with
``wait: false``), and waits where the launcher waits (local processes), ending with the study and the
results table.
"""
# no `from __future__ import annotations`: Hydra's plugin scan executes this module outside sys.modules,
# where dataclasses cannot resolve string annotations

import gc
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from hydra_plugins.pipeline_sweepers.fast_basic_sweeper import FastBasicSweeper
from pipeline import rundir


@dataclass
class StudySweeperConf:
    """``hydra.sweeper.*`` of a study: ``pipeline.search.study.StudySettings`` (its monitor is
    ``trainer.monitor``) and Hydra's ``params``."""

    _target_: str = "hydra_plugins.pipeline_sweepers.study_sweeper.StudySweeper"
    # finished trials (completed + pruned) the study ends with; required
    trials: int | None = None
    # scheduler jobs (one array) that run trials at the same time
    workers: int = 1
    # tpe | random | grid
    sampler: str = "tpe"
    # asha | median | hyperband | none
    pruner: str = "median"
    seed: int = 0
    # the journal's file lock: symlink (NFSv2+) | open (NFSv3+, no symbolic links needed)
    lock: str = "symlink"
    # failed trials after which the workers stop asking
    max_failed: int = 3
    # TPE: trials sampled at random before it models the results
    startup_trials: int = 10
    # more sweep arguments, key: value (as on the command line)
    params: dict[str, str] | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="study", node=StudySweeperConf)

#: settings this sweeper takes from hydra.sweeper (the monitor comes from trainer.monitor)
SETTINGS = tuple(f.name for f in fields(StudySweeperConf) if f.name not in ("_target_", "params"))


class StudySweeper(FastBasicSweeper):
    """Checks and submits a study; composition (cached per config-group choice) is fast_basic's."""

    def __init__(self, params: dict[str, str] | None = None, **settings: Any) -> None:
        super().__init__(params=params)
        self.settings = settings

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        from pipeline.errors import PipelineError

        assert self.config is not None
        try:
            settings, space = self.plan(arguments)
        except PipelineError as e:
            self._refuse(e, [])
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        made = [p for p in (sweep_dir, sweep_dir / rundir.MULTIRUN_YAML) if not p.exists()]
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / rundir.MULTIRUN_YAML)
        try:
            from pipeline.search.submit import submit_study

            jobs, waited = submit_study(self.launcher, settings, space)
        except PipelineError as e:
            from pipeline.launch.backend import PartlySubmitted

            self._refuse(e, [] if isinstance(e, PartlySubmitted) else made)
        failed = self._failures(jobs) if waited else []
        del jobs
        gc.collect()  # submitit's LocalJob sits in a reference cycle: run its __del__ now, not at exit
        if waited:
            self._ended(failed, sweep_dir)
        return []

    # ---------------------------------------------------------------------------------------- the checks

    def plan(self, arguments: list[str]) -> tuple[Any, Any]:
        """The study's settings and space, everything checked (a PipelineError otherwise, one line)."""
        from pipeline.launch.launcher import SweepLauncher
        from pipeline.search.space import check_keys, parse_space
        from pipeline.search.study import StudyError, StudySettings, check_study

        assert self.config is not None
        if not isinstance(self.launcher, SweepLauncher):
            raise StudyError(f"hydra/launcher={type(self.launcher).__name__}: a study's workers are submitted by "
                             "this project's launchers; use a cluster preset (cluster=local, cluster=lsf, ...)")
        k = self.config.hydra.launcher.get("runs_per_job", 1)
        if k not in (None, 1):
            raise StudyError(f"hydra.launcher.runs_per_job={k}: has no meaning for a study (each worker runs "
                             "one trial after another by itself); leave it out, or set hydra.sweeper.workers")
        if self.settings.get("trials") is None:
            raise StudyError("hydra.sweeper.trials is not set: give the number of finished trials the study ends "
                             "with, e.g. hydra.sweeper.trials=64")
        settings = StudySettings(**{k: v for k, v in self.settings.items() if k in SETTINGS},
                                 monitor=str(self.config.trainer.monitor))
        space = parse_space([*self._params(), *arguments])
        check_study(settings, space)
        check_keys(space, self._config_of(tuple(space.fixed)))
        self._preflight_space(space, settings)
        return settings, space

    def _preflight_space(self, space: Any, settings: Any) -> None:
        """Every distinct categorical combination of the space (at both numeric ends) checked as a grid
        point; the storage estimate for ``trials`` runs, ``workers`` at a time."""
        from pipeline.launch.backend import runs_here
        from pipeline.launch.sweep_preflight import check_sweep
        from pipeline.search.space import preflight_points

        points = [tuple(p) for p in preflight_points(space)]
        check_sweep(points, self._config_of, lambda cfg: runs_here(cfg.hydra.launcher), total_runs=settings.trials,
                    parallel=min(settings.workers, settings.trials))

    # ---------------------------------------------------------------------------------------- the end

    @staticmethod
    def _failures(jobs: list[Any]) -> list[str]:
        """Each worker that failed (waiting for it where it still runs), in one line."""
        failed = []
        for slot, job in enumerate(jobs):
            try:
                job.results()
            except Exception as e:  # noqa: BLE001 - the worker's own failure, said in one line
                failed.append(f"worker {slot} failed: {error_line(str(e))}")
        return failed

    def _ended(self, failed: list[str], sweep_dir: Path) -> None:
        """A study that was waited for: the study's lines; a worker that failed is one line and exit 1, after
        the results table."""
        from pipeline.launch import sweep_status as S
        from pipeline.launch.callbacks import AggregateAtEnd
        from pipeline.results.runs import load_sweep
        from pipeline.search.status import panel

        sweep = load_sweep(sweep_dir)
        status = S.study_of(sweep, S.query_sweep(sweep))
        for line in panel(status, sweep_dir) if status is not None else []:
            print(line, flush=True)
        if failed:
            assert self.config is not None
            AggregateAtEnd().on_multirun_end(self.config)
            print(f"error: {failed[0]}; `pipeline status {sweep_dir}` shows the study, `pipeline rerun "
                  f"{sweep_dir} --failed` brings the workers back", file=sys.stderr, flush=True)
            sys.exit(1)


_RAISED = re.compile(r"^\w+(\.\w+)*(Error|Exception|Failed|Exit)\b:?")


def error_line(text: str) -> str:
    """The telling line of a failed job's message: the last ``SomeError: ...`` line of a traceback (a worker
    that raised), else the first line (submitit: a job that ended without a result, e.g. killed)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    raised = [ln for ln in lines if _RAISED.match(ln)]
    return (raised[-1] if raised else lines[0] if lines else "no message")[:300]
