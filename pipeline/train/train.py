"""Fine-tune a BERT-family classifier: one job of a sweep, resumable, read top to bottom.

    python run.py                                    # one run, offline defaults (MiniLM on BBC news)
    python run.py trainer.epochs=1 data.max_rows=400 # a quick one
    python run.py hydra.run.dir=<existing run dir>   # resume it from checkpoints/last

``fit(cfg)`` does: data (cached tokenisation) -> model -> AdamW + linear warmup/decay -> loop over
length-grouped, dynamically padded batches -> evaluate (each epoch or every N steps) -> checkpoint
(``last`` for resume, ``best`` for use) -> test the best checkpoint -> ``metrics.json``. It returns the
best validation metric, which is what Hydra sweepers optimise.

A SIGUSR2 (the scheduler's run-limit warning), SIGTERM or SIGINT (a kill: LSF's ``bkill`` sends INT, then
TERM, then KILL; Slurm's ``scancel`` TERM; Ctrl-C INT) makes the loop save ``checkpoints/last`` at the next
step boundary, so a resumed job loses no finished step. Then USR2 goes on to whoever handled it before
(submitit requeues the job); where nobody requeues, or after a kill signal, ``metrics.json`` says the run
was stopped (status ``killed``, or ``gave_up`` when submitit refuses another requeue after
``max_num_timeout``), by what, at which step, and how to resume; the process exits non-zero.
``attempts.json`` (``pipeline.train.attempts``) keeps the wall time of every attempt. Signals:
:mod:`pipeline.train.signals`; device and precision: :mod:`pipeline.train.device`.
"""

from __future__ import annotations

import errno
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import atomic, rundir
from pipeline import config as config_lib
from pipeline.errors import PipelineError, TrainingDiverged
from pipeline.train import attempts
from pipeline.train.device import autocast, cpu_threads, pick_device, pick_precision, process_age
from pipeline.train.progress import ProgressFile
from pipeline.train.signals import GAVE_UP, KILLED, REQUEUED, GracefulStop, stop_requested

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------ state and steps


@dataclass
class TrainState:
    """The loop's counters: saved in ``checkpoints/last`` as a dict (``counters``) and restored from it."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epochs finished
    batch: int = 0  # micro-batches done in the current epoch: the position in its data order
    best: float | None = None  # best validation value of trainer.monitor so far
    best_step: int | None = None
    best_epoch: int | None = None
    best_val: dict[str, float] | None = None  # all validation metrics at best_step
    bad_evals: int = 0  # evaluations since the last improvement (early stopping)
    elapsed: float = 0.0  # wall time of the earlier attempts
    attempt: int = 1
    train_samples: int = 0  # samples and seconds of the steps after warm-up: samples/s
    train_time: float = 0.0
    step_time: float = 0.0  # seconds in optimizer steps, every step

    @classmethod
    def from_dict(cls, counters: dict[str, Any]) -> TrainState:
        return cls(**{k: v for k, v in counters.items() if k in cls.__dataclass_fields__})


@dataclass
class Job:
    """What one training job works with, built once by :func:`_build`."""

    splits: Any
    tokenizer: Any
    train_set: Any
    val_set: Any
    test_set: Any
    model: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    kernels: Any
    pad_id: int
    pad_to: int | None
    total_steps: int
    epochs: int
    steps_per_epoch: int
    data_ready: float  # when the data was ready (start-up: data vs model time)


def should_evaluate(step: int, end_of_epoch: bool, last_step: bool, eval_every: int) -> bool:
    """Every ``eval_every`` steps (or at each epoch's end when it is <= 0), and after the last step."""
    return (eval_every > 0 and step % eval_every == 0) or (eval_every <= 0 and end_of_epoch) or last_step


def should_checkpoint(step: int, eval_due: bool, checkpoint_every: int) -> bool:
    """With every evaluation (so ``best`` and ``last`` agree), and every ``checkpoint_every`` steps."""
    return eval_due or (checkpoint_every > 0 and step % checkpoint_every == 0)


def train_step(job: Job, group: list[Any], device: str, precision: str, max_grad_norm: float, lr: float,
               step: int) -> tuple[float, int]:
    """One optimizer step over the micro-batches of ``group`` (gradient accumulation): (loss, samples)."""
    import torch

    from pipeline.data.batching import collate

    n_samples = sum(len(b) for b in group)
    step_loss = 0.0
    for idx in group:
        batch = {k: v.to(device, non_blocking=True)
                 for k, v in collate(job.train_set, idx, job.pad_id, job.pad_to).items()}
        with autocast(device, precision):
            loss = job.model(**batch).loss * (len(idx) / n_samples)
        job.scaler.scale(loss).backward()
        step_loss += loss.item()
    if not math.isfinite(step_loss):
        raise TrainingDiverged(
            f"loss became {step_loss} at step {step + 1} (lr={lr}, precision={precision}): "
            "lower trainer.lr, keep trainer.max_grad_norm > 0, or use trainer.precision=fp32")
    if max_grad_norm > 0:
        job.scaler.unscale_(job.optimizer)
        torch.nn.utils.clip_grad_norm_(job.model.parameters(), max_grad_norm)
    job.scaler.step(job.optimizer)
    job.scaler.update()
    job.scheduler.step()
    job.optimizer.zero_grad(set_to_none=True)
    return step_loss, n_samples


# ------------------------------------------------------------------------------------ the job


def fit(cfg: DictConfig, run_dir: str | Path | None = None, *, started: float | None = None) -> float:
    """Train (or resume, or return the result of an already completed run in ``run_dir``). ``started``: when
    this run began inside a job that runs several (a packed job); its start-up is measured from there."""
    run_dir = Path(run_dir) if run_dir is not None else _hydra_run_dir()
    config_lib.check(cfg)
    done = _read_json(run_dir / rundir.METRICS_JSON)
    if done.get("status") == "completed":
        log.info("run %s already completed; nothing to do", run_dir)
        return float(done["val"][cfg.trainer.monitor])
    age = process_age(started)
    attempt = attempts.Attempt(run_dir, started=time.time() - age if age is not None else None)
    try:
        with GracefulStop() as stopper:
            try:
                result = _train(cfg, run_dir, stopper, attempt, started)
                attempt.end("completed")
                return result
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM):
                    raise
                raise PipelineError(
                    f"cannot write {e.filename or 'to the run directory'}: {e.strerror}; earlier checkpoints are "
                    "intact - free space or fix permissions (or point PIPELINE_OUTPUT_ROOT elsewhere), then rerun "
                    "to resume") from e
    except (Exception, KeyboardInterrupt) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not isinstance(e, PipelineError):
            message = f"{type(e).__name__}: {message}"
        _write_final(run_dir, {"status": "failed", "error": message})
        attempt.end("failed")
        raise


