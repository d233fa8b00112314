"""A study in a sweep folder: Optuna's journal storage on the shared file system, opened by every worker.

The sweeper creates it before anything is submitted (:meth:`SweepStudy.create`: ``study.json`` with the
settings and the space, and the study in ``study.journal``); each worker job opens it
(:meth:`SweepStudy.open`), asks for trials, reports intermediate values and tells results. Every call is
Optuna's public API on objects this module built, so a process can report to and tell a trial it did not
ask itself (a requeued worker is a new process): the trial is found by its number through the storage.

The journal's file backend needs no database server and takes a lock file per append. ``lock="symlink"``
(Optuna's default, ``JournalFileSymlinkLock``) works on NFSv2 and later; ``lock="open"``
(``JournalFileOpenLock``, an ``O_EXCL`` create) on NFSv3 and later, and where symbolic links are not
allowed. A lock left by a killed process is broken after Optuna's grace period (30 s).

Samplers are built per ask with a seed derived from the study's seed and the new trial's number, so the
trials a study asks for depend on its seed and its history only, not on which worker asked (TPE runs with
``constant_liar``, so running trials steer it away from what the other workers are trying). The grid
sampler keeps the study's seed itself: it shuffles the grid once, the same way for every ask.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline import rundir
from pipeline.errors import PipelineError
from pipeline.search.space import Space, SpaceError, grid_values

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("asha", "median", "hyperband", "none")
LOCKS = ("symlink", "open")
#: a trial's states as Optuna names them (``TrialState.<name>``); COMPLETE + PRUNED are finished
RUNNING, COMPLETE, PRUNED, FAIL, WAITING = "RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"
FINISHED = (COMPLETE, PRUNED)
#: a worker holding the ask lock longer than this is taken for dead and the lock is broken
ASK_LOCK_GRACE_S = 60


class StudyError(PipelineError):
    """A study setting that cannot work, or a sweep folder without a study: one line."""


@dataclass(frozen=True)
class StudySettings:
    """``hydra.sweeper.*`` of a study, as ``study.json`` keeps them."""

    trials: int  # finished trials (completed + pruned) the study ends with
    workers: int = 1  # scheduler jobs that run trials at the same time
    sampler: str = "tpe"  # tpe | random | grid
    pruner: str = "median"  # asha | median | hyperband | none
    seed: int = 0
    monitor: str = "macro_f1"  # the validation metric the study optimises (trainer.monitor)
    lock: str = "symlink"  # symlink (NFSv2+) | open (NFSv3+, no symbolic links needed)
    max_failed: int = 3  # failed trials after which workers stop asking
    startup_trials: int = 10  # TPE: trials sampled at random before it models the results

    def check(self) -> None:
        """StudyError (one line) for a setting that cannot work."""
        from pipeline.config import MONITORS

        for name, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS), ("lock", LOCKS),
                              ("monitor", MONITORS)):
            if getattr(self, name) not in allowed:
                raise StudyError(f"hydra.sweeper.{name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")
        for name in ("trials", "workers", "max_failed", "startup_trials"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StudyError(f"hydra.sweeper.{name}={value!r}: must be a whole number >= 1")

    @property
    def direction(self) -> str:
        return direction(self.monitor)


def direction(monitor: str) -> str:
    """``minimize`` for the validation loss, ``maximize`` for accuracy and macro-F1."""
    return "minimize" if monitor == "loss" else "maximize"


@dataclass(frozen=True)
class TrialView:
    """What a worker's decisions read of a trial."""

    number: int
    state: str  # RUNNING | COMPLETE | PRUNED | FAIL | WAITING
    params: dict[str, Any]
    value: float | None = None


# ------------------------------------------------------------------------------------------ samplers


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed for asking trial ``number`` of a study seeded ``seed``: mixed by numpy's SeedSequence,
    because the first draws of numpy's RandomState from consecutive seeds are nearly the same."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def make_sampler(settings: StudySettings, space: Space, number: int) -> Any:
    """The sampler that asks trial ``number``."""
    import optuna

    seed = trial_seed(settings.seed, number)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":  # its seed shuffles the grid: the same order for every ask
        return _grid_sampler_class()(grid_values(space), seed=settings.seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=settings.startup_trials)


