"""Faults with local processes (``cluster=local``, the default) and plain ``python run.py``.

- A sweep where one job's loss becomes NaN (``trainer.lr=1e12 trainer.max_grad_norm=0``): the other job
  completes, ``pipeline results``/``status`` say why, and ``pipeline rerun SWEEP --failed trainer.lr=3e-3``
  resubmits only that job, into its run directory, where it starts over with the new lr and completes.
- Kills during metrics writes: halfway through a ``metrics.jsonl`` line, through ``run_info.json`` and
  through the final ``metrics.json``: every file that exists still parses, the previous ``run_info.json``
  still loads, and the run finishes exactly like the uninterrupted job of the sweep.
(SIGKILL at a checkpoint, USR2 and NaN for a single run: tests/test_train.py.)
"""

from __future__ import annotations

import json
import signal

import pytest

from tests.conftest import read_json, run_py
from tests.reliability.conftest import CONFIG, cli, job_env, rows, status_rows, sweep_json, without

pytestmark = pytest.mark.slow

#: one epoch (20 steps, a checkpoint at 10 and 20), no gradient clipping (so that lr=1e12 gives NaN)
SHORT = [*without(CONFIG, "trainer.epochs", "trainer.lr"), "trainer.epochs=1", "trainer.max_grad_norm=0"]
NAN = "loss became nan"


