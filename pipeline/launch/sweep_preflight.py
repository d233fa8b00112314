"""Preflight for the swept values of a sweep: every job's config is checked before anything is submitted.

A sweep's base config is checked by the ``Preflight`` callback; the values a sweep sets per job
(``data.file=a.csv,b.csv``, ``model.path=...``, ``trainer.lr=...``) are checked here, so a job that would
fail on a node hours later fails the launch instead, with the same one-line error as a single run.

The checks depend on few keys, so they run once per distinct combination of the keys they read, not once
per job, and not again for what the callback checked on the base config: ``seed`` and ``hydra.*``
overrides are read by none of them; the data check (the expensive one: it reads, cleans and splits the
file, and logs the data report's line) runs once per distinct ``data``/``paths`` setting; the
short-training warning once per distinct data setting and the trainer and model keys it reads
(``preflight.SHORT_TRAINING_KEYS``); the model check once per distinct ``model``/``paths`` setting; the
cheap config checks once per distinct combination of the rest. A 2,500-job sweep over lr x batch size x
seed on one dataset reads its data once. Then the storage check adds up what all jobs of the sweep will
write (``pipeline.launch.storage``) and compares it with the free space of the sweep folder.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.launch.storage import RunFootprint

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
    """The values of these config keys (dotted paths allowed), as a comparable string."""
    from omegaconf import OmegaConf

    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

    return json.dumps({p: plain(OmegaConf.select(cfg, p, default=None)) for p in parts}, sort_keys=True,
                      default=str)


#: what each check reads; each runs once per distinct signature of its keys
SETTINGS_KEYS = ("trainer", "data", "tracking", "cluster_name")
DATA_KEYS = ("data", "paths")
MODEL_KEYS = ("model", "paths")
FOOTPRINT_KEYS = ("model", "trainer.keep_last_checkpoint")


#: the checks the ``Preflight`` callback ran on the sweep's base config (all but the storage footprint)
CALLBACK_CHECKED = ("settings", "output_root", "model", "data", "training")


def jobs_with(swept: Sequence[str], keys: Sequence[str]) -> str:
    """``(jobs with data.max_rows=100)``: the swept overrides of a combination that set a config key a check
    reads, or a node above or below one (all of them when none does by name, e.g. ``experiment=...``); ""
    when nothing is swept."""
    def sets(key: str, read: str) -> bool:
        return key == read or read.startswith(key + ".") or key.startswith(read + ".")

    named = [o for o in swept if any(sets(override_key(o).replace("/", "."), k) for k in keys)]
    return f"(jobs with {' '.join(named or swept)})" if swept else ""


class _Once:
    """Runs each kind of check once per distinct signature of the keys it reads, for the combination of
    swept values set in ``swept``. Where a signature is the base config's and the callback ran that check,
    the result is None: checked, its line already shown. A failure's message ends with the jobs it is about."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.swept: tuple[str, ...] = ()
        self.results: dict[str, dict[str, Any]] = {}
        self.ran: dict[str, int] = {}

    def __call__(self, kind: str, keys: Sequence[str], cfg: Any, run: Callable[[Any, str], Any]) -> Any:
        results = self.results.setdefault(kind, {})
        self.ran.setdefault(kind, 0)
        signature = _signature(cfg, *keys)
        if signature not in results:
            if kind in CALLBACK_CHECKED and signature == _signature(self.base, *keys):
                results[signature] = None
            else:
                jobs = jobs_with(self.swept, keys)
                try:
                    results[signature] = run(cfg, jobs)
                except PipelineError as e:
                    raise PipelineError(f"{e} {jobs}".strip()) from None
                self.ran[kind] += 1
        return results[signature]


def _check_combo(once: _Once, cfg: Any, runs_here: bool) -> Any:
    """The checks of one combination of swept values; its run footprint."""
    from pipeline.launch import preflight, storage

    def warn_short(c: Any, jobs: str) -> None:
        rows = once.results["data"][_signature(c, *DATA_KEYS)]
        if rows is None:  # the base's data, which the callback read: the split is memoised, no new read
            rows = preflight.training_rows(c)
        warning = preflight.short_training(c, rows)
        if warning:
            log.warning(f"{warning} {jobs}".strip())

    once("settings", SETTINGS_KEYS, cfg, lambda c, _: preflight.check_settings(c, runs_here))
    once("output_root", ("paths",), cfg, lambda c, _: preflight.check_output_root(c.paths.output_root))
    once("model", MODEL_KEYS, cfg, lambda c, _: preflight.check_model(c))
    once("data", DATA_KEYS, cfg, preflight.check_data)
    once("training", (*DATA_KEYS, *preflight.SHORT_TRAINING_KEYS), cfg, warn_short)
    return once("footprint", FOOTPRINT_KEYS, cfg, lambda c, _: storage.run_footprint(c))


def check_sweep(jobs: Iterable[Sequence[str]], config_of: Callable[[tuple[str, ...]], Any],
                runs_here: Callable[[Any], bool], total_runs: int | None = None,
                parallel: int | None = None) -> dict[str, int]:
    """Run the preflight checks for every distinct combination of checked overrides among ``jobs``, then
    the storage check for all of them.

    ``config_of(overrides)`` composes the config of a job with those overrides. ``total_runs``: how many
    runs the sweep makes when ``jobs`` are samples of its points (a study's preflight points: the storage
    estimate counts ``trials`` runs, shared out as the samples are), and ``parallel`` how many run at once
    (a study's workers); by default one run per job, at the launcher's parallelism. Raises ``PipelineError``
    (the check's own message, plus the swept values it failed for) at the first failure; logs each
    warning once, with the swept values it is about. Returns how many times each kind of check ran
    (what the base config shares with the callback's check is not counted).
    """
    from pipeline.launch import preflight, storage

    tic = time.perf_counter()
    counts = Counter(checked_overrides(job) for job in jobs)
    combos = sorted(counts)
    common = tuple(sorted(set.intersection(*(set(c) for c in combos)))) if combos else ()
    base = config_of(common)  # the sweep's base config: what the Preflight callback checked
    once = _Once(base)
    runs: dict[RunFootprint, int] = {}
    for combo in combos:
        once.swept = tuple(o for o in combo if o not in common)
        cfg = base if combo == common else config_of(combo)
        footprint = _check_combo(once, cfg, runs_here(cfg))
        if footprint is not None:
            runs[footprint] = runs.get(footprint, 0) + counts[combo]
    if runs:
        if total_runs is not None:
            n_jobs = sum(runs.values())
            runs = {fp: max(1, math.ceil(n * total_runs / n_jobs)) for fp, n in runs.items()}
        n_runs = sum(runs.values())
        at_once = min(parallel, n_runs) if parallel is not None else storage.parallel_runs(base, n_runs)
        warning = storage.check(storage.Estimate(list(runs.items()), at_once),
                                preflight.output_folder(base, sweep=True))
        if warning:
            log.warning(warning)
    log.debug("preflight of %d combinations of swept values in %.2f s: %s", len(combos),
              time.perf_counter() - tic, once.ran)
    return once.ran
