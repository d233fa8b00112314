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
:mod:`pipeline.train.signals`; device and precision: :mod:`pipeline.train.device`; what each step and
evaluation reports (progress file, bar, ``metrics.jsonl``, tracker, heartbeat, GPU use):
:mod:`pipeline.train.steplog`.

``fit(cfg, on_eval=...)`` (a study's worker) hears every validation result; when the callback answers
True the run ends as ``pruned``: ``metrics.json`` with the best validation metrics so far and
``pruned_at_step``, no test evaluation, ``checkpoints/`` removed, ``metrics.jsonl`` kept; like a completed
run it is never trained again. A write refused for lack of space or quota ends the run ``failed`` with
``disk full at PATH (quota or free space)`` and the command that resumes it; ``checkpoints/last`` (written
to a temp folder, then renamed) is the previous one, whole.
"""

from __future__ import annotations

import errno
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import atomic, rundir
from pipeline import config as config_lib
from pipeline.errors import PipelineError, TrainingDiverged, first_line
from pipeline.train import attempts
from pipeline.train.device import autocast, cpu_threads, pick_device, pick_precision, process_age
from pipeline.train.signals import GAVE_UP, KILLED, REQUEUED, GracefulStop, stop_requested
from pipeline.train.steplog import StepLog, epoch_label, fmt

#: ``on_eval(step, val_metrics)``, called after every validation evaluation; True stops the run as pruned
OnEval = Callable[[int, dict[str, float]], bool]
#: why a run ends before its last step when early stopping says so (a pruned run: ``rundir.PRUNED``)
EARLY_STOP = "early_stopping"

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
    attention: str  # the attention implementation it trains with (run_info.json)
    pad_id: int
    pad_to: int | None
    total_steps: int
    epochs: int
    steps_per_epoch: int
    data_ready: float  # when the data was ready (start-up: data vs model time)


@dataclass
class Run:
    """One attempt at a run directory: its config, job and counters, and where it reports."""

    cfg: DictConfig
    run_dir: Path
    job: Job
    state: TrainState
    device: str
    precision: str
    attempt: attempts.Attempt
    tracker: Any
    t0: float  # when this attempt's fit began
    startup: float = 0.0  # seconds from the process's (or run's) start to the first step


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


def fit(cfg: DictConfig, run_dir: str | Path | None = None, *, started: float | None = None,
        on_eval: OnEval | None = None) -> float:
    """Train (or resume, or return the result of a run in ``run_dir`` that already completed or was pruned).

    ``started``: ``time.time()`` when this run began in a job that runs several (a packed job, a study
    worker): its start-up and its attempt's wall time count from there, not from the process start.
    ``on_eval(step, val_metrics)``: called after every validation evaluation (its ``metrics.jsonl`` line
    written and the best checkpoint kept); True stops the run as pruned. Returns the best validation value
    of ``trainer.monitor`` (what sweepers optimise)."""
    run_dir = Path(run_dir) if run_dir is not None else _hydra_run_dir()
    config_lib.check(cfg)
    done = _read_json(rundir.metrics_json(run_dir))
    if done.get("status") in (rundir.COMPLETED, rundir.PRUNED):
        log.info("run %s already %s; nothing to do", run_dir, done["status"])
        if done["status"] == rundir.PRUNED:  # a kill between its metrics.json and the removal
            from pipeline.train import retention

            retention.after_pruning(run_dir)
        return float(done["val"][cfg.trainer.monitor])
    age = process_age(started)
    attempt = attempts.Attempt(run_dir, started=time.time() - age if age is not None else None)
    try:
        with GracefulStop() as stopper:
            try:
                return _train(cfg, run_dir, stopper, attempt, started, on_eval)
            except OSError as e:
                if not atomic.is_disk_full(e) and e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
                raise PipelineError(_storage_line(e, run_dir)) from e
    except (Exception, KeyboardInterrupt) as e:
        message = first_line(e) or type(e).__name__
        if not isinstance(e, PipelineError):
            message = f"{type(e).__name__}: {message}"
        _write_final(run_dir, {"status": rundir.FAILED, "error": message}, best_effort=True)
        attempt.end(rundir.FAILED)
        raise


def _storage_line(e: OSError, run_dir: Path) -> str:
    """The run's error line when its file system refused a write: full (space or quota), read-only, denied."""
    from pipeline.train import checkpoint

    kept = (f"{rundir.relative_checkpoint()} is intact" if atomic.resolve_dir(checkpoint.last_dir(run_dir))
            else "files written before are intact")
    where = e.filename or run_dir
    if atomic.is_disk_full(e):
        return (f"disk full at {where} (quota or free space): {kept}; free space there or raise the quota (or "
                f"point PIPELINE_OUTPUT_ROOT elsewhere), then {_resume_command(run_dir)} resumes it")
    return (f"cannot write {where}: {e.strerror}; {kept} - fix the file system or its permissions (or point "
            f"PIPELINE_OUTPUT_ROOT elsewhere), then {_resume_command(run_dir)} resumes it")


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

    model, attention = model_lib.build(cfg.model, splits.labels, len(tokenizer), cfg.seed)
    model = model.to(device)
    # CPU: fewer passes over L x L, parallel dropout masks
    kernels = cpu_kernels.apply(model, t.cpu_kernels, device, attention)
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
               attention=cpu_kernels.CPU_ATTENTION if kernels.attention else attention,
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
        rundir.metrics_jsonl(run_dir).unlink(missing_ok=True)
        return TrainState(), False
    refuse_changed_resume(saved.get("config"), OmegaConf.to_container(cfg, resolve=True), run_dir)
    job.model.load_state_dict(saved["model"])
    job.optimizer.load_state_dict(saved["optimizer"])
    job.scheduler.load_state_dict(saved["scheduler"])
    job.scaler.load_state_dict(saved["scaler"])
    checkpoint.set_rng_state(saved["rng"])
    state = TrainState.from_dict(saved["counters"])
    state.attempt += 1
    _truncate_metrics(rundir.metrics_jsonl(run_dir), state.step)
    log.info("resumed from checkpoints/last at step %d (epoch %s, batch %d), attempt %d",
             state.step, epoch_label(state, job.epochs), state.batch, state.attempt)
    return state, True


def _train(cfg: DictConfig, run_dir: Path, stopper: GracefulStop, attempt: attempts.Attempt,
           started: float | None, on_eval: OnEval | None) -> float:
    """Steps 1-3 (data, model, resume), the loop (4), then the end (5): completed, or pruned."""
    from pipeline.data.batching import epoch_batches
    from pipeline.train import tracking
    from pipeline.train.gpu_use import GpuUse

    t0, before_fit = time.time(), process_age(started)  # before fit: imports, config, preflight
    t = cfg.trainer
    device, precision = _device_and_precision(t)
    job = _build(cfg, device, precision)
    state, resumed = _resume(cfg, job, run_dir)
    _write_run_info(cfg, run_dir, job, state, device, precision)
    run = Run(cfg, run_dir, job, state, device, precision, attempt, tracking.start(cfg, run_dir), t0)
    run.startup = _log_startup(run, started, before_fit)

    # 4. the loop: each epoch's batches in its own order; evaluate, checkpoint, stop when told to
    job.model.train()
    stop, ending = state.step >= job.total_steps, None
    evaluated_at = state.step if resumed else -1
    with StepLog(run_dir, t, job, state, attempt, run.tracker, GpuUse.start(device)) as steps:
        while not stop and state.epoch < job.epochs:
            epoch = state.epoch  # the inner loop ends with the epoch: the next one gets its own order
            batches = epoch_batches(job.train_set.lengths, t.batch_size, cfg.seed, epoch, t.group_by_length)
            while state.epoch == epoch and state.batch < len(batches) and not stop:
                t_step = time.time()
                group = batches[state.batch:state.batch + t.grad_accum]
                loss, n_samples = train_step(job, group, device, precision, t.max_grad_norm, t.lr, state.step)
                state.step += 1
                state.batch += len(group)
                steps.step(state, loss, job.scheduler.get_last_lr()[0], n_samples, time.time() - t_step)
                end_of_epoch = state.batch >= len(batches)
                if end_of_epoch:
                    state.epoch, state.batch = state.epoch + 1, 0
                stop = state.step >= job.total_steps
                eval_due = should_evaluate(state.step, end_of_epoch, stop, t.eval_every_steps)
                if eval_due and evaluated_at != state.step:
                    evaluated_at = state.step
                    ending = _validate(run, steps, on_eval)
                    stop = stop or ending is not None
                if ending == rundir.PRUNED:
                    break  # a pruned run keeps no checkpoint
                if should_checkpoint(state.step, eval_due, t.checkpoint_every_steps) or stop_requested():
                    _save_last(run, steps)
                if stop_requested():
                    steps.close()
                    stopper.hand_on(lambda status, why: _record_stop(run, status, why))
        if evaluated_at != state.step or state.best is None:  # no evaluation at the last step (a resume there)
            ending = _validate(run, steps, on_eval)
            if ending != rundir.PRUNED:
                _save_last(run, steps)
        gpu = steps.close()
    return _finish_pruned(run, gpu) if ending == rundir.PRUNED else _finish(run, gpu)


def _device_and_precision(t: Any) -> tuple[str, str]:
    """Where and how this job computes, and its CPU threads (the cores the scheduler gave it)."""
    import torch

    from pipeline.train.doctor import require_gpu_if_requested

    require_gpu_if_requested(t.device)  # a job given GPUs stops here, in one line, rather than train on CPU
    device = pick_device(t.device)
    threads = cpu_threads()
    if threads and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return device, pick_precision(t.precision, device)


def _write_run_info(cfg: DictConfig, run_dir: Path, job: Job, state: TrainState, device: str,
                    precision: str) -> None:
    import torch

    from pipeline.data import data_report
    from pipeline.train import run_info

    info = run_info.collect(job.splits.data_sha256, device, torch.cuda.device_count() if device != "cpu" else 0)
    info.update({"precision": precision, "attempt": state.attempt, "resumed_from_step": state.step,
                 "threads": torch.get_num_threads() if device == "cpu" else None, "attention": job.attention,
                 "dropout": "fast" if job.kernels.dropout else "torch", "data_report": data_report.for_config(cfg)})
    atomic.write_json(rundir.run_info_json(run_dir), info)


def _log_startup(run: Run, started: float | None, before_fit: float | None) -> float:
    """Seconds from the process's (or this run's) start to the first step, logged with where they went."""
    import torch

    age = process_age(started)
    startup = round(age if age is not None else time.time() - run.t0, 3)
    log.info("start-up %.1f s to the first step (%.1f s imports/config/preflight, %.1f s data, %.1f s model); "
             "%s, %d threads", startup, before_fit or 0.0, run.job.data_ready - run.t0,
             time.time() - run.job.data_ready, run.precision, torch.get_num_threads())
    return startup


def _validate(run: Run, steps: StepLog, on_eval: OnEval | None) -> str | None:
    """Evaluate on the validation split, report it, keep the best checkpoint; then ask ``on_eval``. Why the
    run ends here (``rundir.PRUNED``, ``EARLY_STOP``), or None. A prune asked for at the last step is not
    taken: the run has done all its steps, so it completes (with its test score and best checkpoint)."""
    from pipeline.train import checkpoint

    t, state = run.cfg.trainer, run.state
    with steps.evaluating():
        metrics, _, _ = evaluate(run.job.model, run.job.val_set, t.eval_batch_size, run.device, run.precision,
                                 run.job.pad_id)
        steps.evaluated(state, metrics)
        if improved(t.monitor, metrics, state.best_val):
            state.best, state.best_step, state.best_epoch = metrics[t.monitor], state.step, state.epoch
            state.bad_evals, state.best_val = 0, metrics
            checkpoint.save_best(run.run_dir, run.job.model, run.job.tokenizer, {
                "step": state.step, "epoch": state.epoch, "val": metrics, "max_length": t.max_length})
        else:
            state.bad_evals += 1
    if on_eval is not None and on_eval(state.step, dict(metrics)) and state.step < run.job.total_steps:
        log.info("pruned at step %d (best %s=%.4f at step %s)", state.step, t.monitor, state.best,
                 state.best_step)
        return rundir.PRUNED
    if 0 < t.early_stopping_patience <= state.bad_evals:
        log.info("early stopping: no improvement in %d evaluations", state.bad_evals)
        return EARLY_STOP
    return None


def _save_last(run: Run, steps: StepLog) -> None:
    """``checkpoints/last``: everything an exact resume needs (and the attempt's time so far)."""
    from pipeline.train import checkpoint

    job, state = run.job, run.state
    run.attempt.beat(state.step, force=True)
    with steps.not_training():
        checkpoint.save_last(run.run_dir, {
            "model": job.model.state_dict(), "optimizer": job.optimizer.state_dict(),
            "scheduler": job.scheduler.state_dict(), "scaler": job.scaler.state_dict(),
            "rng": checkpoint.rng_state(),
            "counters": {**asdict(state), "elapsed": state.elapsed + time.time() - run.t0},
            "config": OmegaConf.to_container(run.cfg, resolve=True), "labels": job.splits.labels,
        })


def _outcome(run: Run, status: str, gpu: dict[str, Any] | None) -> dict[str, Any]:
    """What ``metrics.json`` says of a run that ended well (completed or pruned): its best validation
    metrics, steps, times, sizes and GPU use."""
    state, job, t = run.state, run.job, run.cfg.trainer
    out = {
        "status": status, "error": None, "monitor": t.monitor,
        "best_epoch": state.best_epoch, "best_step": state.best_step, "val": state.best_val,
        "steps": state.step, "epochs": state.epoch, "attempts": state.attempt,
        "wall_time_s": round(state.elapsed + time.time() - run.t0, 3),
        "train_samples_per_s": round(state.train_samples / state.train_time, 3) if state.train_time else None,
        "train_time_s": round(state.step_time, 3), "startup_s": run.startup,
        "device": run.device, "precision": run.precision, "num_labels": len(job.splits.labels),
        "train_size": len(job.train_set), "val_size": len(job.val_set), "test_size": len(job.test_set),
    }
    if gpu is not None:
        out["gpu"] = gpu
    return out


def _finish(run: Run, gpu: dict[str, Any] | None) -> float:
    """5. test the best checkpoint; ``metrics.json``; return the best validation value of trainer.monitor."""
    from transformers import AutoModelForSequenceClassification

    from pipeline.results import class_metrics
    from pipeline.train import checkpoint, retention

    job, state, t = run.job, run.state, run.cfg.trainer
    if state.best_step == state.step:
        best = job.model  # the weights checkpoints/best was saved from: no reload
    else:
        best = AutoModelForSequenceClassification.from_pretrained(checkpoint.best_dir(run.run_dir)).to(run.device)
    test_metrics, preds, probs = evaluate(best, job.test_set, t.eval_batch_size, run.device, run.precision,
                                          job.pad_id)
    atomic.append_jsonl(rundir.metrics_jsonl(run.run_dir), {"split": "test", "epoch": state.best_epoch,
                                                            "step": state.best_step, **test_metrics,
                                                            "time": time.time()})
    _write_predictions(run.run_dir, job.splits.test, preds, probs, job.splits.labels)
    result = {**_outcome(run, rundir.COMPLETED, gpu), "test": test_metrics,
              "test_classes": class_metrics.per_class(job.test_set.labels, preds, job.splits.labels)}
    _write_final(run.run_dir, result)
    retention.after_completion(run.run_dir, t.keep_last_checkpoint)
    run.attempt.end(rundir.COMPLETED)
    run.tracker.summary({"val": state.best_val, "test": test_metrics, "wall_time_s": result["wall_time_s"]})
    run.tracker.finish()
    log.info("done in %.1f s: best val %s=%.4f at step %s; test accuracy=%.4f macro_f1=%.4f",
             result["wall_time_s"], t.monitor, state.best, state.best_step, test_metrics["accuracy"],
             test_metrics["macro_f1"])
    print(f"val  {fmt(state.best_val)}\ntest {fmt(test_metrics)}\nrun dir: {run.run_dir}", flush=True)
    return float(state.best_val[t.monitor])


def _finish_pruned(run: Run, gpu: dict[str, Any] | None) -> float:
    """A run its ``on_eval`` pruned: ``metrics.json`` (the best validation metrics so far, no test), and no
    weights kept (``metrics.jsonl`` stays: the curve up to the pruning)."""
    from pipeline.train import retention

    state, t = run.state, run.cfg.trainer
    result = {**_outcome(run, rundir.PRUNED, gpu), "pruned_at_step": state.step}
    _write_final(run.run_dir, result)
    retention.after_pruning(run.run_dir)
    run.attempt.end(rundir.PRUNED, state.step)
    run.tracker.summary({"val": state.best_val, "pruned_at_step": state.step, "wall_time_s": result["wall_time_s"]})
    run.tracker.finish()
    print(f"pruned at step {state.step} of {run.job.total_steps}\nval  {fmt(state.best_val)}\n"
          f"run dir: {run.run_dir}", flush=True)
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
            f"{run_dir / rundir.CHECKPOINTS_DIR} away to start over (pipeline rerun does that when overrides "
            "change)")


