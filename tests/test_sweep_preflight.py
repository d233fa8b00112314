"""Swept values are preflighted before anything is submitted: once per distinct combination of the keys
the checks read, with the same one-line errors as a single run (issue 10, case 7)."""

from __future__ import annotations

import re

from tests.conftest import run_py, train_env


def _sweep(tmp_path, *overrides: str, launcher: tuple[str, ...] = ("cluster=lsf", "hydra.launcher.dry_run=true")):
    return run_py(tmp_path, "-m", *launcher, "model=tiny", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                  "hydra.verbose=pipeline.launch.sweep_preflight", *overrides, env=train_env(tmp_path))


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def test_a_missing_swept_data_file_fails_the_dry_run_in_one_line(tmp_path):
    r = _sweep(tmp_path, "data.file=bbc_news.csv.gz,nope.csv")
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    (line,) = _error_lines(r.stderr)
    assert "data file 'nope.csv' not found" in line and "PIPELINE_DATA_DIR" in line
    assert line.endswith("(jobs with data.file=nope.csv)")
    assert "DRYRUN" not in r.stdout
    assert not (tmp_path / "sweep").exists()  # nothing written, nothing submitted


def test_a_missing_swept_data_file_fails_a_local_sweep_before_any_job(tmp_path):
    r = _sweep(tmp_path, "data.file=nope.csv,bbc_news.csv.gz", "trainer.epochs=1", "data.max_rows=100",
               launcher=("cluster=local",))
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = _error_lines(r.stderr)
    assert "'nope.csv' not found" in line
    assert not (tmp_path / "sweep").exists()  # no job ran: no run directory


def test_bad_swept_model_and_config_values_fail_like_a_single_run(tmp_path):
    single = run_py(tmp_path, "model=tiny", "trainer.lr=-1", env=train_env(tmp_path))
    assert single.returncode == 2
    r = _sweep(tmp_path, "trainer.lr=1e-3,-1")
    assert r.returncode == 2
    (line,) = _error_lines(r.stderr)
    assert line == f"{_error_lines(single.stderr)[0]} (jobs with trainer.lr=-1)"
    r = _sweep(tmp_path, "model.pretrained=true", f"model.path={tmp_path},{tmp_path / 'missing' / 'x' / 'y'}")
    assert r.returncode == 2
    (line,) = _error_lines(r.stderr)
    assert "model.path" in line and "holds no config.json" in line


def test_preflight_runs_once_per_distinct_combination_not_per_job(tmp_path):
    """2,500 jobs: 250 seeds x 5 learning rates x 2 data sizes. The data is read and split twice (once per
    data setting), the short-training check made once per data setting (the learning rate does not change
    the steps), the config checked once per lr x data size; nothing per seed. The model and the output root
    are the base config's, which the Preflight callback checked: not again; the storage footprint once."""
    r = _sweep(tmp_path, "seed=range(0,250)", "trainer.lr=1e-4,2e-4,3e-4,4e-4,5e-4", "data.max_rows=100,200",
               "hydra.launcher.max_array_size=1000")
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"preflight of (\d+) combinations of swept values in [\d.]+ s: (\{.*\})", r.stdout + r.stderr)
    assert m, (r.stdout + r.stderr)[-3000:]
    assert m.group(1) == "10"
    assert m.group(2) == ("{'settings': 10, 'output_root': 0, 'model': 0, 'data': 2, 'training': 2, "
                          "'footprint': 1}")
    assert "DRYRUN3 (500 jobs, job_num 2000-2499)" in r.stdout  # and then it submits all of them


def _lines(r, text: str) -> list[str]:
    return [ln for ln in (r.stdout + r.stderr).splitlines() if text in ln]


def test_the_data_report_line_is_printed_once_per_data_setting(tmp_path):
    """Issue 22, item 8: the Preflight callback and the sweep preflight both reported the base config's data."""
    r = _sweep(tmp_path, "trainer.lr=1e-3,2e-3", "seed=0,1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(_lines(r, "data report:")) == 1, r.stdout + r.stderr
    r = _sweep(tmp_path, "data.max_rows=100,200")  # the base config's data, then each swept setting once
    reports = _lines(r, "data report:")
    assert len(reports) == 3 and reports[1].endswith("(jobs with data.max_rows=100)"), reports


def test_short_training_is_warned_per_swept_batch_size(tmp_path):
    """Issue 20, item 8: the warning was keyed on the data settings only, so batch 64 (39 steps on fake news)
    was never warned when batch 16 (147 steps) came first."""
    r = _sweep(tmp_path, "model=minilm", "data=fake_news", "trainer.batch_size=16,64")
    assert r.returncode == 0, r.stderr[-3000:]
    (line,) = _lines(r, "optimizer steps in all")
    assert "39 optimizer steps in all (784 training rows / batch 64 x 3 epochs), fewer than 80" in line
    assert "raise trainer.epochs" in line and line.endswith("(jobs with trainer.batch_size=64)")
    assert "MiniLM" not in line and "TF-IDF" not in line  # measured results live in docs/results.md
