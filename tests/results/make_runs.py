"""Synthetic run and sweep directories in the layout the trainer and launcher write (no training).

Used by the tests in this folder and by ``bench/aggregate.py``. The layout follows the run-directory
contract in DESIGN.md: ``.hydra/{config,overrides,hydra}.yaml``, ``metrics.jsonl`` (train and val lines,
optionally a torn last line), ``metrics.json`` (completed / pruned / failed / corrupt; with ``gpu`` as a
run on a GPU writes it), ``run_info.json``, and ``progress.json`` for a running job (with its ``gpu``).
No GPU is needed to make runs that show GPU use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline import atomic

HYDRA_YAML = """hydra:
  run:
    dir: outputs/runs/x
  sweep:
    dir: outputs/multirun/x
    subdir: ${{hydra.job.num}}
  launcher:
    _target_: {target}
{launcher}  sweeper:
    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper
    max_batch_size: null
  job:
    name: run
    num: {num}
  mode: MULTIRUN
"""


def val_value(lr_index: int, seed: int, epoch: int, epochs: int) -> float:
    """A deterministic, increasing learning curve whose level depends on the configuration."""
    final = 0.70 + 0.05 * lr_index + 0.01 * seed
    return round(final - 0.1 * (epochs - epoch) / epochs, 6)


def write_run(
    run_dir: Path,
    overrides: list[str],
    *,
    state: str = "completed",
    val: dict[str, float] | None = None,
    test: dict[str, float] | None = None,
    curve: list[float] | None = None,
    steps_per_epoch: int = 10,
    wall_time_s: float = 3600.0,
    hydra_gpus: int | None = None,
    info_gpus: int = 0,
    job_id: str | None = None,
    scheduler: str = "local",
    error: str = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\nTraceback line 2",
    torn_line: bool = False,
    train_lines: int = 2,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    gpu: dict[str, Any] | None = None,
    progress: dict[str, Any] | None = None,
) -> Path:
    """One run directory. ``state``: completed | pruned | failed | running | corrupt | started (only .hydra).

    ``gpu``: ``metrics.json``'s "gpu" (see :func:`gpu_use`); ``progress``: a running job's ``progress.json``
    (see :func:`progress_json`). ``pruned``: stopped at the last point of ``curve`` (its metrics are the best
    validation so far; no test metrics).
    """
    run_dir = Path(run_dir)
    hydra = run_dir / ".hydra"
    atomic.write_text(hydra / "overrides.yaml", "".join(f"- {o}\n" for o in overrides) or "[]\n")
    cfg_text = config_yaml(seed, overrides) if config is None else json.dumps(config)
    atomic.write_text(hydra / "config.yaml", cfg_text)
    launcher = f"    gpus_per_node: {hydra_gpus}\n    timeout_min: 60\n" if hydra_gpus is not None else ""
    target = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" if hydra_gpus is not None \
        else "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    num = run_dir.name if run_dir.name.isdigit() else 0
    atomic.write_text(hydra / "hydra.yaml", HYDRA_YAML.format(target=target, launcher=launcher, num=num))
    if state == "started":
        return run_dir
    atomic.write_json(run_dir / "run_info.json", {
        "git_commit": "0" * 40, "git_dirty": False, "versions": {"torch": "2.x"}, "data_sha256": "ab" * 32,
        "host": "node1", "scheduler": scheduler, "job_id": job_id, "start_time": "2024-01-01T10:00:00+00:00",
        "gpus": info_gpus,
    })
    curve = curve if curve is not None else [0.6, 0.7, 0.8]
    lines = []
    for e, value in enumerate(curve, start=1):
        for k in range(train_lines):
            step = (e - 1) * steps_per_epoch + (k + 1) * steps_per_epoch // (train_lines + 1)
            lines.append({"split": "train", "epoch": e - 1, "step": step, "loss": 1.0 / e, "lr": 1e-4,
                          "samples_per_s": 50.0})
        lines.append({"split": "val", "epoch": e, "step": e * steps_per_epoch, "loss": 1 - value,
                      "accuracy": value + 0.01, "macro_f1": value, "time": 1_700_000_000 + e})
    text = "".join(json.dumps(x) + "\n" for x in lines)
    if torn_line:
        text += '{"split": "val", "epoch": 9, "step": 9'
    atomic.write_text(run_dir / "metrics.jsonl", text)
    if state == "running":
        if progress is not None:
            atomic.write_json(run_dir / "progress.json", progress)
        return run_dir
    if state == "corrupt":
        atomic.write_text(run_dir / "metrics.json", '{"status": "completed", "val": {')
        return run_dir
    if state == "failed":
        atomic.write_json(run_dir / "metrics.json", {"status": "failed", "error": error,
                                                     "end_time": "2024-01-01T11:00:00+00:00"})
        return run_dir
    best = max(range(len(curve)), key=curve.__getitem__) if curve else 0
    v = curve[best] if curve else 0.5
    val = val or {"loss": round(1 - v, 6), "accuracy": round(v + 0.01, 6), "macro_f1": v}
    test = test or {"loss": round(1.02 - v, 6), "accuracy": round(v - 0.01, 6), "macro_f1": round(v - 0.02, 6)}
    final = {
        "status": "completed", "error": None, "best_epoch": best + 1, "best_step": (best + 1) * steps_per_epoch,
        "monitor": "macro_f1", "val": val, "test": test, "wall_time_s": wall_time_s,
        "train_samples_per_s": 45.6, "steps": len(curve) * steps_per_epoch, "epochs": len(curve),
        "device": "cpu" if gpu is None else "cuda", "precision": "fp32", "start_time": "2024-01-01T10:00:00+00:00",
        "end_time": "2024-01-01T11:00:00+00:00",
    }
    if state == "pruned":  # what fit() writes when the study's pruner stops a run: no test evaluation
        del final["test"]
        final.update(status="pruned", pruned_at_step=len(curve) * steps_per_epoch)
    if gpu is not None:
        final["gpu"] = gpu
    atomic.write_json(run_dir / "metrics.json", final)
    return run_dir


def gpu_use(util_mean: float = 83.0, peak_mem_gb: float = 12.1, mem_total_gb: float = 40.0,
            warning: str | None = None) -> dict[str, Any]:
    """``metrics.json``'s "gpu" as a run on one GPU writes it (BRIEF interface 2)."""
    return {"name": "NVIDIA A100-SXM4-40GB", "count": 1, "peak_mem_gb": peak_mem_gb, "mem_total_gb": mem_total_gb,
            "util_mean": util_mean, "util_samples": 120, "low_util_frac": 0.8 if warning else 0.05,
            "warning": warning}


