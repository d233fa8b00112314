"""Fixtures of the results tests: one study of really trained trials, shared by the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

#: the tiny model on 120 rows, 2 evaluations per trial (one per epoch), the study monitors the validation loss
STUDY_BASE = ["model=tiny", "data.max_rows=120", "trainer.epochs=2", "trainer.max_length=64", "trainer.batch_size=8",
              "trainer.log_every_steps=5", "trainer.monitor=loss"]
#: seed 3 of the random sampler asks lr 3e-3, 1e-7, 1e-3, 3e-3: ASHA prunes the two slower ones at their first
#: evaluation (~15 s on a quiet 2-core machine)
STUDY_SPACE = ["trainer.lr=choice(3e-3, 1e-3, 1e-7)"]


@pytest.fixture(scope="session")
def trained_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-trial study trained in this process by one worker (``run_worker`` + ``fit_run_point``), as a study's
    workers leave it: the journal, study.json, study_workers/ and one run directory per trial; no sweep.json
    (no scheduler). Read it, do not change it: copy it to a test's tmp_path first."""
    if not (SHARED_DATA / "bbc_news.csv.gz").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}: set PIPELINE_DATA_DIR")
    from pipeline.search.in_process import fit_run_point
    from pipeline.search.space import parse_space
    from pipeline.search.study import StudySettings, SweepStudy
    from pipeline.search.worker import run_worker

    tmp = tmp_path_factory.mktemp("study")
    sweep = tmp / "study"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIPELINE_DATA_DIR", str(SHARED_DATA))
        mp.setenv("PIPELINE_OUTPUT_ROOT", str(tmp / "outputs"))
        mp.setenv("PIPELINE_PROCESSED_DIR", str(tmp / "processed"))
        settings = StudySettings(trials=4, sampler="random", seed=3, pruner="asha", monitor="loss")
        SweepStudy.create(sweep, settings, parse_space(STUDY_SPACE))
        run_worker(sweep, fit_run_point(sweep, STUDY_BASE), slot=0)
    return sweep