def _build(cfg: DictConfig, device: str, precision: str) -> Job:
    """1. data: clean, split, tokenise (a cache shared by the jobs of a sweep); 2. model, optimizer, schedule."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    from pipeline.data import data
    from pipeline.models import cpu_kernels
    from pipeline.models import model as model_lib

    t = cfg.trainer
    splits = data.load_splits(cfg)
    tokenizer, tokenizer_id = model_lib.load_tokenizer(cfg.model)
    enc = data.tokenize_splits(splits, tokenizer, tokenizer_id, t.max_length, cfg.data, cfg.paths.cache_dir)
    log.info("data %s: %s train / %s val / %s test, %d labels; %s", cfg.data.name, len(enc["train"]),
             len(enc["val"]), len(enc["test"]), len(splits.labels), splits.stats)
    data_ready = time.time()

    model = model_lib.build_model(cfg.model, splits.labels, len(tokenizer), cfg.seed).to(device)
    kernels = cpu_kernels.apply(model, t.cpu_kernels, device)  # CPU: fewer passes over L x L, parallel masks
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": t.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=t.lr, fused=True)  # one kernel for all tensors, CPU and GPU
    steps_per_epoch, total_steps = config_lib.optimizer_steps(t, len(enc["train"]))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(t.warmup_ratio * total_steps), total_steps)
    return Job(splits=splits, tokenizer=tokenizer, train_set=enc["train"], val_set=enc["val"],
               test_set=enc["test"], model=model, optimizer=optimizer, scheduler=scheduler,
               scaler=torch.amp.GradScaler(device, enabled=precision == "fp16"), kernels=kernels,
               pad_id=tokenizer.pad_token_id or 0, pad_to=None if t.dynamic_padding else t.max_length,
               total_steps=total_steps, epochs=math.ceil(total_steps / steps_per_epoch),
               steps_per_epoch=steps_per_epoch, data_ready=data_ready)


def _resume(cfg: DictConfig, job: Job, run_dir: Path) -> tuple[TrainState, bool]:
    """3. resume from ``checkpoints/last`` if there is one (exactly: weights, optimizer, schedule, scaler,
    RNG states, counters); else a fresh start. (state, resumed)."""
    import torch

    from pipeline.train import checkpoint

    saved = checkpoint.load_last(run_dir)
    if saved is None:
        torch.manual_seed(cfg.seed)
        (run_dir / rundir.METRICS_JSONL).unlink(missing_ok=True)
        return TrainState(), False
    refuse_changed_resume(saved.get("config"), OmegaConf.to_container(cfg, resolve=True), run_dir)
    job.model.load_state_dict(saved["model"])
    job.optimizer.load_state_dict(saved["optimizer"])
    job.scheduler.load_state_dict(saved["scheduler"])
    job.scaler.load_state_dict(saved["scaler"])
    checkpoint.set_rng_state(saved["rng"])
    state = TrainState.from_dict(saved["counters"])
    state.attempt += 1
    _truncate_metrics(run_dir / rundir.METRICS_JSONL, state.step)
    log.info("resumed from checkpoints/last at step %d (epoch %s, batch %d), attempt %d",
             state.step, epoch_label(state, job.epochs), state.batch, state.attempt)
    return state, True


def _train(cfg: DictConfig, run_dir: Path, stopper: GracefulStop, attempt: attempts.Attempt,
           point_started: float | None = None) -> float:
    import torch

    from pipeline.data import data_report
    from pipeline.data.batching import epoch_batches
    from pipeline.models import cpu_kernels
    from pipeline.train import checkpoint, run_info, tracking
    from pipeline.train.doctor import require_gpu_if_requested

    started = time.time()
    before_fit = process_age(point_started)  # imports, config, preflight
    t = cfg.trainer
    require_gpu_if_requested(t.device)  # a job given GPUs stops here, in one line, rather than train on CPU
    device = pick_device(t.device)
    precision = pick_precision(t.precision, device)
    threads = cpu_threads()
    if threads and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    job = _build(cfg, device, precision)
    state, resumed = _resume(cfg, job, run_dir)
    model = job.model
    info = run_info.collect(job.splits.data_sha256, device, torch.cuda.device_count() if device == "cuda" else 0)
    info.update({"precision": precision, "attempt": state.attempt, "resumed_from_step": state.step,
                 "threads": torch.get_num_threads() if device == "cpu" else None,
                 "attention": cpu_kernels.CPU_ATTENTION if job.kernels.attention
                 else model.config._attn_implementation,
                 "dropout": "fast" if job.kernels.dropout else "torch", "data_report": data_report.for_config(cfg)})
    atomic.write_json(run_dir / rundir.RUN_INFO_JSON, info)
    tracker = tracking.start(cfg, run_dir)

    def save_last() -> None:
        attempt.beat(state.step, force=True)
        checkpoint.save_last(run_dir, {
            "model": model.state_dict(), "optimizer": job.optimizer.state_dict(),
            "scheduler": job.scheduler.state_dict(), "scaler": job.scaler.state_dict(),
            "rng": checkpoint.rng_state(),
            "counters": {**asdict(state), "elapsed": state.elapsed + time.time() - started},
            "config": OmegaConf.to_container(cfg, resolve=True), "labels": job.splits.labels,
        })

    def run_eval() -> bool:
        """Evaluate on val, log, keep the best; True if early stopping says stop."""
        t_eval = time.time()
        metrics, _, _ = evaluate(model, job.val_set, t.eval_batch_size, device, precision, job.pad_id)
        row = {"split": "val", "epoch": state.epoch, "step": state.step, **metrics, "time": time.time()}
        atomic.append_jsonl(run_dir / rundir.METRICS_JSONL, row)
        tracker.log({f"val/{k}": v for k, v in metrics.items()}, state.step)
        log.info("eval step %d epoch %s: %s", state.step, epoch_label(state, job.epochs), _fmt(metrics))
        if improved(t.monitor, metrics, state.best_val):
            state.best, state.best_step, state.best_epoch = metrics[t.monitor], state.step, state.epoch
            state.bad_evals, state.best_val = 0, metrics
            checkpoint.save_best(run_dir, model, job.tokenizer, {"step": state.step, "epoch": state.epoch,
                                                                "val": metrics, "max_length": t.max_length})
        else:
            state.bad_evals += 1
        progress_file.evaluated(time.time() - t_eval)
        return 0 < t.early_stopping_patience <= state.bad_evals

    # 4. the loop
    model.train()
    age = process_age(point_started)
    startup = round(age if age is not None else time.time() - started, 3)
    log.info("start-up %.1f s to the first step (%.1f s imports/config/preflight, %.1f s data, %.1f s model); "
             "%s, %d threads", startup, before_fit or 0.0, job.data_ready - started, time.time() - job.data_ready,
             precision, torch.get_num_threads())
    progress_file = ProgressFile(run_dir, job.total_steps, job.epochs, state.step, state.attempt,
                                 t.eval_every_steps if t.eval_every_steps > 0 else job.steps_per_epoch,
                                 len(job.val_set), len(job.test_set))
    progress = _Progress(job.total_steps, state.step, t.log_every_steps, progress_file.eta, job.epochs)
    stop = state.step >= job.total_steps
    evaluated_at = state.step if resumed else -1
    while not stop and state.epoch < job.epochs:
        epoch = state.epoch  # the inner loop ends with the epoch: the next one gets its own order
        batches = epoch_batches(job.train_set.lengths, t.batch_size, cfg.seed, epoch, t.group_by_length)
        while state.epoch == epoch and state.batch < len(batches) and not stop:
            t_step = time.time()
            group = batches[state.batch:state.batch + t.grad_accum]
            loss, n_samples = train_step(job, group, device, precision, t.max_grad_norm, t.lr, state.step)
            state.step += 1
            state.batch += len(group)
            _count_time(state, progress.start, n_samples, time.time() - t_step)
            lr = job.scheduler.get_last_lr()[0]
            progress_file.update(state.step, state.epoch, progress.rate)
            progress.update(state, loss, lr, n_samples, time.time() - t_step)
            if state.step % t.log_every_steps == 0:
                atomic.append_jsonl(run_dir / rundir.METRICS_JSONL, {
                    "split": "train", "epoch": state.epoch, "step": state.step, "loss": loss, "lr": lr,
                    "samples_per_s": progress.rate, "time": time.time()})
                tracker.log({"train/loss": loss, "train/lr": lr}, state.step)
            end_of_epoch = state.batch >= len(batches)
            if end_of_epoch:
                state.epoch, state.batch = state.epoch + 1, 0
            stop = state.step >= job.total_steps
            eval_due = should_evaluate(state.step, end_of_epoch, stop, t.eval_every_steps)
            if eval_due and evaluated_at != state.step:
                evaluated_at = state.step
                if run_eval():
                    log.info("early stopping: no improvement in %d evaluations", state.bad_evals)
                    stop = True
            if should_checkpoint(state.step, eval_due, t.checkpoint_every_steps) or stop_requested():
                save_last()
            attempt.beat(state.step)
            if stop_requested():
                progress.close()
                stopper.hand_on(lambda status, why: _record_stop(run_dir, state, started, attempt, status, why))
    progress.close()
    if evaluated_at != state.step or state.best is None:
        run_eval()
        save_last()
    return _finish(cfg, job, run_dir, state, tracker, device, precision, started, startup)


def _count_time(state: TrainState, first_step: int, n_samples: int, seconds: float) -> None:
    """Seconds in steps (every step: samples/s over whole epochs) and, after warm-up, samples and seconds."""
    state.step_time += seconds
    if state.step > first_step + 2:
        state.train_samples += n_samples
        state.train_time += seconds


def _finish(cfg: DictConfig, job: Job, run_dir: Path, state: TrainState, tracker: Any, device: str,
            precision: str, started: float, startup: float) -> float:
    """5. test the best checkpoint; ``metrics.json``; return the best validation value of trainer.monitor."""
    from transformers import AutoModelForSequenceClassification

    from pipeline.results import class_metrics
    from pipeline.train import checkpoint, retention

    t = cfg.trainer
    if state.best_step == state.step:
        best = job.model  # the weights checkpoints/best was saved from: no reload
    else:
        best = AutoModelForSequenceClassification.from_pretrained(checkpoint.best_dir(run_dir)).to(device)
    test_metrics, preds, probs = evaluate(best, job.test_set, t.eval_batch_size, device, precision, job.pad_id)
    atomic.append_jsonl(run_dir / rundir.METRICS_JSONL, {"split": "test", "epoch": state.best_epoch,
                                                         "step": state.best_step, **test_metrics,
                                                         "time": time.time()})
    _write_predictions(run_dir, job.splits.test, preds, probs, job.splits.labels)
    elapsed = state.elapsed + time.time() - started
    result = {
        "status": "completed", "error": None, "monitor": t.monitor,
        "best_epoch": state.best_epoch, "best_step": state.best_step,
        "val": state.best_val, "test": test_metrics,
        "steps": state.step, "epochs": state.epoch, "attempts": state.attempt,
        "wall_time_s": round(elapsed, 3),
        "train_samples_per_s": round(state.train_samples / state.train_time, 3) if state.train_time else None,
        "train_time_s": round(state.step_time, 3), "startup_s": startup,
        "device": device, "precision": precision, "num_labels": len(job.splits.labels),
        "train_size": len(job.train_set), "val_size": len(job.val_set), "test_size": len(job.test_set),
        "test_classes": class_metrics.per_class(job.test_set.labels, preds, job.splits.labels),
    }
    _write_final(run_dir, result)
    retention.after_completion(run_dir, t.keep_last_checkpoint)
    tracker.summary({"val": state.best_val, "test": test_metrics, "wall_time_s": result["wall_time_s"]})
    tracker.finish()
    log.info("done in %.1f s: best val %s=%.4f at step %s; test accuracy=%.4f macro_f1=%.4f", elapsed,
             t.monitor, state.best, state.best_step, test_metrics["accuracy"], test_metrics["macro_f1"])
    print(f"val  {_fmt(state.best_val)}\ntest {_fmt(test_metrics)}\nrun dir: {run_dir}", flush=True)
    return float(state.best_val[t.monitor])


# ------------------------------------------------------------------------------------ evaluation


def evaluate(model: Any, data: Any, batch_size: int, device: str, precision: str, pad_id: int
             ) -> tuple[dict[str, float], Any, Any]:
    """Loss, accuracy and macro-F1 on one split; also (predictions, probabilities) in data order."""
    import numpy as np
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    from pipeline.data.batching import collate, eval_batches

    model.eval()
    preds = np.zeros(len(data), dtype=np.int64)
    probs = np.zeros((len(data), model.config.num_labels), dtype=np.float32)
    total_loss = 0.0
    with torch.inference_mode(), autocast(device, precision):
        for idx in eval_batches(data.lengths, batch_size):
            batch = {k: v.to(device) for k, v in collate(data, idx, pad_id).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            total_loss += torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum").item()
            p = logits.softmax(-1).cpu().numpy()
            probs[idx] = p
            preds[idx] = p.argmax(-1)
    model.train()
    metrics = {
        "loss": total_loss / max(len(data), 1),
        "accuracy": float(accuracy_score(data.labels, preds)),
        "macro_f1": float(f1_score(data.labels, preds, average="macro", zero_division=0)),
    }
    return metrics, preds, probs


#: config keys that may change between attempts of one run: they do not change the weights' trajectory
#: (evaluation runs under inference_mode and draws no random numbers)
RESUME_FREE = {"data.file", "data.format", "data.encoding", "data.url", "trainer.eval_batch_size",
               "trainer.log_every_steps", "trainer.device", "trainer.precision",
               "trainer.checkpoint_every_steps", "trainer.eval_every_steps", "trainer.keep_last_checkpoint",
               "data.drop_warn_fraction", "data.drop_error_fraction"}


def _training_settings(cfg: dict) -> dict[str, Any]:
    """The data, model, trainer and seed settings as ``{"trainer.lr": 5e-05, ...}``."""
    def flat(tree: Any, key: str) -> dict[str, Any]:
        if not isinstance(tree, dict):
            return {key: tree}
        return {k: v for name, sub in tree.items() for k, v in flat(sub, f"{key}.{name}").items()}

    return {k: v for part in ("data", "model", "trainer", "seed") for k, v in flat(cfg.get(part), part).items()}


def resume_changes(saved: dict | None, current: dict) -> list[str]:
    """``key: old -> new`` for each training-relevant setting that differs."""
    if not saved:
        return []
    old, new = _training_settings(saved), _training_settings(current)
    return [f"{k}: {old.get(k)} -> {new.get(k)}" for k in sorted(old.keys() | new.keys())
            if k not in RESUME_FREE and old.get(k) != new.get(k)]


def refuse_changed_resume(saved: dict | None, current: dict, run_dir: Path) -> None:
    """A checkpoint resumes only the job that wrote it: a changed lr, batch size, seed... would silently
    continue the old optimizer state and schedule under the new name. Raised before anything is written."""
    changes = resume_changes(saved, current)
    if changes:
        raise PipelineError(
            f"{run_dir} holds a checkpoint of a different config ({'; '.join(changes[:4])}"
            f"{'; ...' if len(changes) > 4 else ''}): resuming would mix the two; use a new run dir, or move "
            f"{run_dir / 'checkpoints'} away to start over (pipeline rerun does that when overrides change)")


def improved(metric: str, new: dict[str, float], best: dict[str, float] | None) -> bool:
    """Better on ``metric``; on a tie, lower validation loss. Ties are common with small validation sets
    (59 articles: accuracy moves in steps of 1.7 %), and the later, lower-loss model is the better pick."""
    if best is None:
        return True
    if new[metric] != best[metric]:
        return new[metric] < best[metric] if metric == "loss" else new[metric] > best[metric]
    return metric != "loss" and new.get("loss", math.inf) < best.get("loss", math.inf)


# ------------------------------------------------------------------------------------ helpers


def _fmt(m: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in m.items())


def _hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_final(run_dir: Path, result: dict[str, Any]) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        atomic.write_json(run_dir / rundir.METRICS_JSON, {**result, "end_time": now})
    except OSError as e:
        log.error("could not write %s: %s", run_dir / rundir.METRICS_JSON, e)


def _record_stop(run_dir: Path, state: TrainState, started: float, attempt: attempts.Attempt, status: str,
                 why: str | None) -> None:
    """A run stopped after saving ``checkpoints/last``: the attempt's record, and ``metrics.json`` saying
    what stopped it and how to resume (not when it is being requeued: the next attempt carries on)."""
    step = state.step
    attempt.end(status, step)
    if status == REQUEUED:
        return
    resume = (f"`pipeline rerun {run_dir.parent} --failed`" if (run_dir.parent / "sweep.json").is_file()
              else f"`python run.py hydra.run.dir={run_dir}`")
    kept = f"checkpoints/last at step {step} is kept: {resume} resumes from it"
    if status == GAVE_UP:
        error = (f"{why.rstrip('.')} at step {step} (attempt {state.attempt}); {kept}, or rerun it with a "
                 "larger hydra.launcher.timeout_min or hydra.launcher.max_num_timeout")
    else:
        error = f"killed by {why} at step {step} (attempt {state.attempt}); {kept}"
    _write_final(run_dir, {
        "status": status, "error": error, "signal": why if status == KILLED else "SIGUSR2",
        "steps": step, "epochs": state.epoch, "attempts": state.attempt,
        "checkpoint": "checkpoints/last", "checkpoint_step": step,
        "wall_time_s": round(state.elapsed + time.time() - started, 3),
    })
    log.error("%s", error)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after the checkpoint we resume from: they will be logged again."""
    import json

    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn last line from the kill
        if row.get("step", 0) <= step and row.get("split") != "test":
            keep.append(line)
    atomic.write_text(path, "".join(x + "\n" for x in keep))


