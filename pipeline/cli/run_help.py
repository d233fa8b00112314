"""``python run.py --help``: the config groups with their options, and the trainer fields explained.

Hydra's stock ``--help`` lists only its own flags; this one is built from ``configs/`` (groups, options,
the defaults list) and :mod:`pipeline.config` (fields), so it cannot drift from them. Hydra's own help
stays at ``python run.py --hydra-help``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline import config as C

#: one line per trainer field (tests check that every field of TrainerConf has one)
TRAINER_HELP = {
    "epochs": "passes over the training split",
    "max_steps": "> 0: stop after this many optimizer steps (overrides epochs)",
    "lr": "peak learning rate of AdamW (linear warm-up, then linear decay to 0)",
    "weight_decay": "AdamW weight decay (not on biases and LayerNorm)",
    "warmup_ratio": "fraction of the steps spent warming the learning rate up",
    "batch_size": "training examples per micro-batch",
    "eval_batch_size": "examples per batch when evaluating",
    "grad_accum": "micro-batches per optimizer step (effective batch = batch_size x grad_accum)",
    "max_length": "tokens kept per text (truncation)",
    "precision": "auto | fp32 | bf16 | fp16 (auto: bf16/fp16 on GPU, bf16 on CPUs that have it)",
    "dynamic_padding": "pad each batch to its longest text, not to max_length",
    "group_by_length": "batch texts of similar length together (less padding)",
    "max_grad_norm": "gradient clipping norm; <= 0 turns clipping off",
    "eval_every_steps": "evaluate on val every N steps; 0 = once per epoch",
    "checkpoint_every_steps": "save checkpoints/last every N steps; 0 = at every evaluation",
    "early_stopping_patience": "stop after N evaluations without improvement; 0 = off",
    "monitor": "accuracy | macro_f1 | loss: the val metric that picks the best checkpoint",
    "log_every_steps": "a train line in run.log and metrics.jsonl every N steps",
    "device": "auto | cpu | cuda",
    "cpu_kernels": "auto | all | attention | dropout | none: our CPU training kernels (auto: on the CPU only)",
    "keep_last_checkpoint": "keep checkpoints/last (the resume state) after the run completes",
}

USAGE = """\
Fine-tune a BERT-family text classifier (Hydra app).

  python run.py [KEY=VALUE ...]            one run, local, offline defaults
  python run.py -m KEY=A,B [KEY=C,D ...]   a sweep over every combination (cluster=... picks where)
  python run.py -m hydra/sweeper=study hydra.sweeper.trials=N 'KEY=interval(A,B)'
                                           an Optuna study run by the jobs (docs/search.md)
  python run.py hydra.run.dir=RUN_DIR      resume that run from its checkpoints/last

Examples:
  python run.py model=tiny data.max_rows=400 trainer.epochs=1
  python run.py -m trainer.lr=2e-5,5e-5 seed=0,1,2 cluster=dtu_gpua100
"""


def _defaults(config_dir: Path) -> dict[str, str]:
    """``{group: default option}`` from the defaults list of configs/config.yaml."""
    from omegaconf import OmegaConf

    out: dict[str, str] = {}
    main = config_dir / "config.yaml"  # not a run-directory file
    for item in OmegaConf.to_container(OmegaConf.load(main)).get("defaults", []):
        if isinstance(item, dict):
            for key, value in item.items():
                out[str(key).replace("optional ", "").strip()] = str(value)
    return out


def _value(v: object) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def help_text(config_dir: Path) -> str:
    from pipeline.launch.overrides_check import group_options

    defaults = _defaults(config_dir)
    groups = sorted(p.name for p in config_dir.iterdir() if p.is_dir() and p.name not in ("hydra", "local"))
    lines = [USAGE, "Config groups (GROUP=OPTION; * = default):"]
    for g in groups:
        opts = [f"{o}*" if defaults.get(g) == o else o for o in group_options(config_dir, g)]
        lines.append(f"  {g:<11} {', '.join(opts)}")
    lines += ["", "Trainer fields (trainer.FIELD=VALUE; default in brackets):"]
    for f in dataclasses.fields(C.TrainerConf):
        default = f.default if f.default is not dataclasses.MISSING else ""
        lines.append(f"  {f.name:<24} {TRAINER_HELP.get(f.name, '')} [{_value(default)}]")
    other = ", ".join(f.name for f in dataclasses.fields(C.Config)
                      if not dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None)
                      and f.name not in ("data", "model", "trainer", "paths", "tracking"))
    lines += ["", f"Other keys: {other}; data.*, model.*, paths.*, tracking.* (see pipeline/config.py).",
              "The composed config: python run.py --cfg job     Hydra's own help: python run.py --hydra-help",
              "Follow and compare runs: pipeline --help"]
    return "\n".join(lines)
