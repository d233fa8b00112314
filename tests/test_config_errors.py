"""Config typos on run.py's command line: one line on stderr, exit 2, a "did you mean", nothing written;
``python run.py --help`` lists the groups, their options and the trainer fields. run.py runs in this process
(``run_py_here``); one typo and ``--help`` also run as a real ``python run.py`` (full tier)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline import config as C
from pipeline.cli.run_help import TRAINER_HELP
from pipeline.launch.overrides_check import OverrideError, check
from tests.conftest import ROOT, run_py

CONFIGS = ROOT / "configs"


def _one_line_error(res, tmp_path: Path) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert not (tmp_path / "outputs").exists()  # nothing ran, nothing was written
    return lines[0]


def test_unknown_key_is_one_line_exit_2_with_did_you_mean(tmp_path, run_py_here):
    line = _one_line_error(run_py_here("trainer.lrr=1e-4"), tmp_path)
    assert "unknown config key trainer.lrr" in line and "did you mean trainer.lr?" in line


def test_unknown_option_is_one_line_exit_2_with_did_you_mean(tmp_path, run_py_here):
    line = _one_line_error(run_py_here("-m", "data=bbc", "seed=0,1"), tmp_path)
    assert "data=bbc: no such option" in line and "did you mean data=bbc_news?" in line
    assert "bbc_news, csv, fake_news" in line


def test_unknown_launcher_key_is_one_line_exit_2_before_anything_is_submitted(tmp_path, run_py_here):
    line = _one_line_error(run_py_here("-m", "cluster=lsf", "hydra.launcher.queu=gpua100", "seed=0,1"), tmp_path)
    assert line == ("error: unknown config key hydra.launcher.queu: did you mean hydra.launcher.queue? (no launcher "
                    "has a key 'queu'; docs/dtu.md and docs/packing.md describe the launchers' keys)")


def test_plus_on_a_schema_group_is_refused(tmp_path, run_py_here):
    """Hydra's own hint (+trainer.lrr=...) would add a key training never reads and start a default run."""
    line = _one_line_error(run_py_here("+trainer.lrr=1e-4"), tmp_path)
    assert "+trainer.lrr" in line and "no key 'lrr'" in line and "did you mean trainer.lr?" in line


@pytest.mark.parametrize("args, message", [
    (["model=tin"], "did you mean model=tiny?"),
    (["data=bbc_news,fakenews"], "data=fakenews: no such option; did you mean data=fake_news?"),
    (["model.tiny.hiden_size=8"], "did you mean model.tiny.hidden_size?"),
    (["trainer.epochs=abc"], "trainer.epochs takes an integer"),
    (["trainer.dynamic_padding=maybe"], "takes true or false"),
    (["sed=1"], "did you mean seed?"),
    (["cluster=dtu_gpuv100", "hydra.launcher.queu=gpua100"], "unknown config key hydra.launcher.queu: did you "
                                                            "mean hydra.launcher.queue?"),
    (["hydra.launcher.runs_per_jobs=4"], "did you mean hydra.launcher.runs_per_job?"),
    (["hydra.run.dirr=/tmp/x"], "unknown config key hydra.run.dirr: did you mean hydra.run.dir?"),
    (["hydra.sweeper.max_batch=5"], "did you mean hydra.sweeper.max_batch_size?"),
])
def test_near_misses(args, message):
    with pytest.raises(OverrideError, match=message.replace("?", r"\?").replace("+", r"\+")):
        check(args, CONFIGS)


@pytest.mark.parametrize("args", [
    ["trainer.lr=1e-4,5e-5", "seed=0,1", "model=tiny", "+experiment=demo", "data=fake_news"],
    ["hydra.launcher.max_parallel=2", "+hydra.launcher.additional_parameters.W=10", "~seed"],
    ["data.text_columns=[title,text]", "model.path=bert-base-uncased", "trainer.max_steps=-1", "seed=range(0,3)"],
    ["cluster=dtu_gpua100", "trainer.lr=${trainer.weight_decay}", "data.max_rows=null"],
    ["trainer.dynamic_padding=1", "trainer.group_by_length=no", "hydra.job.chdir=False"],  # OmegaConf's booleans
    # hydra.* keys: Hydra's own, and any registered launcher's or sweeper's (the run's launcher may come
    # from a preset, configs/local/ or an experiment; Hydra checks the key against the one it composes)
    ["hydra.run.dir=/tmp/x", "hydra.sweep.subdir=${hydra.job.num}", "hydra.job.chdir=true", "hydra.verbose=true",
     "hydra.job.env_set.A=1", "hydra.sweeper.params.seed=0,1", "hydra.launcher.queue=gpua100",
     "hydra.launcher.runs_per_job=3", "hydra.launcher.partition=debug", "hydra/launcher=lsf"],
])
def test_valid_overrides_pass(args):
    check(args, CONFIGS)


def test_run_py_help_lists_groups_options_and_trainer_fields(tmp_path, run_py_here):
    res = run_py_here("--help")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Config groups" in out and "Trainer fields" in out
    for line in ("data        bbc_news*, csv, fake_news", "model       bert_base, minilm*, tiny"):
        assert line in out, out
    assert "dtu_gpua100" in out and "local*" in out
    for f in dataclasses.fields(C.TrainerConf):
        line = next((ln for ln in out.splitlines() if ln.split()[:1] == [f.name]), None)
        assert line is not None and TRAINER_HELP[f.name] in line, f.name


def test_every_trainer_field_has_a_description():
    assert set(TRAINER_HELP) == {f.name for f in dataclasses.fields(C.TrainerConf)}


def test_unknown_key_end_to_end(tmp_path):
    line = _one_line_error(run_py(tmp_path, "trainer.lrr=1e-4", timeout=120), tmp_path)
    assert "unknown config key trainer.lrr" in line and "did you mean trainer.lr?" in line


def test_run_py_help_end_to_end(tmp_path):
    res = run_py(tmp_path, "--help", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Config groups" in res.stdout and "Trainer fields" in res.stdout
