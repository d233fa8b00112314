"""The same fine-tune as ``run.py``, done by the Hugging Face ``Trainer``: the baseline ``bench.train`` times.

    python -m bench.hf_trainer_job --variant defaults --out b.json data.max_rows=600 trainer.epochs=1
    python -m bench.hf_trainer_job --variant best --out c.json data.max_rows=600 trainer.epochs=1

Trailing ``key=value`` arguments are Hydra overrides of this project's config (``configs/``), composed exactly
as ``run.py`` composes them, so the job is the same: the split comes from ``pipeline.data.data.load_splits`` (same
rows in train/val/test), and model, max_length, batch size, epochs, learning rate, weight decay (not on
biases and LayerNorm, as the Trainer also does), warmup, linear decay, gradient clipping, seed and the
evaluate-each-epoch / keep-the-best / test-the-best schedule are taken from that config. Everything else is
the Trainer's own: its tokenisation here, Dataset, sampler, collator, optimizer (``adamw_torch_fused``),
checkpointing (``save_strategy=epoch`` + ``load_best_model_at_end``) and evaluation loop.

``--variant defaults``: what the Trainer does out of the box: inputs padded to max_length at tokenisation,
fp32, random sampler, eval batch size 8. ``--variant best``: its best settings for this hardware:
``DataCollatorWithPadding`` (dynamic padding to a multiple of 8), ``train_sampling_strategy=group_by_length``,
bf16 autocast where the CPU or GPU has bf16 (``--no-bf16`` to turn off; ``--fp16``: fp16 with a GradScaler on
CUDA), eval batch size = the project's ``trainer.eval_batch_size``; ``--compile`` adds ``torch_compile=True``.
``model=tiny`` (a BERT initialised from its config, e.g. bert-base-sized) is built as ``run.py`` builds it.

Writes one JSON object to ``--out``: wall time from process start to the final test metrics, start-up
(process start to the first optimizer step), training time over whole epochs (evaluation excluded), val
metrics of the best checkpoint (from the evaluation that chose it, not re-run) and test metrics of it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compose(overrides: list[str]):
    """The project's config with these overrides, as ``run.py`` would see it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from pipeline.config import register

    register()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=("defaults", "best"), required=True)
    p.add_argument("--out", type=Path, required=True, help="result JSON")
    p.add_argument("--workdir", type=Path, default=None, help="Trainer output_dir (default: beside --out)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="best: bf16 autocast (default: where the CPU has bf16 instructions)")
    p.add_argument("--compile", action="store_true", help="best: torch_compile=True")
    p.add_argument("--fp16", action="store_true", help="best: fp16 autocast with a GradScaler (CUDA; bench.gpu)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the project config (data.max_rows=600 ...)")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    from pipeline.config import optimizer_steps
    from pipeline.data import data
    from pipeline.models.model import build_model, load_tokenizer
    from pipeline.train.device import cpu_has_bf16, pick_device, process_age

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    cfg = compose(args.overrides)
    t = cfg.trainer
    best = args.variant == "best"
    device = pick_device(t.device)
    fp16 = best and args.fp16
    bf16_default = torch.cuda.is_bf16_supported(including_emulation=False) if device == "cuda" else cpu_has_bf16()
    bf16 = best and not fp16 and (args.bf16 if args.bf16 is not None else bf16_default)

    # data: the project's split, the Trainer's own tokenisation
    splits = data.load_splits(cfg)
    label_ids = {name: i for i, name in enumerate(splits.labels)}
    tokenizer, _ = load_tokenizer(cfg.model)

    def dataset(frame) -> list[dict]:
        enc = tokenizer(frame.text.tolist(), truncation=True, max_length=t.max_length,
                        padding=False if best else "max_length")
        return [{"input_ids": ids, "attention_mask": mask, "labels": label_ids[label]}
                for ids, mask, label in zip(enc["input_ids"], enc["attention_mask"], frame.label.tolist())]

    train, val, test = dataset(splits.train), dataset(splits.val), dataset(splits.test)

    set_seed(cfg.seed)  # the classification head is initialised from the seed, as in run.py
    model = build_model(cfg.model, splits.labels, len(tokenizer), cfg.seed)  # pretrained or from its config

    steps_per_epoch, _ = optimizer_steps(t, len(train))
    total_steps = t.epochs * steps_per_epoch  # the Trainer runs num_train_epochs; max_steps is not passed
    workdir = args.workdir or args.out.with_suffix(".trainer")
    targs = TrainingArguments(
        output_dir=str(workdir), use_cpu=device == "cpu", seed=cfg.seed, report_to="none", disable_tqdm=True,
        num_train_epochs=t.epochs, per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr, weight_decay=t.weight_decay, warmup_steps=int(t.warmup_ratio * total_steps),
        lr_scheduler_type="linear", max_grad_norm=t.max_grad_norm if t.max_grad_norm > 0 else 0.0,
        eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
        metric_for_best_model=t.monitor, greater_is_better=t.monitor != "loss", save_total_limit=1,
        logging_strategy="epoch",
        **({"per_device_eval_batch_size": t.eval_batch_size, "bf16": bf16, "fp16": fp16,
            "train_sampling_strategy": "group_by_length", "torch_compile": args.compile} if best else {}),
    )

    def metrics(pred) -> dict:
        y = np.argmax(pred.predictions, -1)
        return {"accuracy": float(accuracy_score(pred.label_ids, y)),
                "macro_f1": float(f1_score(pred.label_ids, y, average="macro", zero_division=0))}

    class Timer(TrainerCallback):
        """Training time over whole epochs (evaluation excluded) and the moment the first step starts."""

        first_step_at: float | None = None
        train_time = 0.0

        def on_epoch_begin(self, *a, **k):
            self.epoch_start = time.time()

        def on_epoch_end(self, *a, **k):
            self.train_time += time.time() - self.epoch_start

        def on_step_begin(self, *a, **k):
            if self.first_step_at is None:
                self.first_step_at = process_age()

    timer = Timer()
    trainer = Trainer(model=model, args=targs, train_dataset=train, eval_dataset=val, compute_metrics=metrics,
                      data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8) if best else None,
                      processing_class=tokenizer, callbacks=[timer])
    trainer.train()
    # val metrics of the chosen checkpoint, from the evaluation that chose it (run.py does not re-evaluate)
    evals = [r for r in trainer.state.log_history if f"eval_{t.monitor}" in r]
    chosen = max(evals, key=lambda r: r[f"eval_{t.monitor}"] * (1 if t.monitor != "loss" else -1))
    test_out = trainer.predict(test)
    result = {
        "variant": args.variant, "bf16": bf16, "fp16": fp16, "compile": best and args.compile, "device": device,
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "threads": torch.get_num_threads(),
        "wall_s": process_age(), "startup_s": timer.first_step_at,
        "train_time_s": timer.train_time, "train_size": len(train), "epochs": t.epochs,
        "train_samples_per_s": len(train) * t.epochs / timer.train_time if timer.train_time else None,
        "val": {k: chosen[f"eval_{k}"] for k in ("loss", "accuracy", "macro_f1")},
        "test": {k: test_out.metrics[f"test_{k}"] for k in ("loss", "accuracy", "macro_f1")},
        "val_size": len(val), "test_size": len(test), "argv": sys.argv[1:], "pid": os.getpid(),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("variant", "wall_s", "val", "test")}), flush=True)
    return result


if __name__ == "__main__":
    main()