def improved(metric: str, new: dict[str, float], best: dict[str, float] | None) -> bool:
    """Better on ``metric``; on a tie, lower validation loss. Ties are common with small validation sets
    (59 articles: accuracy moves in steps of 1.7 %), and the later, lower-loss model is the better pick."""
    if best is None:
        return True
    if new[metric] != best[metric]:
        return new[metric] < best[metric] if metric == "loss" else new[metric] > best[metric]
    return metric != "loss" and new.get("loss", math.inf) < best.get("loss", math.inf)


# ------------------------------------------------------------------------------------ helpers


def _hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_final(run_dir: Path, result: dict[str, Any], best_effort: bool = False) -> None:
    """``metrics.json``. A completed or pruned run's must be written (it raises, and its checkpoints stay);
    a failed or stopped run's is ``best_effort``: an error in writing it is logged, not raised over the
    error that ended the run."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        atomic.write_json(rundir.metrics_json(run_dir), {**result, "end_time": now})
    except OSError as e:
        if not best_effort:
            raise
        log.error("could not write %s: %s", rundir.metrics_json(run_dir), e)


def _resume_command(run_dir: Path) -> str:
    """The command that resumes this run: ``pipeline rerun SWEEP --failed`` in a sweep, else run.py's."""
    if rundir.manifest_path(run_dir.parent).is_file():
        return f"`pipeline rerun {run_dir.parent} --failed`"
    return f"`python run.py hydra.run.dir={run_dir}`"


