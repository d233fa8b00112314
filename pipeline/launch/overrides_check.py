"""Command-line overrides checked before Hydra composes anything: one line, exit 2, "did you mean".

Hydra's own report of a typo is several lines and exit 1, and it suggests ``+trainer.lrr=...``, which the
schema then accepts silently (a ``+`` adds the key) while training never reads it. ``run.py`` calls
:func:`check` on its arguments first. It knows three things, all cheap (no composition):

- config groups are the folders of ``configs/``; their options are the YAML files there;
- every other key lives in the typed schema of :mod:`pipeline.config` (``Config`` and its dataclasses);
- ``hydra.*`` keys live in Hydra's ``HydraConf``, except ``hydra.launcher.*`` and ``hydra.sweeper.*``,
  whose schema is the chosen plugin's. Which launcher a run gets can be set in many places (a cluster
  preset, ``configs/local/``, an experiment), so a launcher or sweeper key is refused only when no
  registered launcher (sweeper) has it: a typo is caught, and Hydra still checks the key against the
  launcher it composes.

An override Hydra's grammar refuses is one line too (its reason, as Hydra gives it).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any

from pipeline import config as C


class OverrideError(ValueError):
    """A command-line override names a key or option that does not exist (one line, with the fix)."""


def group_options(config_dir: Path, group: str) -> list[str]:
    folder = config_dir / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _near(word: str, candidates: list[str]) -> list[str]:
    """The candidates the user most likely meant: the one that starts with (or contains) the word, else the
    closest spellings (all of those that are equally close: dtu_gpu100 -> dtu_gpua100 or dtu_gpuv100)."""
    low = word.lower()
    for test in (lambda c: c.lower().startswith(low), lambda c: low in c.lower()):
        hits = [c for c in candidates if len(low) >= 2 and test(c)]
        if len(hits) == 1:
            return hits
    scored = [(difflib.SequenceMatcher(None, word, c).ratio(), c) for c in candidates]
    best = max((r for r, _ in scored), default=0.0)
    return [c for r, c in scored if r >= 0.6 and r == best]


def _did_you_mean(prefix: str, hits: list[str]) -> str:
    return f"did you mean {' or '.join(prefix + h for h in hits)}? " if hits else ""


def _fields(schema: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(schema)
    return {f.name: hints.get(f.name) for f in dataclasses.fields(schema)}


def _scalar_type(tp: Any) -> type | None:
    """int, float or bool for fields of that type (also ``X | None``); None for anything else."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_args(tp) else [tp]
    return args[0] if len(args) == 1 and args[0] in (int, float, bool) else None


_BOOL_WORDS = ("true", "false", "yes", "no", "on", "off", "y", "n")


def _check_value(key: str, tp: Any, values: list[str]) -> None:
    kind = _scalar_type(tp)
    if kind is None:
        return
    for v in values:
        if v.lower() in ("null", "none") or "$" in v:  # null, or an interpolation Hydra resolves
            continue
        try:
            if kind is bool:
                ok = v.lower() in _BOOL_WORDS or v.lstrip("+-").isdigit()  # what OmegaConf accepts
            elif kind is int:
                int(v)
                ok = True
            else:
                float(v)
                ok = True
        except ValueError:
            ok = False
        if not ok:
            wanted = "true or false" if kind is bool else "an integer" if kind is int else "a number"
            raise OverrideError(f"{key}={v}: {key} takes {wanted}")


