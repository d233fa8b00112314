"""A grid sweep against a study (TPE + ASHA) on the same space and the same compute, side by side in one run.

    python -m bench.study [--seeds 0 1 2] [--space lr|points] [--out outputs/bench/study] [--smoke]

The grid is the one ``docs/results.md`` reports: ``trainer.lr=5e-5,1e-4`` x ``trainer.epochs=1,2,3`` on fake
news with the pretrained MiniLM (``data=fake_news trainer.max_length=128``, batch 16, seed 0): 6 runs, run in
the order a grid sweep lists them. Each study (one per ``--seeds`` value) runs its trials one after another in
this process (:func:`pipeline.search.worker.run_worker`, one worker) and stops asking once its training steps
reach the grid's total: the same compute budget. TPE models the results after 3 random trials
(``startup_trials=3``; Optuna's default 10 would make a study this short all random); ASHA judges a trial at its
evaluations (one per epoch). The study's space (``--space``):

- ``lr`` (default): what a user would hand a study instead of that grid, ``trainer.lr=tag(log, interval(2e-5,
  2.5e-4))`` (the grid's range widened 2.5x each way) with every trial at the grid's largest budget,
  ``trainer.epochs=3``: the pruner, not the grid's epoch values, decides how many steps a trial gets;
- ``points``: the grid's own six points as ``choice``s, so that reaching the grid's best sooner can only come
  from the order and the pruning (TPE then often samples a point it has already run: Optuna does not skip
  repeats in a categorical space).

Both monitor the validation accuracy (``trainer.monitor=accuracy``), so "one validation article" is exactly
1 / (validation size). Printed per arm: the best validation accuracy of a completed run (a pruned trial keeps
no weights and has no test score), that run's test accuracy, and the compute (training steps, and CPU
seconds of this process) at which the arm first completed a run within one validation article of the grid's
final best; plotted: best-so-far against compute, both ways. Before the grid, one untimed warm-up run loads
the tokenizer, the weights and the token cache, so that no arm pays the cold start. JSON of every run and the
PNG go to ``--out``.

``--smoke`` proves the script works in a minute on 2 cores: the tiny model, 200 rows, a 2 x 2 grid, 2 trials
per study; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline import rundir

ROOT = Path(__file__).resolve().parent.parent

REAL = ["data=fake_news", "model=minilm", "trainer.max_length=128", "trainer.batch_size=16", "seed=0"]
SMOKE = ["data=fake_news", "model=tiny", "data.max_rows=200", "trainer.max_length=64", "trainer.batch_size=8",
         "seed=0"]
COMMON = ["trainer.monitor=accuracy", "trainer.log_every_steps=50"]
LRS = (5e-5, 1e-4)


@dataclass
class Run:
    """One training run of an arm, as its run directory tells it."""

    arm: str
    name: str  # grid: the run's index; study: its trial number
    params: dict
    status: str  # completed | pruned | failed
    steps: int
    cpu_s: float
    val: float | None  # best validation accuracy
    test: float | None  # test accuracy of its best checkpoint (completed runs)
    val_size: int | None


def _read(run_dir: Path) -> dict:
    try:
        return json.loads(rundir.metrics_json(run_dir).read_text())
    except (OSError, ValueError):
        return {}


def _record(arm: str, name: str, params: dict, run_dir: Path, cpu_s: float) -> Run:
    done = _read(run_dir)
    return Run(arm, name, params, done.get("status", rundir.FAILED), int(done.get("steps") or 0), round(cpu_s, 2),
               (done.get("val") or {}).get("accuracy"), (done.get("test") or {}).get("accuracy"),
               done.get("val_size"))


def run_grid(out: Path, base: list[str], epochs: tuple[int, ...]) -> list[Run]:
    from pipeline.data.prepare import compose
    from pipeline.train.train import fit

    runs = []
    for i, (lr, ep) in enumerate((lr, ep) for lr in LRS for ep in epochs):
        params = {"trainer.lr": lr, "trainer.epochs": ep}
        cfg = compose([*base, f"trainer.lr={lr!r}", f"trainer.epochs={ep}"])
        tic = time.process_time()
        fit(cfg, out / "grid" / str(i))
        runs.append(_record("grid", str(i), params, out / "grid" / str(i), time.process_time() - tic))
        _progress(runs[-1])
    return runs


def study_space(kind: str, epochs: tuple[int, ...]) -> list[str]:
    """The study's search space: ``points``, the grid's own points as choices; ``lr``, the learning rate on
    a log scale over the grid's range widened 2.5x each way, every trial at the grid's largest epoch budget
    (ASHA's pruning then decides how much of it a trial gets)."""
    if kind == "points":
        return [f"trainer.lr=choice({LRS[0]!r}, {LRS[1]!r})", f"trainer.epochs=choice({', '.join(map(str, epochs))})"]
    return [f"trainer.lr=tag(log, interval({LRS[0] / 2.5!r}, {LRS[1] * 2.5!r}))", f"trainer.epochs={max(epochs)}"]


def run_study(out: Path, base: list[str], epochs: tuple[int, ...], seed: int, budget: int,
              trials: int, kind: str = "lr") -> list[Run]:
    """One study: TPE + ASHA over ``study_space(kind)``, trials until its steps reach ``budget`` (or ``trials``)."""
    from pipeline.search.in_process import fit_run_point
    from pipeline.search.space import parse_space
    from pipeline.search.study import StudySettings, SweepStudy
    from pipeline.search.worker import run_worker

    sweep = out / f"study_{kind}_seed{seed}"
    space = parse_space(study_space(kind, epochs))
    settings = StudySettings(trials=trials, seed=seed, sampler="tpe", pruner="asha", monitor="accuracy",
                             startup_trials=3)
    SweepStudy.create(sweep, settings, space)
    fit_point = fit_run_point(sweep, base)
    runs: list[Run] = []

    def timed(overrides: list[str], number: int, on_eval) -> float:
        tic = time.process_time()
        try:
            return fit_point(overrides, number, on_eval)
        finally:
            params = dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in ("trainer.lr", "trainer.epochs"))
            runs.append(_record(f"study seed {seed}", str(number), params, sweep / str(number),
                                time.process_time() - tic))
            _progress(runs[-1])

    while sum(r.steps for r in runs) < budget and run_worker(sweep, timed, slot=0, max_trials=1):
        pass
    return runs


