"""hydra/sweeper=fast_basic: the up-front check costs one composition per config-group combination."""

from __future__ import annotations

import re

from tests.conftest import run_py, train_env


def _sweep(tmp_path, *overrides: str):
    env = train_env(tmp_path)
    return run_py(tmp_path, "-m", "cluster=lsf", "model=tiny", "hydra.launcher.dry_run=true",
                  f"hydra.sweep.dir={tmp_path / 'sweep'}",
                  "hydra.verbose=hydra_plugins.pipeline_sweepers.fast_basic_sweeper", *overrides, env=env)


def test_value_sweep_is_validated_with_one_composition(tmp_path):
    r = _sweep(tmp_path, "seed=range(0,300)", "trainer.lr=1e-4,2e-4")
    assert r.returncode == 0, r.stderr
    m = re.search(r"validated (\d+) jobs with (\d+) compositions", r.stdout + r.stderr)
    assert m and m.groups() == ("600", "1"), (r.stdout + r.stderr)[-2000:]
    assert "DRYRUN" in r.stdout


def test_group_sweep_composes_once_per_choice(tmp_path):
    r = _sweep(tmp_path, "model=tiny,minilm", "seed=0,1,2")
    assert r.returncode == 0, r.stderr
    m = re.search(r"validated (\d+) jobs with (\d+) compositions", r.stdout + r.stderr)
    assert m and m.groups() == ("6", "2")


def test_bad_value_in_one_job_fails_before_submission(tmp_path):
    r = _sweep(tmp_path, "trainer.epochs=1,abc")
    assert r.returncode != 0
    assert "trainer.epochs=abc" in r.stderr and "could not be converted to Integer" in r.stderr
    assert not (tmp_path / "sweep" / "sweep.json").exists()


def test_unknown_key_and_unknown_group_option_fail(tmp_path):
    r = _sweep(tmp_path, "trainer.lrr=1,2")
    assert r.returncode != 0 and "trainer.lrr" in r.stderr
    r = _sweep(tmp_path, "model=tiny,nope")
    assert r.returncode == 2 and "model=nope: no such option" in r.stderr


def test_failed_job_still_gets_the_table_and_one_error_line(tmp_path):
    from tests.conftest import TINY

    r = run_py(tmp_path, "-m", *TINY, "trainer.epochs=1", "trainer.max_grad_norm=0", "trainer.lr=3e-3,1e12",
               f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert r.returncode == 1
    assert "COMPLETED" in r.stdout and "FAILED" in r.stdout and "loss became nan" in r.stdout
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: a job of the sweep failed") and "pipeline rerun" in last
    assert (tmp_path / "sweep" / "results" / "summary.md").is_file()
    assert "Traceback" not in r.stderr