def make_pruner(name: str) -> Any:
    """Optuna's pruner of that name. Trials report at evaluation 1, 2, ... (the step Optuna sees), so a
    rung of ``asha``/``hyperband`` is a number of evaluations: a trial can be stopped from its first one."""
    import optuna

    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner()
    return optuna.pruners.NopPruner()


@lru_cache(maxsize=1)
def _grid_sampler_class() -> type:
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler, minus its ``study.stop()`` once the grid is done: that works only inside
        ``study.optimize``; a study's workers stop when it has ``trials`` finished."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return GridSampler


# ------------------------------------------------------------------------------------------ files


def lock_for(kind: str, path: Path, grace_period: int | None = 30) -> Any:
    """Optuna's journal file lock of that kind, guarding ``path`` (its lock file is ``<path>.lock``)."""
    from optuna.storages.journal import JournalFileOpenLock, JournalFileSymlinkLock

    cls = JournalFileOpenLock if kind == "open" else JournalFileSymlinkLock
    return cls(str(path), grace_period=grace_period)


@contextlib.contextmanager
def ask_lock(sweep_dir: Path, kind: str) -> Iterator[None]:
    """The workers' critical section (read the study, decide, ask, write the record): one at a time."""
    workers = Path(sweep_dir) / rundir.STUDY_WORKERS_DIR
    workers.mkdir(parents=True, exist_ok=True)
    lock = lock_for(kind, workers, grace_period=ASK_LOCK_GRACE_S)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _storage(sweep_dir: Path, lock: str) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(sweep_dir) / rundir.STUDY_JOURNAL
    return JournalStorage(JournalFileBackend(str(path), lock_obj=lock_for(lock, path)))


def read_settings(sweep_dir: Path) -> tuple[str, StudySettings, Space] | None:
    """``study.json``: (study name, settings, space); None where there is none."""
    path = Path(sweep_dir) / rundir.STUDY_JSON
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise StudyError(f"{path}: not JSON ({e})") from None
    known = {f.name for f in fields(StudySettings)}
    return data["name"], StudySettings(**{k: v for k, v in data["settings"].items() if k in known}), \
        Space.from_json(data["space"])


def check_study(settings: StudySettings, space: Space) -> None:
    """StudyError or SpaceError (one line) for settings that cannot work, or cannot work with this space
    (``sampler=grid`` over a continuous dimension, or asked for more trials than the grid has points)."""
    settings.check()
    if settings.sampler == "grid":
        points = 1
        for values in grid_values(space).values():
            points *= len(values)
        if settings.trials > points:
            raise SpaceError(f"sampler=grid: the space has {points} points; set hydra.sweeper.trials={points} "
                             "or fewer (each point once), or use sampler=tpe or random")


# ------------------------------------------------------------------------------------------ the study