@pytest.fixture(scope="module")
def nan_sweep(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("local")
    env = job_env(tmp)
    sweep = tmp / "sweep"
    res = run_py(tmp, "-m", *SHORT, "trainer.lr=3e-3,1e12", f"hydra.sweep.dir={sweep}", env=env, timeout=300)
    out = {"tmp": tmp, "sweep": sweep, "env": env, "sweep_run": res, "before": sweep_json(sweep),
           "job0": (sweep / "0" / "metrics.json").read_bytes()}
    out["results"] = cli("results", str(sweep), "--format", "json", env=env)
    out["status"] = cli("status", str(sweep), env=env)
    out["dry"] = cli("rerun", str(sweep), "--failed", "--dry-run", "trainer.lr=3e-3", env=env)
    out["after_dry"] = sweep_json(sweep)
    out["rerun"] = cli("rerun", str(sweep), "--failed", "trainer.lr=3e-3", env=env)
    out["after"] = sweep_json(sweep)
    out["again"] = cli("rerun", str(sweep), "--failed", env=env)
    return out


def test_nan_job_fails_with_its_reason_and_the_other_completes(nan_sweep):
    sweep = nan_sweep["sweep"]
    assert nan_sweep["sweep_run"].returncode != 0  # the sweep reports its failed job
    assert read_json(sweep / "0" / "metrics.json")["status"] == "completed"
    failed = read_json(sweep / "1" / ".rerun" / "1" / "metrics.json")  # moved there by the rerun
    assert failed["status"] == "failed" and failed["error"].startswith(NAN)
    table = json.loads(nan_sweep["results"].stdout)["rows"]
    by_job = {str(r["job"]): r for r in table}
    assert by_job["0"]["state"] == "completed"
    assert by_job["1"]["state"] == "failed" and by_job["1"]["error"].startswith(NAN)  # the first error line
    assert "\n" not in by_job["1"]["error"]
    status = nan_sweep["status"]
    assert status.returncode == 1 and "FAILED" in status_rows(status.stdout)["1"] and NAN in status.stdout


def test_dry_run_changes_nothing(nan_sweep):
    dry = nan_sweep["dry"]
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [dry.stdout.splitlines()[0]]
    line = dry.stdout.strip()
    assert line.startswith("would rerun: job 1 (failed: loss became nan") and "with trainer.lr=3e-3" in line
    assert "starts over (its config changed)" in line
    assert nan_sweep["after_dry"] == nan_sweep["before"]


def test_rerun_resubmits_only_the_failed_job_into_its_run_dir(nan_sweep):
    sweep, rerun = nan_sweep["sweep"], nan_sweep["rerun"]
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    lines = rerun.stdout.splitlines()
    started = [ln for ln in lines if ln.startswith("rerun:")]
    assert len(started) == 1 and started[0].startswith("rerun: job 1 (failed: loss became nan")
    assert f"in {sweep / '1'};" in started[0] and "previous files in" in started[0]
    assert any(ln.startswith("job 1: completed (val_macro_f1=") for ln in lines)
    m = read_json(sweep / "1" / "metrics.json")
    assert m["status"] == "completed" and m["attempts"] == 1 and m["steps"] == 20  # started over
    assert "trainer.lr=3e-3" in (sweep / "1" / ".hydra" / "overrides.yaml").read_text()  # recorded by Hydra
    assert "1e12" not in (sweep / "1" / ".hydra" / "overrides.yaml").read_text()
    assert (sweep / "0" / "metrics.json").read_bytes() == nan_sweep["job0"]  # the completed job untouched
    before, after = nan_sweep["before"], nan_sweep["after"]
    assert after["jobs"][0] == before["jobs"][0]
    job1 = after["jobs"][1]
    assert job1["job_id"] != before["jobs"][1]["job_id"] and job1["run_dir"] == str(sweep / "1")
    assert job1["overrides"][-1] == "trainer.lr=3e-3" and not any("1e12" in o for o in job1["overrides"])
    assert after["reruns"] == [{**after["reruns"][0], "jobs": [1], "overrides": ["trainer.lr=3e-3"], "fresh": [1]}]
    runs = read_json(sweep / "results" / "results.json")["runs"]["rows"]  # refreshed after the rerun
    assert sorted(r["state"] for r in runs) == ["completed", "completed"]


def test_nothing_left_to_rerun(nan_sweep):
    again = nan_sweep["again"]
    assert again.returncode == 1
    assert again.stderr.startswith("error: nothing to rerun") and len(again.stderr.strip().splitlines()) == 1


def test_kills_during_metrics_writes_leave_whole_files(nan_sweep, tmp_path):
    """SIGKILL halfway through a metrics.jsonl line, then through run_info.json, then through the final
    metrics.json; each restart resumes; the run ends exactly like the sweep's uninterrupted job 0."""
    run_dir = tmp_path / "run"
    args = [*SHORT, "trainer.lr=3e-3", f"hydra.run.dir={run_dir}"]

    def attempt(faults: str | None) -> int:
        env = job_env(tmp_path, **({"PIPELINE_FAULTS": faults} if faults else {}))
        return run_py(tmp_path, *args, env=env, timeout=300).returncode

    assert attempt("write_metrics.jsonl:12") == -signal.SIGKILL  # the 12th line (step 12) half written
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[-2])["step"] == 11
    with pytest.raises(ValueError):
        json.loads(lines[-1])  # the torn line: readers skip it, the resume drops it
    first_info = read_json(run_dir / "run_info.json")
    assert first_info["attempt"] == 1

    assert attempt("write_run_info.json:1") == -signal.SIGKILL  # the second attempt's run_info half written
    assert read_json(run_dir / "run_info.json") == first_info  # the previous one, whole
    assert list(run_dir.glob(".run_info.json.*.tmp"))  # the half-written copy never replaced it

    assert attempt("write_metrics.json:1") == -signal.SIGKILL  # the final metrics.json half written
    assert not (run_dir / "metrics.json").exists()
    assert read_json(run_dir / "run_info.json")["resumed_from_step"] == 10

    assert attempt(None) == 0
    for path in [*run_dir.glob("*.json"), *run_dir.glob("checkpoints/*/*.json")]:
        json.loads(path.read_text())  # every JSON file whole
    assert not [p for p in run_dir.rglob(".*.tmp")]
    assert rows(run_dir) == rows(nan_sweep["sweep"] / "0")  # every line parses, the same as uninterrupted
    m, ref = read_json(run_dir / "metrics.json"), read_json(nan_sweep["sweep"] / "0" / "metrics.json")
    assert {k: m[k] for k in ("status", "val", "test", "best_step")} == \
        {k: ref[k] for k in ("status", "val", "test", "best_step")}
    assert m["attempts"] == 3  # resumed at step 10, then at the end (the run_info kill saw no checkpoint load)
