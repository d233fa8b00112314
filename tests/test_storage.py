"""Storage preflight (issue 22, item 4): what a sweep will write against what its file system can take.

The end-to-end cases run ``run.py`` on a real small file system (a ``tmpfs`` mounted under tmp_path; they
skip, saying why, where mounting is not allowed). The quota tool (DTU's ``getquota_work3.sh``) does not
exist here: its parser is tested on BeeGFS's table, and the plumbing with a stand-in script on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pipeline.launch import storage
from tests.conftest import TINY, run_py, train_env

DRY_LSF = ("-m", "cluster=lsf", "hydra.launcher.dry_run=true")


@pytest.fixture
def small_fs(tmp_path):
    """``mount(size_bytes)``: a fresh tmpfs of that size under tmp_path, unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        folder = tmp_path / f"fs{len(mounted)}"
        folder.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size // 1024}k", "tmpfs", str(folder)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({(r.stderr or r.stdout).strip() or 'mount failed'}); "
                        "these tests need a small real file system (run as root)")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)


def tiny_footprint() -> storage.RunFootprint:
    from pipeline.config import compose

    footprint = storage.run_footprint(compose(["model=tiny"]))
    assert footprint is not None
    return footprint


def _error(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stdout[-2000:] + r.stderr[-2000:]
    return lines[0]


def _nothing_half_written(root: Path) -> None:
    """Refused before submission: no sweep or run folder; what preflight wrote is whole (its data report)."""
    files = [p for p in root.rglob("*") if p.is_file()]
    assert not (root / "multirun").exists() and not (root / "runs").exists()
    assert all(p.parent.name == "data_reports" for p in files), files
    for p in files:
        json.loads(p.read_text())


def test_a_sweep_that_cannot_fit_is_refused_before_submission(tmp_path, small_fs):
    root = small_fs(4 << 20)
    env = train_env(tmp_path, PIPELINE_OUTPUT_ROOT=str(root))
    r = run_py(tmp_path, *DRY_LSF, "model=tiny", "trainer.lr=1e-3,2e-3", env=env)
    line = _error(r)
    assert line.startswith("error: this sweep needs at least ") and "2 runs x " in line
    assert "tiny best checkpoint, metrics and logs" in line and "more while a run writes its resume checkpoint" in line
    assert f"but {root} has " in line and "free (statvfs)" in line and "PIPELINE_OUTPUT_ROOT" in line
    assert "DRYRUN" not in r.stdout
    _nothing_half_written(root)


def test_a_local_sweep_that_cannot_fit_is_refused_before_any_job(tmp_path, small_fs):
    root = small_fs(4 << 20)
    env = train_env(tmp_path, PIPELINE_OUTPUT_ROOT=str(root))
    r = run_py(tmp_path, "-m", "cluster=local", *TINY, "trainer.max_steps=1", "seed=0,1", env=env)
    assert "this sweep needs at least " in _error(r)
    _nothing_half_written(root)


def test_a_sweep_near_the_free_space_is_warned_in_one_line(tmp_path, small_fs):
    est = storage.Estimate([(tiny_footprint(), 2)], 2)
    root = small_fs(int(1.3 * est.peak()[0]))  # fits, but the peak is over half of it
    env = train_env(tmp_path, PIPELINE_OUTPUT_ROOT=str(root))
    r = run_py(tmp_path, *DRY_LSF, "model=tiny", "seed=0,1", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    (line,) = [x for x in (r.stdout + r.stderr).splitlines() if "of what is free" in x]
    assert "this sweep writes about " in line and "2 runs x " in line and "up to 2 running at once" in line
    assert f"over 50% of what is free: {root} has " in line
    assert "DRYRUN1 (2 jobs" in r.stdout


def test_the_estimate_covers_what_a_tiny_run_keeps(tmp_path):
    """A real completed run with its resume checkpoint kept: the estimate is an upper bound, and close."""
    run_dir = tmp_path / "run"
    r = run_py(tmp_path, *TINY, "trainer.max_steps=2", "trainer.keep_last_checkpoint=true",
               f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr[-3000:]
    from pipeline.config import compose

    footprint = storage.run_footprint(compose(["model=tiny", "trainer.keep_last_checkpoint=true"]))
    written = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    entries = len(list(run_dir.rglob("*"))) + 1
    assert 0.9 * (footprint.kept_bytes - storage.SMALL_BYTES) <= written <= footprint.kept_bytes
    assert entries <= footprint.kept_files


def test_the_estimate_adds_what_runs_keep_and_the_extras_of_those_running_at_once():
    a = storage.RunFootprint("a", kept_bytes=100, kept_files=10, extra_bytes=600, extra_files=3)
    b = storage.RunFootprint("b", kept_bytes=500, kept_files=10, extra_bytes=3000, extra_files=3)
    est = storage.Estimate([(a, 30), (b, 2)], parallel=4)
    assert est.n_runs == 32 and est.kept() == (30 * 100 + 2 * 500, 320)
    assert est.at_least() == (4000 + 3000, 320 + 3)
    assert est.peak() == (4000 + 2 * 3000 + 2 * 600, 320 + 4 * 3)


def test_the_minilm_footprint_comes_from_its_files():
    from pipeline.config import compose
    from pipeline.models.model import offline_minilm_path

    folder = Path(offline_minilm_path())
    w = (folder / "model.safetensors").stat().st_size
    t = sum((folder / n).stat().st_size for n in ("tokenizer.json", "tokenizer_config.json",
                                                   "special_tokens_map.json", "vocab.txt"))
    fp = storage.run_footprint(compose([]))
    assert fp.kept_bytes == w + t + storage.SMALL_BYTES and fp.extra_bytes == 6 * w
    kept = storage.run_footprint(compose(["trainer.keep_last_checkpoint=true"]))
    assert kept.kept_bytes == fp.kept_bytes + 3 * w and kept.extra_bytes == 3 * w


BEEGFS = """\
Quota information for storage pool Default (ID: 1):

      user/group     ||           size          ||    chunk files
     name     |  id  ||    used    |    hard    ||  used   |  hard
--------------|------||------------|------------||---------|---------
       s123456|123456||   49.89 GiB|  100.00 GiB||   123456|  2000000

Quota information for storage pool nvme (ID: 2):

      user/group     ||           size          ||    chunk files
     name     |  id  ||    used    |    hard    ||  used   |  hard
--------------|------||------------|------------||---------|---------
       s123456|123456||  340.00 GiB|  350.00 GiB||     1000|unlimited
"""


def test_the_beegfs_quota_table_is_read_tightest_pool_first():
    left_bytes, left_files = storage.parse_beegfs_quota(BEEGFS)
    assert left_bytes == 10 * 2**30  # the NVMe pool: 350 - 340 GiB
    assert left_files == 2000000 - 123456
    assert storage.parse_beegfs_quota("getquota_work3.sh: command failed\n") is None


def test_a_quota_tool_on_path_limits_the_free_space(tmp_path, monkeypatch):
    tool = tmp_path / "bin" / "getquota_work3.sh"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{BEEGFS}EOF\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(storage, "QUOTA_TOOLS", {str(tmp_path): "getquota_work3.sh"})  # /work3 on DTU
    space = storage.free_space(tmp_path / "outputs" / "multirun")
    assert space.where == str(tmp_path) and space.source == "getquota_work3.sh and statvfs"
    assert space.free_bytes <= 10 * 2**30 and space.free_files <= 2000000 - 123456


def test_runs_at_once_follow_the_launcher_and_the_queue_gpus():
    from omegaconf import OmegaConf

    def launcher(**values) -> object:
        return OmegaConf.create({"hydra": {"launcher": values}})

    assert storage.parallel_runs(launcher(array_parallelism=4), 10) == 4
    assert storage.parallel_runs(launcher(array_parallelism=100, gpus_per_node=1, queue_gpus=2), 10) == 2  # gpua40
    assert storage.parallel_runs(launcher(array_parallelism=100), 3) == 3
    local = launcher(_target_="hydra_plugins.pipeline_launchers.local_launcher.LocalProcessesLauncher",
                     max_parallel=None, cpus_per_task=1)
    assert storage.parallel_runs(local, 1000) == os.cpu_count()
    gpu_jobs = launcher(_target_="hydra_plugins.pipeline_launchers.local_launcher.LocalProcessesLauncher",
                        max_parallel=None, cpus_per_task=1, gpus_per_node=1, visible_gpus=[])
    assert storage.parallel_runs(gpu_jobs, 1000) == 1  # local GPU jobs: one at a time, as the launcher runs them
    assert storage.parallel_runs(OmegaConf.create({}), 7) == 7  # nothing known: all at once
