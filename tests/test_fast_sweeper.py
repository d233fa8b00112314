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
    assert r.returncode == 2
    assert r.stderr.strip() == "error: trainer.epochs=abc: trainer.epochs takes an integer", r.stderr
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


def test_a_launchers_bad_input_is_one_line_exit_2_and_nothing_aggregated(tmp_path):
    """Issue 20 item 3: local_processes refusing wait=false came out as 'a job of the sweep failed', exit 1."""
    r = run_py(tmp_path, "-m", "model=tiny", "seed=0,1", "hydra.launcher.wait=false",
               f"hydra.sweep.dir={tmp_path / 'sweep'}")
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert "hydra.launcher.wait=false: local_processes always waits" in err[0] and "a job of" not in err[0]
    assert not (tmp_path / "sweep").exists()  # nothing aggregated, no folder left


def test_anything_else_keeps_its_traceback(tmp_path):
    """A launch that breaks for another reason (here an OSError: the submitit folder's parent is a file) is
    not dressed up as a failed job: its traceback, exit 1, no 'pipeline rerun' advice."""
    (tmp_path / "a_file").write_text("")
    env = train_env(tmp_path)
    env.pop("HYDRA_FULL_ERROR", None)
    r = run_py(tmp_path, "-m", "model=tiny", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}",
               f"hydra.launcher.submitit_folder={tmp_path / 'a_file' / 'sub' / '%j'}", env=env)
    assert r.returncode == 1, r.stderr
    assert "Traceback" in r.stderr and "NotADirectoryError" in r.stderr, r.stderr[-2000:]
    assert "a job of the sweep failed" not in r.stderr and not (tmp_path / "sweep" / "results").exists()
