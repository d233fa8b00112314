"""Preflight for the swept values of a sweep: every job's config is checked before anything is submitted.

A sweep's base config is checked by the ``Preflight`` callback; the values a sweep sets per job
(``data.file=a.csv,b.csv``, ``model.path=...``, ``trainer.lr=...``) are checked here, so a job that would
fail on a node hours later fails the launch instead, with the same one-line error as a single run.

The checks depend on few keys, so they run once per distinct combination of the keys they read, not once
per job: ``seed`` and ``hydra.*`` overrides are read by none of them, the data check (the expensive one:
it reads, cleans and splits the file) runs once per distinct ``data``/``paths`` setting, the model check
once per distinct ``model``/``paths`` setting, and the cheap config checks once per distinct combination
of the rest. A 2,500-job sweep over lr x batch size x seed on one dataset reads its data once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

#: override keys that no preflight check reads
UNCHECKED = {"seed"}
#: config nodes that no preflight check reads (the launcher validates ``hydra.launcher`` itself)
UNCHECKED_NODES = {"hydra"}


def override_key(line: str) -> str:
    """``+trainer.lr=3e-5`` -> ``trainer.lr``; ``data=fakenews`` -> ``data``."""
    return line.split("=", 1)[0].lstrip("+~")


def checked_overrides(job: Sequence[str]) -> tuple[str, ...]:
    """The overrides of one job that a preflight check may read, sorted (the job's check key)."""
    def checked(line: str) -> bool:
        key = override_key(line)
        return key not in UNCHECKED and key.replace("/", ".").split(".", 1)[0] not in UNCHECKED_NODES

    return tuple(sorted(o for o in job if checked(o)))


def _signature(cfg: Any, *parts: str) -> str:
    from omegaconf import OmegaConf

    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    return json.dumps({p: plain(cfg.get(p)) for p in parts}, sort_keys=True, default=str)


def check_sweep(jobs: Iterable[Sequence[str]], config_of: Callable[[tuple[str, ...]], Any],
                runs_here: Callable[[Any], bool]) -> dict[str, int]:
    """Run the preflight checks for every distinct combination of checked overrides among ``jobs``.

    ``config_of(overrides)`` composes the config of a job with those overrides. Raises ``PipelineError``
    (the check's own message, plus the swept values it failed for) at the first failure. Returns how many
    times each kind of check ran.
    """
    from pipeline.launch import preflight

    tic = time.perf_counter()
    combos = sorted({checked_overrides(job) for job in jobs})
    common = set.intersection(*(set(c) for c in combos)) if combos else set()
    checks: list[tuple[str, tuple[str, ...], Callable[[Any], None]]] = [
        ("settings", ("trainer", "data", "tracking", "cluster_name"),
         lambda cfg: preflight.check_settings(cfg, runs_here(cfg))),
        ("output_root", ("paths",), lambda cfg: preflight.check_output_root(cfg.paths.output_root)),
        ("data", ("data", "paths"), preflight.check_data),
        ("model", ("model", "paths"), preflight.check_model),
    ]
    done: dict[str, set[str]] = {kind: set() for kind, _, _ in checks}
    for combo in combos:
        if not combo:
            continue  # the base config: the Preflight callback checked it
        cfg = config_of(combo)
        for kind, parts, run in checks:
            signature = _signature(cfg, *parts)
            if signature in done[kind]:
                continue
            try:
                run(cfg)
            except PipelineError as e:
                swept = " ".join(o for o in combo if o not in common)
                raise PipelineError(f"{e} (jobs with {swept})" if swept else str(e)) from None
            done[kind].add(signature)
    counts = {kind: len(seen) for kind, seen in done.items()}
    log.debug("preflight of %d combinations of swept values in %.2f s: %s", len(combos),
              time.perf_counter() - tic, counts)
    return counts
