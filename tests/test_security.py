"""Secrets never land on disk; files and folders follow the user's umask, never world-writable."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, TINY, train_env

SECRETS = {"WANDB_API_KEY": "wandb-secret-3f9a1c77", "HF_TOKEN": "hf_secret_8d2e4b19",
           "HUGGING_FACE_HUB_TOKEN": "hf_secret_8d2e4b19"}


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def assert_no_secret(root: Path) -> None:
    for p in _all_files(root):
        data = p.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in data, f"{name} leaked into {p}"


def assert_umask_modes(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        if p.is_symlink():
            continue  # a link's own mode is always 0777 and never used (submitit links its scripts)
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert not mode & stat.S_IWOTH, f"{p} is world-writable ({oct(mode)})"


def test_local_run_writes_no_secret_and_respects_umask(tmp_path):
    run_dir = tmp_path / "run"
    env = train_env(tmp_path, **SECRETS)
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), *TINY, "trainer.epochs=1", f"hydra.run.dir={run_dir}"],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: os.umask(0o022))
    assert r.returncode == 0, r.stderr
    assert_no_secret(run_dir)
    assert_no_secret(tmp_path / "outputs")
    assert all(v not in r.stdout + r.stderr for v in SECRETS.values())
    assert_umask_modes(run_dir)
    assert stat.S_IMODE((run_dir / "checkpoints" / "best").stat().st_mode) == 0o755


# ------------------------------------------------------------------------------ sweeps on LSF and Slurm

SWEEP = [*TINY, "trainer.epochs=1", "seed=0,1"]


def _sweep_env(tmp_path: Path, *bases: dict) -> dict[str, str]:
    env = train_env(tmp_path, **SECRETS)
    for base in bases:
        env.update(base)
    return env


def _run_sweep(tmp_path: Path, env: dict[str, str], *overrides: str) -> Path:
    sweep = tmp_path / "sweep"
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", *SWEEP, *overrides, f"hydra.sweep.dir={sweep}"],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: os.umask(0o027))
    assert r.returncode == 0, r.stderr[-3000:]
    assert all(v not in r.stdout + r.stderr for v in SECRETS.values())
    return sweep


def assert_sweep_clean(sweep: Path) -> None:
    """No secret in scripts, pickles, logs, sweep.json, run dirs or results; modes follow umask 027."""
    names = {p.name for p in sweep.rglob("*")}
    assert "sweep.json" in names and any(n.endswith("_submitted.pkl") for n in names)
    assert any(n.endswith("_submission.sh") for n in names) and any(n.endswith("_log.out") for n in names)
    assert_no_secret(sweep)
    assert_umask_modes(sweep)
    for p in [sweep, *sweep.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert p.is_symlink() or not mode & 0o007, f"{p} has 'other' permissions under umask 027 ({oct(mode)})"


@pytest.mark.lsf
def test_lsf_sweep_writes_no_secret_and_respects_umask(fake_lsf, tmp_path):
    sweep = _run_sweep(tmp_path, _sweep_env(tmp_path, fake_lsf.env), "cluster=lsf")
    fake_lsf.wait_all(timeout=300)
    for n in (0, 1):
        assert json.loads((sweep / str(n) / "metrics.json").read_text())["status"] == "completed"
    assert (sweep / "results" / "results.json").is_file()  # the aggregation job ran too
    assert_sweep_clean(sweep)


@pytest.mark.slurm
def test_slurm_sweep_writes_no_secret_and_respects_umask(slurm_cluster, tmp_path):
    sweep = _run_sweep(tmp_path, _sweep_env(tmp_path), "cluster=slurm",
                       f"hydra.launcher.partition={slurm_cluster.partition}")
    for n in (0, 1):
        assert json.loads((sweep / str(n) / "metrics.json").read_text())["status"] == "completed"
    assert_sweep_clean(sweep)


# ------------------------------------------------------------------------------ override values on Slurm

NASTY = st.text(alphabet=st.sampled_from(list("ab ;$()'\"\n`\\|&<>*?~#!{}=-_./")), min_size=1, max_size=16)


@pytest.mark.slurm
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(NASTY, min_size=2, max_size=3, unique=True))
def test_slurm_override_values_never_reach_a_shell(slurm_cluster, tmp_path_factory, values):
    """Sweep values full of shell metacharacters arrive in the Slurm jobs exactly, and run nothing."""
    from hypothesis import assume

    from pipeline.launch.rerun import RerunError, hydra_quote
    from tests.lsf.conftest import run_app

    values = list(dict.fromkeys(["$(touch pwned); `touch pwned2`", *values]))
    quoted = []
    for v in values:
        try:
            quoted.append(hydra_quote(v))
        except RerunError:
            assume(False)  # "${": an interpolation, which Hydra resolves by design
    tmp = tmp_path_factory.mktemp("quoting")
    env = {"PIPELINE_REPO_CONFIGS": str(ROOT / "configs"), "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"}
    res = run_app(tmp, f"+s={','.join(quoted)}", "cluster=slurm", f"hydra.launcher.partition={slurm_cluster.partition}",
                  "hydra.launcher.timeout_min=5", env=env, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    sweep = tmp / "sweep"
    got = [json.loads((sweep / str(k) / "job.json").read_text())["cfg"]["s"] for k in range(len(values))]
    assert got == values
    assert not list(tmp.rglob("pwned*")) and not list(ROOT.glob("pwned*"))
    scripts = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_submission.sh"))
    assert "touch pwned" not in scripts  # the values travel in the pickles, never in the sbatch script
