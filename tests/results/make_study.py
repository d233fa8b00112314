"""Synthetic study folders (no training): a study made with ``SweepStudy.create``, its trials asked, reported
and told through Optuna's public API, and one run directory per trial written by :func:`write_run`, as the
study's workers leave them (``<sweep>/<trial number>/``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.search.space import parse_space
from pipeline.search.study import StudySettings, SweepStudy
from tests.results.make_runs import write_run

SPACE = ("trainer.lr=tag(log, interval(1e-5, 1e-3))", "trainer.batch_size=choice(16, 32)")
FIXED = ("model=tiny", "data.max_rows=120")
#: trial outcomes: (how it ended, its validation curve); "asked": a trial with no run directory yet
COMPLETE, PRUNED, FAIL, RUNNING, ASKED = "complete", "pruned", "fail", "running", "asked"


def curve_for(i: int, epochs: int = 3) -> list[float]:
    """An increasing macro-F1 curve whose level differs per trial."""
    top = 0.6 + 0.037 * ((i * 5) % 7)
    return [round(top - 0.1 * (epochs - e) / epochs, 6) for e in range(1, epochs + 1)]


def make_study(root: Path, outcomes: Sequence[tuple[str, list[float] | None]], *, trials: int = 8,
               space: Sequence[str] = SPACE, sampler: str = "random", pruner: str = "asha", seed: int = 0
               ) -> SweepStudy:
    """A study in ``root`` whose trials ended as ``outcomes`` say, in order (trial i: outcome i)."""
    study = SweepStudy.create(root, StudySettings(trials=trials, sampler=sampler, pruner=pruner, seed=seed),
                              parse_space([*space, *FIXED]))
    for how, curve in outcomes:
        trial = study.ask()
        if how == ASKED:
            continue
        overrides = study.space.overrides(trial.params)
        state = {COMPLETE: "completed", PRUNED: "pruned", FAIL: "failed", RUNNING: "running"}[how]
        write_run(root / str(trial.number), overrides, state=state, curve=curve, job_id=f"77[{trial.number % 2 + 1}]")
        for step, value in enumerate(curve or [], start=1):
            study.report(trial.number, step, value)
        if how == COMPLETE:
            study.tell(trial.number, "COMPLETE", max(curve or [0.0]))
        elif how in (PRUNED, FAIL):
            study.tell(trial.number, how.upper())
    return study


def typical(root: Path) -> SweepStudy:
    """8 trials: 4 completed, 2 pruned (at their first evaluation), 1 failed, 1 running."""
    outcomes = [(COMPLETE, curve_for(0)), (COMPLETE, curve_for(1)), (PRUNED, curve_for(2)[:1]),
                (COMPLETE, curve_for(3)), (FAIL, None), (PRUNED, curve_for(5)[:1]), (COMPLETE, curve_for(6)),
                (RUNNING, curve_for(7)[:2])]
    return make_study(root, outcomes)