def _write_predictions(run_dir: Path, test: Any, preds: Any, probs: Any, labels: list[str]) -> None:
    import pandas as pd

    frame = pd.DataFrame({"text": test.text, "label": test.label, "prediction": [labels[i] for i in preds],
                          "confidence": probs.max(-1).round(5)})
    atomic.write_text(run_dir / "test_predictions.csv", frame.to_csv(index=False))


def epoch_label(state: TrainState, epochs: int) -> str:
    """The epoch the latest step belongs to, 1-based, over the total: ``1/2`` for every step of the first
    epoch and for the evaluation at its end (``state.epoch`` counts finished epochs)."""
    current = state.epoch + (1 if state.batch else 0)
    return f"{max(current, 1)}/{epochs}" if epochs else str(max(current, 1))


class _Progress:
    """A rich progress bar on a terminal; plain log lines every ``log_every`` steps in job logs."""

    def __init__(self, total: int, start: int, log_every: int, eta: Any = None, epochs: int = 0) -> None:
        self.total, self.start, self.log_every, self.epochs = total, start, max(1, log_every), epochs
        self.eta = eta  # () -> seconds left (pipeline.train.progress: steps and evaluations since the (re)start)
        self.rate = 0.0
        self._bar = None
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
            self._task = self._bar.add_task("train", total=total, completed=start, info="")
            self._bar.start()

    def update(self, state: TrainState, loss: float, lr: float, samples: int, seconds: float) -> None:
        inst = samples / max(seconds, 1e-9)
        self.rate = inst if self.rate == 0 else 0.9 * self.rate + 0.1 * inst
        info = f"loss={loss:.4f} lr={lr:.2e} {self.rate:.1f} samples/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=state.step, info=info)
        elif state.step % self.log_every == 0 or state.step == self.total:
            eta = (self.eta() if self.eta else None) or 0
            log.info("step %d/%d epoch %s %s eta %.0fs", state.step, self.total, epoch_label(state, self.epochs),
                     info, eta)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
