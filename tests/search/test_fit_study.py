"""A study of real training runs, without the launcher: ``run_worker`` in this process with a ``run_point``
that composes each trial's config with Hydra's ``compose`` and calls ``fit`` on the tiny model."""

from __future__ import annotations

import json

import pytest

from pipeline import rundir
from pipeline.search.in_process import fit_run_point
from pipeline.search.space import parse_space
from pipeline.search.study import COMPLETE, PRUNED, StudySettings, SweepStudy
from pipeline.search.worker import run_worker

# tests/conftest.py's TINY, with the learning rate left to the study
BASE = ["model=tiny", "data.max_rows=200", "trainer.max_length=64", "trainer.batch_size=8", "trainer.epochs=4",
        "trainer.log_every_steps=5"]


@pytest.fixture
def outputs(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("PIPELINE_OUTPUT_ROOT", str(tmp_path / "outputs"))
    monkeypatch.setenv("PIPELINE_PROCESSED_DIR", str(tmp_path / "processed"))
    return tmp_path


@pytest.mark.slow
def test_a_study_of_four_real_trials_in_one_process(outputs):
    sweep = outputs / "sweep"
    space = parse_space(["trainer.lr=tag(log, interval(1e-4, 1e-2))", "trainer.epochs=choice(1, 2)"])
    SweepStudy.create(sweep, StudySettings(trials=4, seed=0, monitor="accuracy"), space)
    outcomes = run_worker(sweep, fit_run_point(sweep, [*BASE, "trainer.monitor=accuracy"]), slot=0)
    assert [o.trial for o in outcomes] == [0, 1, 2, 3]
    study = SweepStudy.open(sweep)
    for t in study.trials():
        assert t.state == COMPLETE
        done = json.loads(rundir.metrics_json(sweep / str(t.number)).read_text())
        assert done["status"] == rundir.COMPLETED
        assert t.value == pytest.approx(done["val"]["accuracy"])  # the study holds what the run says
        assert done["epochs"] == t.params["trainer.epochs"]
        overrides = rundir.hydra_file(sweep / str(t.number), rundir.OVERRIDES_YAML).read_text()
        assert f"trainer.lr={t.params['trainer.lr']!r}" in overrides
    assert study.summary()["finished"] == 4


@pytest.mark.slow
def test_trials_whose_learning_rate_cannot_learn_are_pruned_before_their_last_step(outputs):
    """lr 1e-7 cannot learn the tiny model; asha prunes those trials at their first evaluation (20 of 80
    steps). Seed 3 of the random sampler asks 3e-3, 1e-7, 1e-7, 3e-3."""
    sweep = outputs / "sweep"
    settings = StudySettings(trials=4, sampler="random", seed=3, pruner="asha", monitor="loss")
    SweepStudy.create(sweep, settings, parse_space(["trainer.lr=choice(3e-3, 1e-7)"]))
    run_worker(sweep, fit_run_point(sweep, [*BASE, "trainer.monitor=loss"]), slot=0)
    trials = SweepStudy.open(sweep).trials()
    assert [t.params["trainer.lr"] for t in trials] == [3e-3, 1e-7, 1e-7, 3e-3]
    assert [t.state for t in trials] == [COMPLETE, PRUNED, PRUNED, COMPLETE]
    full = json.loads(rundir.metrics_json(sweep / "0").read_text())["steps"]
    for n in (1, 2):
        done = json.loads(rundir.metrics_json(sweep / str(n)).read_text())
        assert done["status"] == rundir.PRUNED and done["pruned_at_step"] < full
        assert not (sweep / str(n) / rundir.CHECKPOINTS_DIR).exists()
        assert rundir.metrics_jsonl(sweep / str(n)).read_text()  # its curve is kept