class SweepStudy:
    """One study in one sweep folder: its settings, space, Optuna study and storage."""

    def __init__(self, sweep_dir: Path, name: str, settings: StudySettings, space: Space, *,
                 create: bool = False) -> None:
        import optuna

        self.sweep_dir = Path(sweep_dir)
        self.name = name
        self.settings = settings
        self.space = space
        self.storage = _storage(self.sweep_dir, settings.lock)
        sampler, pruner = make_sampler(settings, space, 0), make_pruner(settings.pruner)
        if create:
            self.study = optuna.create_study(storage=self.storage, study_name=name, direction=settings.direction,
                                             sampler=sampler, pruner=pruner, load_if_exists=True)
        else:
            self.study = optuna.load_study(storage=self.storage, study_name=name, sampler=sampler, pruner=pruner)
        self.study_id = self.storage.get_study_id_from_name(name)

    @classmethod
    def create(cls, sweep_dir: Path, settings: StudySettings, space: Space) -> SweepStudy:
        """Check the settings against the space, write ``study.json`` and create the study (the sweeper, before
        submitting). A folder that holds a study made with other settings or another space is refused."""
        from pipeline import atomic

        check_study(settings, space)
        sweep_dir = Path(sweep_dir)
        name = sweep_dir.name or "study"
        old = read_settings(sweep_dir)
        if old is not None:
            name = old[0]
            if (old[1], old[2].to_json()) != (settings, space.to_json()):
                raise StudyError(f"{sweep_dir} holds a study with other settings or another space; "
                                 "use a new hydra.sweep.dir (or the same arguments to carry it on)")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        study = cls(sweep_dir, name, settings, space, create=True)
        atomic.write_json(sweep_dir / rundir.STUDY_JSON, {"name": name, "settings": asdict(settings),
                                                          "space": space.to_json(), "created": rundir.now_iso()})
        return study

    @classmethod
    def open(cls, sweep_dir: Path) -> SweepStudy:
        """The study of a sweep folder (a worker, ``pipeline status``)."""
        found = read_settings(sweep_dir)
        if found is None or not (Path(sweep_dir) / rundir.STUDY_JOURNAL).is_file():
            raise StudyError(f"{sweep_dir} holds no study ({rundir.STUDY_JSON} and {rundir.STUDY_JOURNAL}); "
                             "a study is made by `python run.py -m hydra/sweeper=study ...`")
        try:
            return cls(sweep_dir, *found)
        except KeyError:
            raise StudyError(f"{Path(sweep_dir) / rundir.STUDY_JOURNAL} holds no study named {found[0]!r}; "
                             f"was {rundir.STUDY_JSON} copied from another sweep?") from None

    def run_dir(self, number: int) -> Path:
        """Trial ``number`` trains in ``<sweep>/<number>/``."""
        return self.sweep_dir / str(int(number))

    def trials(self) -> list[TrialView]:
        return [TrialView(t.number, t.state.name, dict(t.params), t.value)
                for t in self.study.get_trials(deepcopy=False)]

    def ask(self) -> TrialView:
        """A new trial with its parameters sampled (call under :func:`ask_lock`)."""
        number = len(self.study.get_trials(deepcopy=False))
        self.study.sampler = make_sampler(self.settings, self.space, number)
        trial = self.study.ask(self.space.distributions)
        return TrialView(trial.number, RUNNING, dict(trial.params))

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, int(number))

    def report(self, number: int, step: int, value: float) -> bool:
        """Record ``value`` at ``step`` for trial ``number``; True when the pruner says stop it."""
        trial_id = self._trial_id(number)
        self.storage.set_trial_intermediate_value(trial_id, int(step), float(value))
        return bool(self.study.pruner.prune(self.study, self.storage.get_trial(trial_id)))

    def tell(self, number: int, state: str, value: float | None = None) -> str:
        """Finish trial ``number`` (once: a trial already finished is left as it is); its final state."""
        from optuna.trial import TrialState

        values = value if state == COMPLETE else None
        frozen = self.study.tell(int(number), values, state=TrialState[state], skip_if_finished=True)
        return frozen.state.name

    def summary(self) -> dict[str, Any]:
        """Counts per state and the best completed trial (for ``pipeline status``)."""
        return summarize(self.trials(), self.settings)


def summarize(trials: list[TrialView], settings: StudySettings) -> dict[str, Any]:
    """Counts per state, finished of ``trials``, and the best completed trial (number, value, params)."""
    counts = {s: sum(t.state == s for t in trials) for s in (COMPLETE, PRUNED, RUNNING, FAIL)}
    done = [t for t in trials if t.state == COMPLETE and t.value is not None]
    best = (min if settings.direction == "minimize" else max)(done, key=lambda t: t.value) if done else None
    return {"trials": settings.trials, "finished": counts[COMPLETE] + counts[PRUNED], "counts": counts,
            "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params}}


def params_text(params: Mapping[str, Any]) -> str:
    """``trainer.lr=3.2e-05 trainer.batch_size=16`` for log lines."""
    from pipeline.search.space import format_value

    return " ".join(f"{k}={format_value(v)}" for k, v in params.items())
