"""``hydra/sweeper=fast_basic``: Hydra's basic sweeper whose up-front check does not grow with the sweep.

The basic sweeper re-composes the whole config of every job before launching (to catch a bad override
early); at ~0.15 s a composition a 2,500-job sweep spends minutes on the login node before its first
``bsub``. Most overrides only set values (``trainer.lr=3e-5``, ``seed=7``): those are checked here by
applying each distinct one to a config composed once, which raises the very errors Hydra would (unknown
key, wrong type). Only jobs whose config-group choices differ (``model=tiny`` vs ``model=minilm``) need a
composition of their own, once per distinct combination. The jobs then run exactly as with ``basic``.

Before the first batch is launched, the preflight checks run for the swept values of every job
(``pipeline.launch.sweep_preflight``: once per distinct combination of the keys the checks read), so a value
that would fail a job on a node fails the launch instead: one line, exit 2, nothing submitted.

When jobs of a blocking sweep fail, the basic sweeper re-raises the first failure and nothing else is shown;
this one still aggregates the sweep and prints the compare table (failed runs with their first error line),
then ends with one line that says how to see and retry the failures, and exit code 1.
"""


import copy
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


@dataclass
class FastBasicSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.pipeline_sweepers.fast_basic_sweeper.FastBasicSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="fast_basic", node=FastBasicSweeperConf)


class FastBasicSweeper(BasicSweeper):
    def sweep(self, arguments: list) -> Any:
        self._preflight(arguments)
        try:
            return super().sweep(arguments)
        except Exception as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or not getattr(self, "_validated", False):
                raise  # a bad override: Hydra's own message, before anything was launched
            from pipeline.errors import SubmissionError

            if isinstance(e, SubmissionError):  # the scheduler refused: no job ran, none failed, no results/
                print(f"error: {str(e).strip()}", file=sys.stderr, flush=True)
                sys.exit(2)
            from pipeline.launch.callbacks import AggregateAtEnd

            AggregateAtEnd().on_multirun_end(self.config)
            sweep_dir = self.config.hydra.sweep.dir
            first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
            print(f"error: a job of the sweep failed ({first[:300]}); `pipeline logs {sweep_dir}` shows why, "
                  f"`pipeline rerun {sweep_dir} --failed` retries the failed jobs", file=sys.stderr, flush=True)
            sys.exit(1)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        tic = time.perf_counter()
        loader = self.hydra_context.config_loader
        repo = getattr(loader, "repository", None)
        if repo is None:  # not Hydra's own loader: do what the basic sweeper does
            return super().validate_batch_is_legal(batch)
        parser = OverridesParser.create()
        structural: dict = {}
        for overrides in batch:
            parsed = parser.parse_overrides(list(overrides))
            key, values = [], []
            for o in parsed:
                plain = not (o.is_add() or o.is_delete() or o.is_force_add()) and o.package is None
                if plain and not repo.group_exists(o.key_or_group.replace(".", "/")):
                    values.append(o.input_line)
                else:
                    key.append(o.input_line)
            structural.setdefault(tuple(key), set()).update(values)
        for key, values in structural.items():
            base = self._compose(list(key))
            for line in sorted(values):
                cfg = copy.deepcopy(base)
                OmegaConf.set_readonly(cfg, False)
                ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides([line]), cfg)
        self._validated = True
        log.debug("validated %d jobs with %d compositions in %.2f s", len(batch), len(structural),
                  time.perf_counter() - tic)

    def _compose(self, structural: list[str]) -> Any:
        """The sweep config with these config-group choices (and other structural overrides), cached."""
        cache = self.__dict__.setdefault("_bases", {})
        if tuple(structural) not in cache:
            cache[tuple(structural)] = self.hydra_context.config_loader.load_sweep_config(self.config, structural)
        return cache[tuple(structural)]

    def _config_of(self, overrides: tuple[str, ...]) -> Any:
        """One job's config: the composition for its structural overrides, then its plain values."""
        repo = self.hydra_context.config_loader.repository
        parser = OverridesParser.create()
        structural, values = [], []
        for o in parser.parse_overrides(list(overrides)):
            plain = not (o.is_add() or o.is_delete() or o.is_force_add()) and o.package is None
            (values if plain and not repo.group_exists(o.key_or_group.replace(".", "/")) else structural).append(
                o.input_line)
        cfg = copy.deepcopy(self._compose(structural))
        OmegaConf.set_readonly(cfg, False)
        ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides(values), cfg)
        return cfg

    def _preflight(self, arguments: list) -> None:
        """The preflight checks for the swept values of every job of the sweep (all batches), before the
        sweep folder is made."""
        from pipeline.errors import PipelineError
        from pipeline.launch.callbacks import fail
        from pipeline.launch.sweep_preflight import check_sweep

        if getattr(self.hydra_context.config_loader, "repository", None) is None:
            return  # not Hydra's own loader: no cheap per-job composition
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        parsed = parser.parse_overrides([*self._parse_config(), *arguments])
        jobs = [job for batch in self.split_arguments(parsed, None) for job in batch]
        try:
            check_sweep(jobs, self._config_of, lambda cfg: cfg.get("cluster_name", "local") == "local")
        except PipelineError as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(str(e))
