"""The study in a sweep folder: Optuna's journal file storage, samplers and pruners by name, settings checked
in one line, and a trial reported to and told by a process that did not ask it (a requeued worker)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import optuna
import pytest

from pipeline import rundir
from pipeline.search.space import SpaceError, parse_space
from pipeline.search.study import (
    COMPLETE,
    PRUNED,
    RUNNING,
    StudyError,
    StudySettings,
    SweepStudy,
    make_pruner,
    make_sampler,
)
from tests.conftest import ROOT

SPACE = ["trainer.lr=tag(log, interval(1e-5, 1e-3))", "trainer.batch_size=choice(16, 32)", "data.max_rows=200"]


def test_the_study_lives_in_the_sweep_folder_and_any_process_opens_it(tmp_path):
    sweep = tmp_path / "sweep"
    settings = StudySettings(trials=4, workers=2, pruner="asha", seed=7, monitor="loss", lock="open")
    SweepStudy.create(sweep, settings, parse_space(SPACE))
    assert (sweep / rundir.STUDY_JOURNAL).is_file()
    saved = json.loads((sweep / rundir.STUDY_JSON).read_text())
    assert saved["name"] == "sweep" and saved["settings"]["trials"] == 4 and saved["settings"]["lock"] == "open"
    study = SweepStudy.open(sweep)
    assert study.settings == settings and study.space == parse_space(SPACE)
    assert study.study.direction == optuna.study.StudyDirection.MINIMIZE  # loss is minimised
    assert study.run_dir(3) == sweep / "3"
    assert SweepStudy.open(SweepStudy.create(tmp_path / "b", StudySettings(trials=1), parse_space(SPACE))
                           .sweep_dir).study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_a_trial_asked_here_is_reported_pruned_and_told_by_another_process(tmp_path):
    sweep = tmp_path / "sweep"
    study = SweepStudy.create(sweep, StudySettings(trials=4, pruner="asha", monitor="accuracy"), parse_space(SPACE))
    first = study.ask()
    assert first.number == 0 and set(first.params) == {"trainer.lr", "trainer.batch_size"}
    assert study.report(0, 1, 0.9) is False  # alone on its rung: promoted
    study.tell(0, COMPLETE, 0.9)
    second = study.ask()
    code = textwrap.dedent(f"""
        from pipeline.search.study import SweepStudy, PRUNED
        study = SweepStudy.open({str(sweep)!r})
        print(study.report({second.number}, 1, 0.1))
        print(study.tell({second.number}, PRUNED))
        print(study.tell({second.number}, "COMPLETE", 0.5))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", PRUNED, PRUNED]  # pruned; a second tell leaves it as it was
    views = {t.number: t for t in SweepStudy.open(sweep).trials()}
    assert views[0].state == COMPLETE and views[0].value == 0.9
    assert views[1].state == PRUNED and views[1].value == 0.1  # Optuna keeps its last reported value


def test_a_seeded_study_asks_the_same_trials_whoever_asks(tmp_path):
    def asked(folder: str, seed: int) -> list[dict]:
        study = SweepStudy.create(tmp_path / folder, StudySettings(trials=6, seed=seed, startup_trials=2),
                                  parse_space(SPACE))
        out = []
        for n in range(6):
            trial = SweepStudy.open(tmp_path / folder).ask()  # a new process-like handle per ask
            study.tell(trial.number, COMPLETE, n / 10)
            out.append(trial.params)
        return out

    assert asked("a", 0) == asked("b", 0)
    assert asked("c", 1) != asked("a", 0)