def progress_json(step: int = 120, total: int = 400, util: float | None = 91.5, mem_gb: float = 3.2) -> dict[str, Any]:
    """A running job's ``progress.json``; ``util`` None: on CPU (no "gpu" entry)."""
    import time

    data: dict[str, Any] = {"step": step, "total_steps": total, "epoch": 1, "epochs": 3, "attempt": 1,
                            "start_step": 0, "start_time": time.time() - 60, "time": time.time(),
                            "seconds_per_step": 0.5, "seconds_per_eval": 2.0, "samples_per_s": 31.6, "eta_s": 140.0}
    if util is not None:
        data["gpu"] = {"util": util, "mem_gb": mem_gb, "peak_mem_gb": mem_gb + 1.0, "mem_total_gb": 79.2}
    return data


def config_yaml(seed: int, overrides: list[str]) -> str:
    params = dict(o.split("=", 1) for o in overrides if "=" in o)
    return (
        f"seed: {params.get('seed', seed)}\n"
        "data:\n  name: bbc_news\n  file: bbc_news.csv.gz\n  text_columns:\n  - title\n  - text\n"
        "  label_column: label\n"
        "model:\n  name: tiny\n"
        f"trainer:\n  lr: {params.get('trainer.lr', '5.0e-05')}\n  epochs: 3\n  max_length: 128\n"
    )


def grid_sweep(
    root: Path,
    lrs: tuple[str, ...] = ("1e-4", "2e-4"),
    seeds: tuple[int, ...] = (0, 1),
    *,
    scheduler: str | None = None,
    gpus: int | None = None,
    epochs: int = 3,
    extra: tuple[str, ...] = (),
    **kw: Any,
) -> dict[int, dict[str, Any]]:
    """A completed lr × seed sweep; returns ``{job_num: {"lr", "seed", "val_macro_f1", ...}}``.

    ``scheduler``: write a ``sweep.json`` for it (``lsf`` job ids ``1234[i+1]``, ``slurm`` ``456_i``).
    ``gpus``: GPUs requested per job (sweep.json ``gpus_per_job`` and hydra.yaml's launcher).
    """
    root = Path(root)
    expected = {}
    jobs = []
    num = 0
    for li, lr in enumerate(lrs):
        for seed in seeds:
            overrides = [f"trainer.lr={lr}", f"seed={seed}", *extra]
            curve = [val_value(li, seed, e, epochs) for e in range(1, epochs + 1)]
            job_id = {"lsf": f"1234[{num + 1}]", "slurm": f"456_{num}", "local": str(90000 + num)}.get(
                scheduler or "", None)
            write_run(root / str(num), overrides, curve=curve, hydra_gpus=gpus, job_id=job_id,
                      scheduler=scheduler or "local", seed=seed, **kw)
            expected[num] = {"lr": lr, "seed": seed, "val_macro_f1": curve[-1],
                             "test_macro_f1": round(curve[-1] - 0.02, 6),
                             "val_accuracy": round(curve[-1] + 0.01, 6), "overrides": overrides}
            jobs.append({"job_num": num, "job_id": job_id, "run_dir": str((root / str(num)).resolve()),
                         "stdout": str(root / ".submitit" / f"{num}.out"),
                         "stderr": str(root / ".submitit" / f"{num}.err"), "overrides": overrides})
            num += 1
    atomic.write_text(root / "multirun.yaml", "hydra:\n  mode: MULTIRUN\n")
    if scheduler:
        write_sweep_json(root, scheduler, jobs, gpus=gpus or 0)
    return expected


def write_sweep_json(root: Path, scheduler: str, jobs: list[dict[str, Any]], gpus: int = 0,
                     aggregate_job_id: str | None = None, array_id: str | None = None) -> dict[str, Any]:
    arrays = []
    if scheduler in ("lsf", "slurm"):
        array_id = array_id or ("1234" if scheduler == "lsf" else "456")
        arrays = [{"job_id": array_id, "size": len(jobs), "first_job_num": 0}]
    meta = {"scheduler": scheduler, "created": "2024-01-01T09:59:00", "submitit_folder": str(root / ".submitit"),
            "arrays": arrays, "jobs": jobs, "aggregate_job_id": aggregate_job_id, "gpus_per_job": gpus}
    atomic.write_json(Path(root) / "sweep.json", meta)
    return meta


def lsf_job(root: Path, num: int, overrides: list[str]) -> dict[str, Any]:
    """A sweep.json ``jobs`` entry for an LSF array element ``1234[num+1]``."""
    return {"job_num": num, "job_id": f"1234[{num + 1}]", "run_dir": str((Path(root) / str(num)).resolve()),
            "stdout": str(Path(root) / "logs" / f"1234_{num + 1}.out"),
            "stderr": str(Path(root) / "logs" / f"1234_{num + 1}.err"), "overrides": overrides}
