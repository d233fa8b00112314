"""``hydra/sweeper=fast_basic``: Hydra's basic sweep (the cartesian product of comma lists and ranges, in
batches of ``max_batch_size``), with an up-front check that does not grow with the sweep and a launch
error that keeps its cause.

The check: Hydra's basic sweeper re-composes the whole config of every job before launching (to catch a
bad override early); at ~0.15 s a composition a 2,500-job sweep spends minutes on the login node before its
first ``bsub``. Most overrides only set values (``trainer.lr=3e-5``, ``seed=7``): those are checked here by
setting each distinct one on a config composed once (``OmegaConf.update``, which raises the errors Hydra
would: unknown key, wrong type). Only jobs whose config-group choices differ (``model=tiny`` vs
``model=minilm``) need a composition of their own, once per distinct combination. Before the first batch
the preflight checks run for the swept values of every job (``pipeline.launch.sweep_preflight``: once per
distinct combination of the keys the checks read), so a value that would fail a job on a node fails the
launch instead: one line, exit 2, nothing submitted.

What a launch can end in:

- bad input, or a scheduler that refuses the sweep (a ``PipelineError`` from the launcher): one line on
  stderr, exit 2, nothing aggregated; a sweep folder this sweep made is removed again when the first
  submission was refused;
- a job that failed (a FAILED return of a blocking launch): the sweep is still aggregated and its table
  printed (failed runs with their first error line), then one line that says how to see and retry the
  failures, exit 1;
- anything else (a bug, an ``OSError``) keeps its traceback.
"""
# no `from __future__ import annotations`: Hydra's plugin scan executes this module outside sys.modules,
# where dataclasses cannot resolve string annotations

import copy
import itertools
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import ConfigCompositionException, HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from pipeline import rundir

log = logging.getLogger(__name__)


@dataclass
class FastBasicSweeperConf:
    _target_: str = "hydra_plugins.pipeline_sweepers.fast_basic_sweeper.FastBasicSweeper"
    # jobs per launch; null: the whole sweep at once
    max_batch_size: int | None = None
    # more sweep overrides, key: values (as on the command line)
    params: dict[str, str] | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="fast_basic", node=FastBasicSweeperConf)