def test_samplers_and_pruners_by_name():
    space = parse_space(["trainer.lr=1e-4,2e-4", "trainer.epochs=range(1, 4)"])
    settings = StudySettings(trials=6, seed=1)
    assert isinstance(make_sampler(settings, space, 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler(StudySettings(trials=6, sampler="random"), space, 0), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler(StudySettings(trials=6, sampler="grid"), space, 0), optuna.samplers.GridSampler)
    assert isinstance(make_pruner("asha"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband"), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)


def test_the_grid_sampler_asks_each_point_once_then_the_study_is_done(tmp_path):
    space = parse_space(["trainer.lr=1e-4,2e-4", "trainer.epochs=range(1, 4)"])
    study = SweepStudy.create(tmp_path / "g", StudySettings(trials=6, sampler="grid"), space)
    seen = []
    for _ in range(6):
        trial = study.ask()
        seen.append((trial.params["trainer.lr"], trial.params["trainer.epochs"]))
        assert study.tell(trial.number, COMPLETE, 0.5) == COMPLETE  # the last one does not raise
    assert sorted(seen) == sorted((lr, e) for lr in (1e-4, 2e-4) for e in (1, 2, 3))


@pytest.mark.parametrize("settings, space, says", [
    (StudySettings(trials=4, sampler="bayes"), SPACE, "hydra.sweeper.sampler='bayes' is not one of tpe, random, grid"),
    (StudySettings(trials=4, pruner="asha2"), SPACE, "hydra.sweeper.pruner='asha2' is not one of asha, median"),
    (StudySettings(trials=4, lock="flock"), SPACE, "hydra.sweeper.lock='flock' is not one of symlink, open"),
    (StudySettings(trials=0), SPACE, "hydra.sweeper.trials=0: must be a whole number >= 1"),
    (StudySettings(trials=4, workers=0), SPACE, "hydra.sweeper.workers=0: must be a whole number >= 1"),
    (StudySettings(trials=4, sampler="grid"), SPACE, "trainer.lr: sampler=grid needs every dimension discrete"),
    (StudySettings(trials=7, sampler="grid"), ["trainer.lr=1e-4,2e-4", "trainer.epochs=range(1, 4)"],
     "sampler=grid: the space has 6 points; set hydra.sweeper.trials=6 or fewer"),
])
def test_a_bad_setting_is_one_line_and_writes_nothing(tmp_path, settings, space, says):
    with pytest.raises((StudyError, SpaceError)) as e:
        SweepStudy.create(tmp_path / "sweep", settings, parse_space(space))
    assert says in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "sweep").exists()


def test_a_folder_keeps_its_study_and_refuses_another(tmp_path):
    sweep = tmp_path / "sweep"
    study = SweepStudy.create(sweep, StudySettings(trials=4), parse_space(SPACE))
    study.ask()
    again = SweepStudy.create(sweep, StudySettings(trials=4), parse_space(SPACE))  # the same: carried on
    assert [t.state for t in again.trials()] == [RUNNING]
    with pytest.raises(StudyError, match="holds a study with other settings or another space; use a new"):
        SweepStudy.create(sweep, StudySettings(trials=5), parse_space(SPACE))
    with pytest.raises(StudyError, match="holds a study with other settings or another space"):
        SweepStudy.create(sweep, StudySettings(trials=4), parse_space(SPACE[:2]))
    with pytest.raises(StudyError, match=r"holds no study \(study.json and study.journal\)"):
        SweepStudy.open(tmp_path)


def test_summary_counts_states_and_names_the_best(tmp_path):
    study = SweepStudy.create(tmp_path / "s", StudySettings(trials=5, monitor="loss"), parse_space(SPACE))
    for value in (0.5, 0.3):
        study.tell(study.ask().number, COMPLETE, value)
    t = study.ask()
    study.report(t.number, 1, 0.9)
    study.tell(t.number, PRUNED)
    study.tell(study.ask().number, "FAIL")
    study.ask()
    s = study.summary()
    assert s["finished"] == 3 and s["trials"] == 5
    assert s["counts"] == {"COMPLETE": 2, "PRUNED": 1, "RUNNING": 1, "FAIL": 1}
    assert s["best"]["number"] == 1 and s["best"]["value"] == 0.3  # loss: the lowest
