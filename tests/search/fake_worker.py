"""A study worker whose ``run_point`` writes what a training run writes, without training: the worker's
bookkeeping (ask, report, prune, tell, requeue, kill) is tested with it in real processes.

    python -m tests.search.fake_worker SWEEP SLOT

A trial has ``EVALS`` evaluations, 10 steps apart; its validation accuracy is 0.9 for ``trainer.lr`` below
0.01 and 0.1 above (a rate that cannot learn). Like ``fit``: after each evaluation a ``metrics.jsonl`` line,
then ``on_eval``, then ``checkpoints/last``; a start with a checkpoint resumes after its evaluation (and cuts
``metrics.jsonl`` back to it); the end writes ``metrics.json`` (completed, or pruned) and drops the checkpoint.
Every start appends ``<pid> <first evaluation>`` to ``starts.txt`` in the run directory.

Environment: ``FAKE_HANG=ckpt:N`` hangs this process's first trial after the checkpoint of evaluation N
(``before:N``: before it), writing ``hanging`` in the run directory first, so a test can kill it there;
``FAKE_FAIL_LR=x`` makes trials with that learning rate raise; ``FAKE_SLEEP`` seconds per evaluation.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from pipeline import atomic, rundir

EVALS = 3
_hung = False


def accuracy(lr: float, evaluation: int) -> float:
    return (0.9 if lr < 0.01 else 0.1) - 0.01 * (EVALS - evaluation)


def _hang(run_dir: Path, where: str, evaluation: int) -> None:
    global _hung
    if not _hung and os.environ.get("FAKE_HANG") == f"{where}:{evaluation}":
        _hung = True
        (run_dir / "hanging").write_text(str(os.getpid()))
        time.sleep(600)


def run_point(sweep: Path):
    def run(overrides: list[str], number: int, on_eval) -> float:
        run_dir = sweep / str(number)
        run_dir.mkdir(parents=True, exist_ok=True)
        params = dict(o.lstrip("+").split("=", 1) for o in overrides)
        lr = float(params["trainer.lr"])
        if os.environ.get("FAKE_FAIL_LR") and float(os.environ["FAKE_FAIL_LR"]) == lr:
            raise RuntimeError(f"trial {number} cannot train at lr {lr}")
        last = atomic.resolve_dir(rundir.checkpoint_dir(run_dir))
        state = json.loads((last / "state.json").read_text()) if last else {"eval": 0, "best": 0.0}
        _cut_metrics(run_dir, state["eval"] * 10)
        with open(run_dir / "starts.txt", "a") as f:
            f.write(f"{os.getpid()} {state['eval']}\n")
        for e in range(state["eval"] + 1, EVALS + 1):
            time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
            acc = accuracy(lr, e)
            atomic.append_jsonl(rundir.metrics_jsonl(run_dir), {"split": "val", "step": e * 10, "accuracy": acc})
            state = {"eval": e, "best": max(state["best"], acc)}
            if on_eval(e * 10, {"accuracy": acc, "loss": 1 - acc, "macro_f1": acc}):
                return _finish(run_dir, rundir.PRUNED, state, pruned_at_step=e * 10)
            _hang(run_dir, "before", e)
            atomic.write_dir(rundir.checkpoint_dir(run_dir),
                             lambda tmp, s=state: (tmp / "state.json").write_text(json.dumps(s)))
            _hang(run_dir, "ckpt", e)
        return _finish(run_dir, rundir.COMPLETED, state)

    return run


def _cut_metrics(run_dir: Path, step: int) -> None:
    path = rundir.metrics_jsonl(run_dir)
    if path.exists():
        kept = [ln for ln in path.read_text().splitlines() if json.loads(ln)["step"] <= step]
        atomic.write_text(path, "".join(ln + "\n" for ln in kept))


def _finish(run_dir: Path, status: str, state: dict, **extra) -> float:
    atomic.write_json(rundir.metrics_json(run_dir), {"status": status, "val": {"accuracy": state["best"]},
                                                     "steps": state["eval"] * 10, **extra})
    shutil.rmtree(run_dir / rundir.CHECKPOINTS_DIR, ignore_errors=True)
    return state["best"]


def main() -> None:
    from pipeline.search.worker import run_worker

    sweep, slot = Path(sys.argv[1]), int(sys.argv[2])
    outcomes = run_worker(sweep, run_point(sweep), slot=slot)
    print(json.dumps([o.__dict__ for o in outcomes]), flush=True)


if __name__ == "__main__":
    main()