def _check_key(key: str, add: bool, values: list[str], groups: list[str], root: Any = C.Config,
               prefix: str = "") -> None:
    """Walk ``key`` down the dataclass ``root`` (whose own path is ``prefix``, e.g. ``hydra``)."""
    node: Any = root
    walked: list[str] = [prefix] if prefix else []
    for part in key.split("."):
        if not (isinstance(node, type) and dataclasses.is_dataclass(node)):
            return  # inside a dict/list/Any field: free-form
        fields = _fields(node)
        if part not in fields:
            where = ".".join(walked)
            full = f"{where}.{part}" if where else part
            candidates = list(fields) + ([] if walked else groups)
            hint = _did_you_mean(f"{where}." if where else "", _near(part, candidates))
            listed = f"{where or 'top-level'} keys: {', '.join(fields)}"
            if add:
                why = "(Hydra's HydraConf), so Hydra would refuse it" if prefix else \
                    "(pipeline/config.py), so training would never read it"
                raise OverrideError(
                    f"+{full}: {where or 'the config'} has no key {part!r} and its schema is fixed {why}; "
                    f"{hint}({listed})")
            raise OverrideError(f"unknown config key {full}: {hint}({listed})")
        node = fields[part]
        walked.append(part)
    _check_value(".".join(walked), node, values)


def _plugin_schemas(kind: str) -> list[type]:
    """The config dataclasses of every registered ``hydra/<kind>`` plugin (launcher, sweeper), from Hydra's
    ConfigStore once Hydra's plugin discovery has loaded every installed plugin (ours included)."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from omegaconf import OmegaConf

    Plugins.instance()  # discovery: each plugin module registers its schemas
    nodes = ConfigStore.instance().repo.get("hydra", {}).get(kind, {})
    types = [OmegaConf.get_type(n.node) for n in nodes.values() if hasattr(n, "node")]
    return [t for t in types if isinstance(t, type) and dataclasses.is_dataclass(t)]


def _check_hydra_key(key: str, add: bool, values: list[str]) -> None:
    from hydra.conf import HydraConf

    parts = key.split(".")
    if len(parts) < 2:
        return
    if parts[1] not in ("launcher", "sweeper"):
        _check_key(".".join(parts[1:]), add, values, [], root=HydraConf, prefix="hydra")
        return
    if len(parts) < 3:
        return
    kind, name = parts[1], parts[2]
    known = sorted({f for schema in _plugin_schemas(kind) for f in _fields(schema)} - {"_target_"})
    if known and name not in known:
        hint = _did_you_mean(f"hydra.{kind}.", _near(name, known))
        where = "; docs/dtu.md and docs/packing.md describe the launchers' keys" if kind == "launcher" else ""
        raise OverrideError(f"unknown config key hydra.{kind}.{name}: {hint}(no {kind} has a key {name!r}{where})")


def _choices(override: Any) -> list[str]:
    if override.is_sweep_override():
        try:
            return [str(v) for v in override.sweep_string_iterator()]
        except Exception:  # glob(), interval(): Hydra expands these itself  # noqa: BLE001
            return []
    value = override.value()
    return [] if value is None else [override.get_value_element_as_str()]


def _check_syntax(candidates: list[str]) -> None:
    """OverrideError for the first override Hydra's grammar refuses (``trainer.lr=choice()``), in one line
    instead of Hydra's report (several lines, exit 1)."""
    from pipeline.search.space import SpaceError, parse_override

    for line in candidates:
        try:
            parse_override(line)
        except SpaceError as e:
            raise OverrideError(str(e)) from None


def check(args: list[str], config_dir: Path) -> None:
    """Raise OverrideError for the first override that names an unknown key or group option."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    candidates = [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    if not candidates:
        return
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except Exception:  # noqa: BLE001 - the first that does not parse, in one line
        _check_syntax(candidates)
        return
    groups = sorted(p.name for p in config_dir.iterdir() if p.is_dir() and p.name != "hydra")
    for o in overrides:
        key = o.key_or_group
        if key == "hydra" or key.startswith("hydra/") or o.is_delete() or o.package:
            continue
        values = _choices(o)
        if key.startswith("hydra."):
            _check_hydra_key(key, o.is_add(), values)
            continue
        if key in groups:
            options = group_options(config_dir, key)
            for v in values:
                if v not in options and v != "null":
                    hint = _did_you_mean(f"{key}=", _near(v, options))
                    raise OverrideError(f"{key}={v}: no such option; {hint}(options: {', '.join(options)})")
            continue
        _check_key(key, o.is_add(), values, groups)