def _progress(run: Run) -> None:
    print(f"  {run.arm} run {run.name}: {run.status}, {run.steps} steps, {run.cpu_s:.0f} CPU-s, "
          f"val acc {run.val}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ figures


def best_so_far(runs: list[Run]) -> list[tuple[int, float, float]]:
    """(cumulative steps, cumulative CPU-s, best validation accuracy of a completed run so far) per run."""
    out, steps, cpu, best = [], 0, 0.0, None
    for r in runs:
        steps, cpu = steps + r.steps, cpu + r.cpu_s
        if r.status == rundir.COMPLETED and r.val is not None and (best is None or r.val > best):
            best = r.val
        out.append((steps, cpu, float("nan") if best is None else best))
    return out


def reached(runs: list[Run], target: float) -> tuple[int, float] | None:
    """The compute (steps, CPU-s) at the end of the first completed run with validation accuracy >= target."""
    for (steps, cpu, _), r in zip(best_so_far(runs), runs):
        if r.status == rundir.COMPLETED and r.val is not None and r.val >= target - 1e-12:
            return steps, cpu
    return None


def summary_rows(arms: dict[str, list[Run]], target: float) -> list[str]:
    grid_steps = sum(r.steps for r in arms["grid"])
    lines = [f"{'arm':<13}{'best val':>9}{'test':>7}{'reached at (steps, CPU-s)':>29}{'of grid':>9}{'spent':>8}",
             "-" * 75]
    for arm, runs in arms.items():
        done = [r for r in runs if r.status == rundir.COMPLETED and r.val is not None]
        best = max(done, key=lambda r: r.val) if done else None
        hit = reached(runs, target)
        at = f"{hit[0]} steps, {hit[1]:.0f} s" if hit else "not reached"
        share = f"{hit[0] / grid_steps:.2f}" if hit and grid_steps else "-"
        lines.append(f"{arm:<13}{_fmt(best.val if best else None):>9}{_fmt(best.test if best else None):>7}"
                     f"{at:>29}{share:>9}{sum(r.steps for r in runs):>8}")
    return lines


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def plot(arms: dict[str, list[Run]], target: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, index, xlabel in ((axes[0], 0, "training steps spent"), (axes[1], 1, "CPU seconds spent")):
        for arm, runs in arms.items():
            pts = best_so_far(runs)
            ax.step([0, *(p[index] for p in pts)], [float("nan"), *(p[2] for p in pts)], where="post",
                    marker="o", lw=2 if arm == "grid" else 1.4, label=arm, color="black" if arm == "grid" else None)
        ax.axhline(target, ls="--", color="grey", lw=1, label="grid best - 1 val article")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ main


def warm_up(out: Path, base: list[str]) -> None:
    """One untimed run of a few steps: tokenizer, pretrained weights and token cache are loaded once here."""
    from pipeline.data.prepare import compose
    from pipeline.train.train import fit

    fit(compose([*base, "trainer.max_steps=2", "trainer.epochs=1"]), out / "warmup")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="study seeds (one study each)")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "study")
    p.add_argument("--trials", type=int, default=30, help="most trials per study (the budget stops it first)")
    p.add_argument("--space", choices=("lr", "points"), default="lr",
                   help="lr: log-scale lr at the largest epoch budget (default); points: the grid's own points")
    p.add_argument("--smoke", action="store_true", help="tiny model, 200 rows, 2 x 2 grid, 2 trials per study")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    os.environ.setdefault("PIPELINE_OUTPUT_ROOT", str(out / "outputs"))
    base = [*(SMOKE if args.smoke else REAL), *COMMON]
    epochs = (1, 2) if args.smoke else (1, 2, 3)
    trials = 2 if args.smoke else args.trials

    warm_up(out, base)
    arms = {"grid": run_grid(out, base, epochs)}
    budget = sum(r.steps for r in arms["grid"])
    for seed in args.seeds:
        arms[f"study seed {seed}"] = run_study(out, base, epochs, seed, budget, trials, args.space)
    val_size = next((r.val_size for r in arms["grid"] if r.val_size), None) or 1
    grid_best = max((r.val for r in arms["grid"] if r.status == rundir.COMPLETED and r.val is not None), default=0.0)
    target = grid_best - 1 / val_size
    print(f"grid best validation accuracy {grid_best:.3f}; target {target:.3f} (one of {val_size} articles "
          f"less); budget {budget} steps per arm")
    print("\n".join(summary_rows(arms, target)))
    what = "same points" if args.space == "points" else f"study: log lr at {max(epochs)} epochs"
    title = (f"{'SMOKE (tiny model): ' if args.smoke else ''}lr x epochs on fake news: grid vs TPE + ASHA study "
             f"({what}, same steps)")
    plot(arms, target, out / "study_vs_grid.png", title)
    (out / "study_vs_grid.json").write_text(json.dumps(
        {"base": base, "space": study_space(args.space, epochs), "budget_steps": budget, "grid_best": grid_best,
         "val_size": val_size, "target": target,
         "runs": {arm: [asdict(r) for r in runs] for arm, runs in arms.items()}}, indent=2))
    print(f"plot: {out / 'study_vs_grid.png'}\nruns: {out / 'study_vs_grid.json'}")


if __name__ == "__main__":
    main()
