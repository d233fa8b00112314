"""A study's search space, written in Hydra's own override grammar and mapped to Optuna distributions.

    trainer.lr=tag(log, interval(1e-5, 1e-3))   FloatDistribution(1e-5, 1e-3, log=True)
    trainer.warmup_ratio=interval(0, 0.2)        FloatDistribution(0.0, 0.2)   (interval is always float)
    trainer.batch_size=choice(16, 32)            CategoricalDistribution([16, 32])
    model=tiny,minilm                            CategoricalDistribution(["tiny", "minilm"])  (a plain list)
    trainer.epochs=range(1, 4)                   IntDistribution(1, 3)   (Hydra's range stops before stop)
    trainer.max_length=tag(log, range(32, 513))  IntDistribution(32, 512, log=True)
    trainer.warmup_ratio=range(0, 0.3, 0.1)      CategoricalDistribution([0.0, 0.1, 0.2])  (float steps)
    data.max_rows=400                            not a sweep: passed to every trial unchanged

The arguments are parsed with Hydra's public ``OverridesParser``, so a space means what it would mean in a
grid sweep. A space that cannot work is one :class:`SpaceError` line naming the argument (empty choice,
``interval`` with low >= high, ``log`` with low <= 0, a tag other than ``log``, ``glob``, a sweep over
``hydra.*`` or over the study's own objective ``trainer.monitor``, a key swept twice). What needs the composed
config is checked by :func:`check_keys` (a swept key that does not exist) and by the sweep preflight, fed by
:func:`preflight_points` (every distinct combination of the categorical values).
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pipeline.errors import PipelineError, first_line


class SpaceError(PipelineError):
    """A search space that cannot work: one line naming the argument and what to write instead."""


#: keys a study may not sweep, and why
NOT_SWEPT = {"trainer.monitor": "it is the study's objective; give it one value (trainer.monitor=accuracy)"}


@dataclass(frozen=True)
class Space:
    """The swept keys (each an Optuna distribution, in argument order) and the fixed overrides."""

    distributions: dict[str, Any]
    fixed: tuple[str, ...] = ()
    #: ``+`` or ``++`` of a swept key that adds it to the config (``+trainer.foo=choice(1, 2)``)
    prefixes: dict[str, str] = field(default_factory=dict)

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's overrides: the fixed ones, then one ``key=value`` per swept key."""
        return [*self.fixed, *(f"{self.prefixes.get(k, '')}{k}={format_value(params[k])}"
                               for k in self.distributions)]

    def to_json(self) -> dict[str, Any]:
        from optuna.distributions import distribution_to_json

        return {"distributions": {k: distribution_to_json(d) for k, d in self.distributions.items()},
                "fixed": list(self.fixed), "prefixes": dict(self.prefixes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Space:
        from optuna.distributions import json_to_distribution

        return cls({k: json_to_distribution(v) for k, v in data["distributions"].items()},
                   tuple(data.get("fixed", ())), dict(data.get("prefixes", {})))


# ------------------------------------------------------------------------------------------ parsing


def parse_space(arguments: Sequence[str]) -> Space:
    """The space of these sweep arguments; SpaceError (one line) when one cannot work."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    distributions: dict[str, Any] = {}
    prefixes: dict[str, str] = {}
    fixed: list[str] = []
    fixed_keys: set[str] = set()
    for line in arguments:
        override = _parse(parser, line)
        key = override.key_or_group
        if key in distributions or (key in fixed_keys and override.is_sweep_override()):
            raise SpaceError(f"{line}: {key} is given twice; give it once (one value, or one sweep)")
        if not override.is_sweep_override():
            fixed.append(line)
            fixed_keys.add(key)
            continue
        _check_sweepable(line, override)
        distributions[key] = distribution(line, override)
        if override.is_add() or override.is_force_add():
            prefixes[key] = line[:len(line) - len(line.lstrip("+"))]
    return Space(distributions, tuple(fixed), prefixes)


def parse_override(line: str) -> Any:
    """One command-line override parsed by Hydra's parser; SpaceError (one line: the override, then why)
    where it does not parse (``trainer.lr=choice()``: an empty choice)."""
    return _parse(_parser(), line)


def _parse(parser: Any, line: str) -> Any:
    from hydra.errors import HydraException

    try:
        (override,) = parser.parse_overrides([line])
    except HydraException as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip() and not ln.startswith(("See ", "Error parsing"))]
        reason = (lines[0].split("': ", 1)[-1] if lines else first_line(e)).strip()
        if "empty choice" in reason:
            reason = "empty choice(); list at least one value: choice(a, b)"
        raise SpaceError(f"{line}: {reason}") from None
    return override


def _check_sweepable(line: str, override: Any) -> None:
    from hydra.core.override_parser.types import Glob

    key = override.key_or_group
    if key == "hydra" or key.startswith(("hydra.", "hydra/")):
        raise SpaceError(f"{line}: a study cannot sweep Hydra's own settings ({key}); give it one value")
    if key in NOT_SWEPT:
        raise SpaceError(f"{line}: {key} cannot be swept: {NOT_SWEPT[key]}")
    if override.is_delete():
        raise SpaceError(f"{line}: a deletion cannot be swept")
    if isinstance(override.value(), Glob):
        raise SpaceError(f"{line}: glob() is not supported in a study; list the options: choice(a, b)")
    tags = set(getattr(override.value(), "tags", ()) or ())
    if tags - {"log"}:
        raise SpaceError(f"{line}: tag {', '.join(sorted(tags - {'log'}))} is not supported in a study; the one "
                         "tag is log: tag(log, interval(1e-5, 1e-3))")


def distribution(line: str, override: Any) -> Any:
    """The Optuna distribution of one sweep override (``line`` is its text, for the error messages)."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    value = override.value()
    log = "log" in (value.tags or set())
    if isinstance(value, IntervalSweep):
        return _interval(line, float(value.start), float(value.end), log)
    if isinstance(value, RangeSweep):
        return _range(line, list(override.sweep_iterator()), value.step, log)
    if isinstance(value, ChoiceSweep):
        if log:
            raise SpaceError(f"{line}: log applies to interval(...) and range(...), not to a list of choices")
        return _choice(line, value.list)
    raise SpaceError(f"{line}: {type(value).__name__} is not supported in a study; use choice, range or interval")


def _interval(line: str, low: float, high: float, log: bool) -> Any:
    from optuna.distributions import FloatDistribution

    if not low < high:
        raise SpaceError(f"{line}: interval low {low:g} >= high {high:g}; write interval(low, high) with low < high")
    if log and low <= 0:
        raise SpaceError(f"{line}: a log scale needs low > 0 (got {low:g}); use interval(...) without log")
    return FloatDistribution(low, high, log=log)


def _range(line: str, values: list[Any], step: Any, log: bool) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if not values:
        raise SpaceError(f"{line}: the range is empty; range(start, stop, step) stops before stop: "
                         "range(1, 4) is 1, 2, 3")
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in values) and isinstance(step, int)
    if log:
        if not whole or abs(step) != 1:
            raise SpaceError(f"{line}: tag(log, range(...)) needs whole numbers with step 1; "
                             "for other values use choice(...)")
        if min(values) <= 0:
            raise SpaceError(f"{line}: a log scale needs low > 0 (got {min(values)}); use range(...) without log")
        return IntDistribution(min(values), max(values), log=True)
    if whole:
        return IntDistribution(min(values), max(values), step=abs(step))
    return CategoricalDistribution(sorted({float(f"{v:.12g}") for v in values}))


def _choice(line: str, elements: Iterable[Any]) -> Any:
    from hydra.core.override_parser.types import QuotedString
    from optuna.distributions import CategoricalDistribution

    values: list[Any] = []
    for x in elements:
        x = x.text if isinstance(x, QuotedString) else x
        if not (x is None or isinstance(x, (str, int, float, bool))):
            raise SpaceError(f"{line}: a choice of lists or dicts is not supported in a study; "
                             "use a config group (model=tiny,minilm) or one value per key")
        if x not in values:
            values.append(x)
    if not values:
        raise SpaceError(f"{line}: empty choice(); list at least one value: choice(a, b)")
    return CategoricalDistribution(values)


# ------------------------------------------------------------------------------------------ values


@lru_cache(maxsize=1)
def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def format_value(value: Any) -> str:
    """A parameter value as override text that Hydra parses back to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    try:
        (parsed,) = _parser().parse_overrides([f"k={text}"])
        if not parsed.is_sweep_override() and parsed.value() == text:
            return text
    except Exception:  # noqa: BLE001 - whatever does not parse back plainly gets quoted
        pass
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def grid_values(space: Space) -> dict[str, list[Any]]:
    """Every dimension's values for Optuna's GridSampler; SpaceError where one is continuous."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    grid: dict[str, list[Any]] = {}
    for key, d in space.distributions.items():
        if isinstance(d, CategoricalDistribution):
            grid[key] = list(d.choices)
        elif isinstance(d, IntDistribution) and not d.log:
            grid[key] = list(range(d.low, d.high + 1, d.step))
        else:
            raise SpaceError(f"{key}: sampler=grid needs every dimension discrete (choice(...) or range(...)); "
                             f"{key} is continuous: list its values, or use sampler=tpe or random")
    return grid


# ------------------------------------------------------------------------------------------ checks


def preflight_points(space: Space) -> list[list[str]]:
    """The points to preflight, as override lists for ``sweep_preflight.check_sweep``: every distinct
    combination of the categorical values, each with every numeric dimension at its low end and at its high
    end (a value a check rejects shows at an end: batch size 0, a learning rate <= 0)."""
    from optuna.distributions import CategoricalDistribution

    cats = [[(k, v) for v in d.choices] for k, d in space.distributions.items()
            if isinstance(d, CategoricalDistribution)]
    nums = {k: d for k, d in space.distributions.items() if not isinstance(d, CategoricalDistribution)}
    ends = [{k: d.low for k, d in nums.items()}, {k: d.high for k, d in nums.items()}] if nums else [{}]
    return [space.overrides({**dict(combo), **end}) for combo in itertools.product(*cats) for end in ends]


def check_keys(space: Space, cfg: Any) -> None:
    """Every swept key exists in ``cfg`` (a config composed with the study's fixed overrides, or with one of
    :func:`preflight_points`); keys a ``+`` adds are exempt. SpaceError names the key and a near match."""
    for key in space.distributions:
        if space.prefixes.get(key):
            continue
        parent_path, _, leaf = key.replace("/", ".").rpartition(".")
        parent = _node(cfg, parent_path)
        names = [str(k) for k in parent.keys()] if _is_dict(parent) else []
        if leaf not in names:
            near = difflib.get_close_matches(leaf, names, n=1)
            hint = f"; did you mean {'.'.join(filter(None, [parent_path, near[0]]))}?" if near else ""
            raise SpaceError(f"{key}: no such key in the config, so a study cannot sweep it{hint}")


def _node(cfg: Any, path: str) -> Any:
    from omegaconf import OmegaConf

    return cfg if not path else OmegaConf.select(cfg, path, default=None)


def _is_dict(node: Any) -> bool:
    from omegaconf import DictConfig

    return isinstance(node, DictConfig)