def _record_stop(run: Run, status: str, why: str | None) -> None:
    """A run stopped after saving ``checkpoints/last``: the attempt's record, and ``metrics.json`` saying
    what stopped it and how to resume (not when it is being requeued: the next attempt carries on)."""
    state = run.state
    step = state.step
    run.attempt.end(status, step)
    if status == REQUEUED:
        return
    last = rundir.relative_checkpoint()
    kept = f"{last} at step {step} is kept: {_resume_command(run.run_dir)} resumes from it"
    if status == GAVE_UP:
        error = (f"{(why or '').rstrip('.')} at step {step} (attempt {state.attempt}); {kept}, or rerun it with a "
                 "larger hydra.launcher.timeout_min or hydra.launcher.max_num_timeout")
    else:
        error = f"killed by {why} at step {step} (attempt {state.attempt}); {kept}"
    _write_final(run.run_dir, {
        "status": status, "error": error, "signal": why if status == KILLED else "SIGUSR2",
        "steps": step, "epochs": state.epoch, "attempts": state.attempt,
        "checkpoint": last, "checkpoint_step": step,
        "wall_time_s": round(state.elapsed + time.time() - run.t0, 3),
    }, best_effort=True)
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
    atomic.write_text(run_dir / rundir.TEST_PREDICTIONS_CSV, frame.to_csv(index=False))