def split_arguments(overrides: Sequence[Override], max_batch_size: int | None) -> list[list[list[str]]]:
    """The sweep's jobs (each a list of overrides) in batches: the cartesian product of the swept values,
    in command-line order (what Hydra's basic sweeper does)."""
    lists: dict[str, list[str]] = {}
    for o in overrides:
        key = o.get_key_element()
        if not o.is_sweep_override():
            lists[key] = [f"{key}={o.get_value_element_as_str()}"]
        elif o.is_discrete_sweep():
            lists[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            raise HydraException(f"fast_basic does not support sweep type {o.value_type.name if o.value_type else '?'}"
                                 f" ({o.input_line}): list values or use range()")
    jobs = [list(x) for x in itertools.product(*lists.values())]
    size = len(jobs) if max_batch_size in (None, -1) else int(max_batch_size)  # type: ignore[arg-type]
    return [jobs[i:i + size] for i in range(0, len(jobs), max(1, size))]


def set_values(cfg: DictConfig, overrides: Sequence[Override]) -> None:
    """Set plain ``key=value`` overrides on a composed config, failing as Hydra's composition would."""
    OmegaConf.set_readonly(cfg, False)
    for o in overrides:
        try:
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
        except (ConfigAttributeError, ConfigKeyError) as e:
            raise ConfigCompositionException(f"Could not override '{o.key_or_group}'.\nTo append to your config "
                                             f"use +{o.input_line}") from e
        except OmegaConfBaseException as e:
            raise ConfigCompositionException(f"Error merging override {o.input_line}") from e


class FastBasicSweeper(Sweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self._bases: dict[tuple[str, ...], DictConfig] = {}
        self._groups: set[str] | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    # ---------------------------------------------------------------------------------------- the sweep

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        batches = split_arguments(parser.parse_overrides([*self._params(), *arguments]), self.max_batch_size)
        self._preflight(batches)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        made = [p for p in (sweep_dir, sweep_dir / rundir.MULTIRUN_YAML) if not p.exists()]
        returns: list[Sequence[JobReturn]] = []
        first = 0
        for batch in batches:
            self.validate_batch_is_legal(batch)
            if not returns:
                sweep_dir.mkdir(parents=True, exist_ok=True)
                OmegaConf.save(self.config, sweep_dir / rundir.MULTIRUN_YAML)
            returns.append(self._launch(batch, first, made if not returns else []))
            first += len(batch)
        failed = [r for batch in returns for r in batch if r.status == JobStatus.FAILED]
        if failed:
            self._failed(failed[0])
        return returns

    def _params(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.params.items()]

    def _launch(self, batch: Sequence[Sequence[str]], first: int, made: list[Path]) -> Sequence[JobReturn]:
        """One batch through the launcher; bad input or a refusal: one line, exit 2 (after removing what
        this sweep made, when nothing was submitted)."""
        from pipeline.errors import PipelineError

        try:
            return self.launcher.launch(batch, initial_job_idx=first)
        except PipelineError as e:
            self._refuse(e, made if getattr(e, "nothing_submitted", True) else [])

    def _refuse(self, e: Exception, made: list[Path]) -> NoReturn:
        """Bad input, or a scheduler that refused the jobs: one line, exit 2; ``made`` (what this sweep made,
        given only when nothing was submitted) is removed first. ``HYDRA_FULL_ERROR=1`` re-raises instead."""
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise e
        for p in reversed(made):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        print(f"error: {str(e).strip()}", file=sys.stderr, flush=True)
        sys.exit(2)

    def _failed(self, failed: JobReturn) -> None:
        """A job of a blocking sweep failed: aggregate, print the table, one line on how to retry; exit 1."""
        from pipeline.launch.callbacks import AggregateAtEnd

        assert self.config is not None
        try:
            _ = failed.return_value  # raises the job's own exception
            said = "failed"
        except Exception as e:  # noqa: BLE001 - its message is what the user needs
            said = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        AggregateAtEnd().on_multirun_end(self.config)
        sweep_dir = self.config.hydra.sweep.dir
        print(f"error: a job of the sweep failed ({said[:300]}); `pipeline logs {sweep_dir}` shows why, "
              f"`pipeline rerun {sweep_dir} --failed` retries the failed jobs", file=sys.stderr, flush=True)
        sys.exit(1)

    # ---------------------------------------------------------------------------------------- the checks

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Every job's overrides apply: one composition per distinct set of structural overrides, each
        distinct plain value set on a copy of it."""
        tic = time.perf_counter()
        parser = OverridesParser.create()
        structural: dict[tuple[str, ...], set[str]] = {}
        for overrides in batch:
            key, values = self._split(parser.parse_overrides(list(overrides)))
            structural.setdefault(tuple(key), set()).update(values)
        for key, values in structural.items():
            base = self._compose(list(key))
            for line in sorted(values):
                set_values(copy.deepcopy(base), parser.parse_overrides([line]))
        log.debug("validated %d jobs with %d compositions in %.2f s", len(batch), len(structural),
                  time.perf_counter() - tic)

    def _groups_known(self) -> set[str]:
        """Every config group (``model``, ``hydra/launcher``, ...), from the config loader's public listing."""
        if self._groups is None:
            assert self.hydra_context is not None
            loader, found, todo = self.hydra_context.config_loader, set(), [""]
            while todo:
                parent = todo.pop()
                for child in loader.list_groups(parent):
                    name = f"{parent}/{child}" if parent else child
                    found.add(name)
                    todo.append(name)
            self._groups = found
        return self._groups

    def _split(self, parsed: Sequence[Override]) -> tuple[list[str], list[str]]:
        """(structural overrides: groups, adds, deletes, packages; plain value overrides)."""
        groups = self._groups_known()
        structural, values = [], []
        for o in parsed:
            plain = not (o.is_add() or o.is_delete() or o.is_force_add()) and o.package is None
            (values if plain and o.key_or_group.replace(".", "/") not in groups else structural).append(
                o.input_line)
        return structural, values

    def _compose(self, structural: list[str]) -> DictConfig:
        """The sweep config with these config-group choices (and other structural overrides), cached."""
        assert self.hydra_context is not None and self.config is not None
        if tuple(structural) not in self._bases:
            self._bases[tuple(structural)] = self.hydra_context.config_loader.load_sweep_config(self.config,
                                                                                               structural)
        return self._bases[tuple(structural)]

    def _config_of(self, overrides: tuple[str, ...]) -> DictConfig:
        """One job's config: the composition for its structural overrides, then its plain values."""
        parser = OverridesParser.create()
        structural, values = self._split(parser.parse_overrides(list(overrides)))
        cfg = copy.deepcopy(self._compose(structural))
        set_values(cfg, parser.parse_overrides(values))
        return cfg

    def _preflight(self, batches: list[list[list[str]]]) -> None:
        """The preflight checks for the swept values of every job (all batches), before the sweep folder
        is made."""
        from pipeline.errors import PipelineError
        from pipeline.launch.backend import runs_here
        from pipeline.launch.callbacks import fail
        from pipeline.launch.sweep_preflight import check_sweep

        jobs = [tuple(job) for batch in batches for job in batch]
        try:
            check_sweep(jobs, self._config_of, lambda cfg: runs_here(cfg.hydra.launcher))
        except PipelineError as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(str(e))
