"""``fit(cfg, on_eval=...)``: every validation result reaches the callback; True prunes the run (model=tiny).

A pruned run stops at that evaluation: ``metrics.json`` says ``pruned`` with the best validation metrics so
far, no test split is evaluated, ``checkpoints/`` is gone, ``metrics.jsonl`` stays, ``attempts.json`` ends
``pruned``, and starting it again trains nothing. A callback that never prunes changes nothing, and a run
resumed after a requeue or a kill reports the same values at the same steps as an uninterrupted one.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY, read_json, run_py, train_env

STEPS = ["trainer.eval_every_steps=10", "trainer.checkpoint_every_steps=5"]

#: fit() with a callback that appends each (step, metrics) to a file; REQUEUE_AT=n sends the process a
#: SIGUSR2 at the n-th evaluation, with a previous handler that stands for submitit's requeue
SCRIPT = """
import json, logging, os, signal, sys
from pipeline.data.prepare import compose
from pipeline.train.train import fit

run_dir, reports, *overrides = sys.argv[1:]
requeue_at = int(os.environ.get("REQUEUE_AT", "0"))
seen = []
logging.basicConfig(level=logging.INFO)

def on_eval(step, metrics):
    seen.append(step)
    with open(reports, "a") as f:
        f.write(json.dumps({"step": step, **metrics}) + "\\n")
    if len(seen) == requeue_at:
        os.kill(os.getpid(), signal.SIGUSR2)
    return False

signal.signal(signal.SIGUSR2, lambda signum, frame: print("requeue asked", flush=True))
print("best", fit(compose(overrides), run_dir, on_eval=on_eval), flush=True)
"""


def _fit_with_callback(tmp_path: Path, run_dir: Path, reports: Path, **env: str) -> subprocess.CompletedProcess:
    overrides = [*TINY, *STEPS, f"paths.output_root={tmp_path / 'outputs'}"]
    return subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir), str(reports), *overrides], cwd=ROOT,
                          env=train_env(tmp_path, **env), capture_output=True, text=True, timeout=300)


def _reports(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _val_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "split", "epoch")} for r in rows if r["split"] == "val"]


def _final(run_dir: Path) -> dict:
    m = read_json(run_dir / "metrics.json")
    return {k: m[k] for k in ("status", "val", "test", "best_step", "best_epoch", "steps", "epochs")}


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> tuple[Path, list[dict]]:
    """An uninterrupted run whose callback records every evaluation and never prunes."""
    tmp = tmp_path_factory.mktemp("reported")
    run_dir, reports = tmp / "run", tmp / "reports.jsonl"
    r = _fit_with_callback(tmp, run_dir, reports)
    assert r.returncode == 0, r.stderr[-3000:]
    return run_dir, _reports(reports)


def test_a_callback_that_never_prunes_sees_every_evaluation_and_changes_nothing(tmp_path, reported):
    run_dir, reports = reported
    assert [r["step"] for r in reports] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert reports == _val_rows(run_dir)  # after the metrics.jsonl line, with the same values
    plain = tmp_path / "plain"
    r = run_py(tmp_path, *TINY, *STEPS, f"hydra.run.dir={plain}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert _final(run_dir) == _final(plain) and _final(run_dir)["status"] == "completed"
    assert _val_rows(run_dir) == _val_rows(plain)


def test_true_at_the_second_evaluation_prunes_the_run(tmp_path):
    from pipeline import rundir
    from pipeline.data.prepare import compose
    from pipeline.train import attempts
    from pipeline.train.train import fit

    cfg = compose([*TINY, *STEPS, f"paths.output_root={tmp_path / 'outputs'}"])
    run_dir, calls = tmp_path / "run", []

    def on_eval(step: int, metrics: dict[str, float]) -> bool:
        calls.append((step, metrics))
        return len(calls) == 2

    best = fit(cfg, run_dir, on_eval=on_eval)
    assert [step for step, _ in calls] == [10, 20]
    m = read_json(run_dir / "metrics.json")
    assert m["status"] == rundir.PRUNED == "pruned" and m["error"] is None
    assert m["pruned_at_step"] == 20 and m["steps"] == 20 < 80
    assert "test" not in m and m["wall_time_s"] > 0 and m["monitor"] == "macro_f1"
    best_val = max((metrics for _, metrics in calls), key=lambda x: (x["macro_f1"], -x["loss"]))
    assert m["val"] == best_val and best == best_val["macro_f1"] and m["best_step"] in (10, 20)
    assert not (run_dir / "checkpoints").exists()  # pruned runs keep no weights
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "val"] == [10, 20]
    assert "test" not in {r["split"] for r in rows} and not (run_dir / "test_predictions.csv").exists()
    assert [a["status"] for a in attempts.read(run_dir)] == ["pruned"]

    before = (run_dir / "metrics.json").read_bytes()
    assert fit(cfg, run_dir, on_eval=on_eval) == best  # started again: not retrained
    assert len(calls) == 2 and (run_dir / "metrics.json").read_bytes() == before


def test_resume_after_a_requeue_reports_the_same_values(tmp_path, reported):
    ref_dir, ref = reported
    run_dir, reports = tmp_path / "run", tmp_path / "reports.jsonl"
    first = _fit_with_callback(tmp_path, run_dir, reports, REQUEUE_AT="3")
    assert first.returncode == 128 + signal.SIGUSR2 and "requeue asked" in first.stdout, first.stderr[-2000:]
    assert not (run_dir / "metrics.json").exists()
    second = _fit_with_callback(tmp_path, run_dir, reports)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from checkpoints/last at step 30" in second.stderr
    assert _reports(reports) == ref  # 10, 20, 30 from the first attempt, 40..80 from the second
    assert _final(run_dir) == _final(ref_dir)


def test_a_kill_between_an_evaluation_and_its_checkpoint_reports_that_step_again_identically(tmp_path, reported):
    _, ref = reported
    run_dir, reports = tmp_path / "run", tmp_path / "reports.jsonl"
    killed = _fit_with_callback(tmp_path, run_dir, reports, PIPELINE_FAULTS="checkpoint_write:2")  # step 10
    assert killed.returncode == -signal.SIGKILL
    assert [r["step"] for r in _reports(reports)] == [10]  # reported before the kill
    resumed = _fit_with_callback(tmp_path, run_dir, reports)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = _reports(reports)
    assert [r["step"] for r in got] == [10, 10, 20, 30, 40, 50, 60, 70, 80]  # resumed at 5: 10 again
    assert got[0] == got[1] and got[1:] == ref


def test_a_prune_asked_at_the_last_step_is_not_taken(tmp_path):
    """A run whose last evaluation is judged bad has already done every step: it completes, with its test
    score and best checkpoint (a 1-epoch trial of a study judged at its first and only evaluation)."""
    from pipeline.data.prepare import compose
    from pipeline.train.train import fit

    cfg = compose([*TINY, "trainer.epochs=1", f"paths.output_root={tmp_path / 'outputs'}"])
    run_dir, calls = tmp_path / "run", []
    fit(cfg, run_dir, on_eval=lambda step, metrics: calls.append(step) or True)
    m = read_json(run_dir / "metrics.json")
    assert len(calls) == 1 and m["status"] == "completed" and m["steps"] == calls[0]
    assert "test" in m and (run_dir / "checkpoints" / "best").is_dir()
