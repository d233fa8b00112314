"""A study's search space from Hydra's override grammar: the mapping to Optuna distributions, one line per
bad space, and the checks that need the composed config (issue 21, "What it must show" 1)."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from pipeline.errors import PipelineError
from pipeline.search.space import (
    Space,
    SpaceError,
    check_keys,
    format_value,
    grid_values,
    parse_space,
    preflight_points,
)
from tests.conftest import ROOT


@pytest.mark.parametrize("argument, expected", [
    ("trainer.lr=tag(log, interval(1e-5, 1e-3))", FloatDistribution(1e-5, 1e-3, log=True)),
    ("trainer.warmup_ratio=interval(0, 0.2)", FloatDistribution(0.0, 0.2)),
    ("trainer.batch_size=choice(16, 32)", CategoricalDistribution([16, 32])),
    ("trainer.batch_size=16,32", CategoricalDistribution([16, 32])),
    ("trainer.batch_size=shuffle(16, 32)", CategoricalDistribution([16, 32])),
    ("model=tiny,minilm", CategoricalDistribution(["tiny", "minilm"])),
    ("data.text_column='body text',title", CategoricalDistribution(["body text", "title"])),
    ("trainer.epochs=range(1, 4)", IntDistribution(1, 3)),
    ("trainer.batch_size=range(8, 33, 8)", IntDistribution(8, 32, step=8)),
    ("trainer.epochs=range(5, 1, -2)", IntDistribution(3, 5, step=2)),
    ("trainer.max_length=tag(log, range(32, 513))", IntDistribution(32, 512, log=True)),
    ("trainer.warmup_ratio=range(0, 0.3, 0.1)", CategoricalDistribution([0.0, 0.1, 0.2])),
])
def test_each_sweep_form_maps_to_its_distribution(argument, expected):
    space = parse_space([argument])
    (key,) = space.distributions
    assert key == argument.split("=", 1)[0]
    assert space.distributions[key] == expected
    assert space.fixed == ()


def test_plain_overrides_are_fixed_and_every_trial_gets_them_first():
    space = parse_space(["data.max_rows=200", "trainer.lr=choice(1e-4, 2e-4)", "+trainer.extra=choice(1, 2)",
                         "model=tiny"])
    assert space.fixed == ("data.max_rows=200", "model=tiny")
    assert list(space.distributions) == ["trainer.lr", "trainer.extra"]
    assert space.overrides({"trainer.lr": 2e-4, "trainer.extra": 1}) == [
        "data.max_rows=200", "model=tiny", "trainer.lr=0.0002", "+trainer.extra=1"]


@pytest.mark.parametrize("value", [3e-5, 0.1, 1e-12, 16, 0, True, False, None, "minilm", "body text", "a,b",
                                   "it's", "back\\slash", "${paths.data_dir}/x.csv", "[1,2]", "1e-5"])
def test_a_value_becomes_override_text_that_parses_back_to_it(value):
    (parsed,) = OverridesParser.create().parse_overrides([f"k={format_value(value)}"])
    assert not parsed.is_sweep_override()
    assert parsed.value() == value and type(parsed.value()) is type(value)


def test_the_space_survives_its_json():
    space = parse_space(["trainer.lr=tag(log, interval(1e-5, 1e-3))", "model=tiny,minilm", "seed=range(0, 3)",
                         "+x=choice(1, 2)", "data.max_rows=100"])
    again = Space.from_json(space.to_json())
    assert again == space


@pytest.mark.parametrize("argument, says", [
    ("trainer.lr=choice()", "empty choice(); list at least one value"),
    ("trainer.lr=interval(1e-3, 1e-5)", "interval low 0.001 >= high 1e-05"),
    ("trainer.lr=interval(1e-3, 1e-3)", "interval low 0.001 >= high 0.001"),
    ("trainer.lr=tag(log, interval(0, 1e-3))", "a log scale needs low > 0 (got 0)"),
    ("trainer.max_length=tag(log, range(0, 64))", "a log scale needs low > 0 (got 0)"),
    ("trainer.lr=tag(uniform, interval(0, 1))", "tag uniform is not supported in a study"),
    ("trainer.lr=tag(log, choice(1e-5, 1e-4))", "log applies to interval(...) and range(...)"),
    ("trainer.warmup_ratio=tag(log, range(1, 2, 0.5))", "tag(log, range(...)) needs whole numbers with step 1"),
    ("hydra.launcher.timeout_min=10,20", "cannot sweep Hydra's own settings (hydra.launcher.timeout_min)"),
    ("hydra/launcher=lsf,slurm", "cannot sweep Hydra's own settings (hydra/launcher)"),
    ("trainer.monitor=accuracy,loss", "trainer.monitor cannot be swept: it is the study's objective"),
    ("model=glob(*)", "glob() is not supported in a study"),
    ("trainer.epochs=range(3, 1)", "the range is empty"),
    ("trainer.x=choice([1,2],[3])", "a choice of lists or dicts is not supported"),
    ("trainer.lr=interval(1e-5", "trainer.lr=interval(1e-5: "),
])
def test_a_bad_space_is_one_line_naming_the_argument(argument, says):
    with pytest.raises(SpaceError) as e:
        parse_space([argument])
    message = str(e.value)
    assert isinstance(e.value, PipelineError)
    assert "\n" not in message
    assert message.startswith(f"{argument}: ")
    assert says in message


def test_a_key_given_twice_is_refused():
    with pytest.raises(SpaceError, match=r"^trainer.lr=choice\(1e-4, 2e-4\): trainer.lr is given twice"):
        parse_space(["trainer.lr=1e-4", "trainer.lr=choice(1e-4, 2e-4)"])
    with pytest.raises(SpaceError, match="given twice"):
        parse_space(["trainer.lr=choice(1e-4, 2e-4)", "trainer.lr=1e-4"])


def test_grid_values_need_every_dimension_discrete():
    space = parse_space(["trainer.lr=5e-5,1e-4", "trainer.epochs=range(1, 4)"])
    assert grid_values(space) == {"trainer.lr": [5e-5, 1e-4], "trainer.epochs": [1, 2, 3]}
    with pytest.raises(SpaceError, match=r"^trainer.lr: sampler=grid needs every dimension discrete"):
        grid_values(parse_space(["trainer.lr=tag(log, interval(5e-5, 1e-4))", "trainer.epochs=range(1, 4)"]))


def test_preflight_points_are_each_categorical_combination_at_both_numeric_ends():
    space = parse_space(["data.max_rows=200", "model=tiny,minilm", "trainer.batch_size=choice(8, 16)",
                         "trainer.lr=tag(log, interval(1e-5, 1e-3))", "trainer.epochs=range(1, 4)"])
    points = preflight_points(space)
    assert len(points) == 2 * 2 * 2
    assert ["data.max_rows=200", "model=tiny", "trainer.batch_size=8", "trainer.lr=1e-05",
            "trainer.epochs=1"] in points
    assert ["data.max_rows=200", "model=minilm", "trainer.batch_size=16", "trainer.lr=0.001",
            "trainer.epochs=3"] in points
    assert len({tuple(p) for p in points}) == len(points)
    assert preflight_points(parse_space(["data.max_rows=200"])) == [["data.max_rows=200"]]


# ------------------------------------------------------------------------------------------ composed config


def _compose(overrides: list[str]):
    """The job config for these overrides, composed with Hydra's public compose API."""
    from hydra import compose, initialize_config_dir

    from pipeline.config import register

    register()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def test_swept_keys_must_exist_in_the_composed_config():
    space = parse_space(["model=tiny,minilm", "trainer.lr=tag(log, interval(1e-5, 1e-3))",
                         "model.tiny.hidden_size=choice(32, 64)", "+trainer.extra=choice(1, 2)"])
    check_keys(space, _compose(["model=tiny"]))  # a group, a value, a key of that group's option, an addition
    with pytest.raises(SpaceError) as e:
        check_keys(parse_space(["trainer.lrr=choice(1e-4, 2e-4)"]), _compose([]))
    assert str(e.value) == ("trainer.lrr: no such key in the config, so a study cannot sweep it; "
                            "did you mean trainer.lr?")
    with pytest.raises(SpaceError, match=r"^nope.lr: no such key in the config, so a study cannot sweep it$"):
        check_keys(parse_space(["nope.lr=choice(1e-4, 2e-4)"]), _compose([]))
    with pytest.raises(SpaceError, match=r"^trainer.lr.x: no such key"):
        check_keys(parse_space(["trainer.lr.x=choice(1, 2)"]), _compose([]))


def test_a_categorical_value_the_preflight_rejects_fails_before_anything_runs(tmp_path, monkeypatch):
    """Each preflight point goes through the sweep preflight like a swept value of a grid sweep."""
    from pipeline.launch.sweep_preflight import check_sweep

    monkeypatch.setenv("PIPELINE_OUTPUT_ROOT", str(tmp_path))
    space = parse_space(["model=tiny", "trainer.lr=choice(1e-3, -1)", "trainer.epochs=range(1, 3)"])
    with pytest.raises(PipelineError) as e:
        check_sweep(preflight_points(space), _compose, lambda cfg: True)
    assert str(e.value) == "trainer.lr=-1.0 must be > 0 (jobs with trainer.epochs=1 trainer.lr=-1)"
