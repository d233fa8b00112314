"""The Hydra launchers (hydra/launcher=lsf, local_processes) on the fake LSF: Hydra's own launcher test
suites, the non-blocking sweep with its manifest and aggregation job, dry runs and bad input."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.pipeline_launchers.local_launcher import LocalProcessesLauncher
from hydra_plugins.pipeline_launchers.lsf_launcher import LsfLauncher
from hydra_plugins.pipeline_launchers.slurm_launcher import SlurmManifestLauncher
from pipeline.launch.local import parallelism
from pipeline.launch.submitit_lsf.lsf import BSUB_NOT_FOUND
from tests.lsf.conftest import ROOT, run_app

LSF_WAIT = ["hydra.launcher.wait=true", "hydra.launcher.timeout_min=10"]


@pytest.mark.parametrize("cls", [LsfLauncher, LocalProcessesLauncher, SlurmManifestLauncher])
def test_discovery(cls: type) -> None:
    assert cls.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


# ------------------------------------------------------------------------------ Hydra's launcher suites


@pytest.mark.lsf
@pytest.mark.usefixtures("lsf")
@pytest.mark.parametrize("launcher_name, overrides", [("lsf", LSF_WAIT),
                                                     ("lsf", [*LSF_WAIT, "hydra.launcher.runs_per_job=2"])])
class TestLsfLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize("launcher_name, overrides", [
    ("local_processes", ["hydra.launcher.timeout_min=2"]),
    ("local_processes", ["hydra.launcher.timeout_min=2", "hydra.launcher.runs_per_job=2"]),  # packed jobs
])
class TestLocalProcessesLauncher(LauncherTestSuite):
    pass


@pytest.mark.lsf
@pytest.mark.usefixtures("lsf")
@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [
    ({}, ["-m", "hydra/hydra_logging=disabled", "hydra/job_logging=disabled", "hydra/launcher=lsf",
          *LSF_WAIT]),
])
class TestLsfLauncherIntegration(IntegrationTestSuite):
    pass


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [
    ({}, ["-m", "hydra/hydra_logging=disabled", "hydra/job_logging=disabled", "hydra/launcher=local_processes",
          "hydra.launcher.timeout_min=2"]),
])
class TestLocalProcessesLauncherIntegration(IntegrationTestSuite):
    pass


# ------------------------------------------------------------------------------ the sweep as one array


@pytest.mark.lsf
def test_sweep_returns_at_once_then_runs_as_one_array(lsf, tmp_path: Path) -> None:
    res = run_app(tmp_path, "x=1,2,3", "name=a,b")
    assert res.returncode == 0, res.stderr
    sweep = tmp_path / "sweep"
    data = json.loads((sweep / "sweep.json").read_text())
    array = data["arrays"][0]["job_id"]
    agg = data["aggregate_job_id"]
    assert re.fullmatch(r"\d+", array) and re.fullmatch(r"\d+", agg)
    folder = str(sweep / ".submitit")
    assert data == {
        "scheduler": "lsf", "created": data["created"], "submitit_folder": folder, "dialect": "lsf10",
        "arrays": [{"job_id": array, "size": 6, "first_job_num": 0}],
        "jobs": [{"job_num": k, "job_id": f"{array}[{k + 1}]", "run_dir": str(sweep / str(k)),
                  "stdout": f"{folder}/{array}_{k + 1}_0_log.out", "stderr": f"{folder}/{array}_{k + 1}_0_log.err",
                  "overrides": [f"x={x}", f"name={n}"]}
                 for k, (x, n) in enumerate((x, n) for x in (1, 2, 3) for n in ("a", "b"))],
        "aggregate_job_id": agg, "aggregate_submitted": data["aggregate_submitted"], "gpus_per_job": 0,
    }
    assert abs(data["aggregate_submitted"] - time.time()) < 300  # when the current aggregation job was submitted
    out = res.stdout.splitlines()
    assert f"[lsf] submitted job array {array} (6 jobs, job_num 0-5); logs in {folder}" in out
    assert any(line.startswith(f"[lsf] aggregation job {agg} runs when they have ended") for line in out)
    assert any(line.strip().startswith("pipeline status") for line in out)
    bsubs = lsf.calls("bsub")
    assert len(bsubs) == 2  # one array for the whole sweep, one aggregation job
    agg_script = (sweep / "aggregate.bsub").read_text()
    assert f'#BSUB -w "ended({array})"' in agg_script
    assert agg_script.rstrip().endswith(f"-m pipeline.cli aggregate {sweep}")

    lsf.wait_all(timeout=60)
    for k, job in enumerate(data["jobs"]):
        info = json.loads((Path(job["run_dir"]) / "job.json").read_text())
        assert info["job_id"] == job["job_id"] and info["job_num"] == k
        assert info["cfg"]["x"] == int(job["overrides"][0].split("=")[1])
    assert (sweep / f"aggregate_{agg}.out").is_file()
    assert lsf.stat(int(agg)) in ("DONE", "EXIT")  # it ran (what it made is the CLI's business)


@pytest.mark.lsf
def test_openlava_sweep_waits_for_results(lsf, tmp_path: Path) -> None:
    lsf.set_dialect("openlava")
    res = run_app(tmp_path, "x=1,2", "hydra.launcher.dialect=openlava", *LSF_WAIT)
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert data["dialect"] == "openlava" and data["aggregate_job_id"] is None
    assert [json.loads((tmp_path / "sweep" / str(k) / "job.json").read_text())["cfg"]["x"] for k in (0, 1)] == [1, 2]
    assert all("-json" not in c["argv"] for c in lsf.calls("bjobs"))


@pytest.mark.lsf
def test_override_values_arrive_exactly(lsf, tmp_path: Path) -> None:
    values = ["a;b", "$(touch pwned)", "it's", 'say "hi"', "two\nlines", "`id`", "a b && c | d > e"]
    quoted = ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    res = run_app(tmp_path, f"+s={quoted}", *LSF_WAIT)
    assert res.returncode == 0, res.stderr
    got = [json.loads((tmp_path / "sweep" / str(k) / "job.json").read_text())["cfg"]["s"] for k in range(len(values))]
    assert got == values
    assert not (tmp_path / "pwned").exists()
    manifest = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    parser = OverridesParser.create()  # the manifest's overrides read back as the same values
    assert [parser.parse_override(j["overrides"][0]).value() for j in manifest["jobs"]] == values


def test_dry_run_splits_arrays_without_bsub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(Path(os.__file__).parent))  # no bsub anywhere
    res = run_app(tmp_path, "x=range(5)", "hydra.launcher.dry_run=true", "hydra.launcher.max_array_size=2",
                  "cluster=dtu_gpua100_80gb", env={"PATH": os.environ["PATH"]})
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert data["dry_run"] is True and data["gpus_per_job"] == 1
    assert data["arrays"] == [{"job_id": "DRYRUN1", "size": 2, "first_job_num": 0},
                              {"job_id": "DRYRUN2", "size": 2, "first_job_num": 2},
                              {"job_id": "DRYRUN3", "size": 1, "first_job_num": 4}]
    assert [j["job_id"] for j in data["jobs"]] == ["DRYRUN1[1]", "DRYRUN1[2]", "DRYRUN2[1]", "DRYRUN2[2]",
                                                   "DRYRUN3[1]"]
    folder = tmp_path / "sweep" / ".submitit"
    assert '#BSUB -J "my_app[1-1]%1"' in (folder / "DRYRUN3_submission.sh").read_text()
    assert '#BSUB -w "ended(DRYRUN1) && ended(DRYRUN2) && ended(DRYRUN3)"' in \
        (tmp_path / "sweep" / "aggregate.bsub").read_text()
    assert "dry run, not submitted: job array DRYRUN1 (2 jobs, job_num 0-1)" in res.stdout


@pytest.mark.lsf
@pytest.mark.parametrize("overrides, message", [
    (["cluster=nope"], "Could not find 'cluster/nope'"),
    (["cluster=dtu_gpua100", "hydra.launcher.timeout_min=1500"],
     "timeout_min=1500 is above the 1440-minute limit of queue gpua100"),
    (["cluster=dtu_cpu", "hydra.launcher.gpus_per_node=1"], "gpus_per_node=1 on queue hpc, a CPU queue"),
    (["hydra.launcher.mem_per_slot=16 gigs"], "mem_per_slot='16 gigs': not a memory size"),
    (["hydra.launcher.queu=hpc"], "Key 'queu' not in 'LsfQueueConf'"),
    (["hydra.launcher.aggregate_queue='a;b'"], "queue='a;b': not a queue name"),
])
def test_bad_input_fails_before_bsub(lsf, tmp_path: Path, overrides: list[str], message: str) -> None:
    res = run_app(tmp_path, "x=1,2", *overrides)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    assert lsf.calls("bsub") == []
    assert not (tmp_path / "sweep" / "sweep.json").exists()


def test_unknown_preset_lists_the_presets(tmp_path: Path) -> None:
    res = run_app(tmp_path, "x=1", "cluster=dtu_gpu100")
    assert "Available options" in res.stderr and "dtu_gpua100_80gb" in res.stderr and "lsf" in res.stderr


def test_bsub_not_on_path_is_one_line(tmp_path: Path) -> None:
    env = {"PATH": str(Path(os.__file__).parent)}
    res = run_app(tmp_path, "x=1,2", env=env)
    assert res.returncode != 0
    assert BSUB_NOT_FOUND in res.stderr
    assert not (tmp_path / "sweep" / ".submitit").exists()


def test_local_processes_parallelism() -> None:
    assert parallelism({"max_parallel": 3}) == (3, [[], [], []])
    assert parallelism({"cpus_per_task": 10 ** 6}) == (1, [[]])
    assert parallelism({"gpus_per_node": 1}) == (1, [[0]])
    assert parallelism({"gpus_per_node": 2, "visible_gpus": [0, 1, 2, 3, 4]}) == (2, [[0, 1], [2, 3]])


def test_local_processes_writes_the_manifest(tmp_path: Path) -> None:
    res = run_app(tmp_path, "x=1,2,3", "cluster=local", "hydra.launcher.max_parallel=2")
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert data["scheduler"] == "local" and data["arrays"] == []
    assert [j["job_num"] for j in data["jobs"]] == [0, 1, 2]
    assert all(j["job_id"] and Path(j["stdout"]).is_file() for j in data["jobs"])
    assert data["submitit_folder"] == str(tmp_path / "sweep" / ".submitit")


@pytest.mark.slurm
@pytest.mark.parametrize("wait", [True, False])
def test_slurm_launcher_writes_the_manifest(slurm_cluster, tmp_path: Path, wait: bool) -> None:
    res = run_app(tmp_path, "x=1,2", "cluster=slurm", f"hydra.launcher.wait={str(wait).lower()}",
                  f"hydra.launcher.partition={slurm_cluster.partition}")
    assert res.returncode == 0, res.stderr
    sweep = tmp_path / "sweep"
    data = json.loads((sweep / "sweep.json").read_text())
    array = data["arrays"][0]["job_id"]
    assert data["scheduler"] == "slurm" and data["arrays"] == [{"job_id": array, "size": 2, "first_job_num": 0}]
    assert [j["job_id"] for j in data["jobs"]] == [f"{array}_0", f"{array}_1"]
    assert data["jobs"][1]["stdout"] == str(sweep / ".submitit" / f"{array}_1" / f"{array}_1_0_log.out")
    if wait:
        assert json.loads((sweep / "1" / "job.json").read_text())["cfg"]["x"] == 2


# ------------------------------------------------------------------------------ the jobs' environment

ENV_SNAPSHOT = "+hydra.callbacks.env._target_=tests.lsf.app.env_callback.EnvSnapshot"


def _job_env(sweep: Path, num: int) -> dict:
    return json.loads((sweep / str(num) / "job.json").read_text())["env"]


def _launcher_env_unchanged(tmp_path: Path) -> None:
    start, end = (json.loads((tmp_path / f"env.{w}.json").read_text()) for w in ("start", "end"))
    assert start == end  # the launch changed nothing in the Hydra process's own environment


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OMP_NUM_THREADS", "HF_HUB_OFFLINE", "PIPELINE_GPUS", "TMPDIR"):
        monkeypatch.delenv(key, raising=False)


def test_local_jobs_get_their_environment_and_the_launcher_keeps_its_own(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """PIPELINE_GPUS, the core share, HF_HUB_OFFLINE and TMPDIR reach each local job (issue 20 item 1: the
    local launcher used to set them in its own os.environ)."""
    _clean_env(monkeypatch)
    out, snap = tmp_path / "out", {"APP_ENV_SNAPSHOT": str(tmp_path / "env")}
    res = run_app(tmp_path, "x=1,2", "cluster=local", "hydra.launcher.gpus_per_node=1",
                  "hydra.launcher.visible_gpus=[0,1]", f"+paths.output_root={out}", ENV_SNAPSHOT, env=snap)
    assert res.returncode == 0, res.stderr
    share = str(max(1, (os.cpu_count() or 1) // 2))  # two jobs at once (one GPU each of two)
    for n in (0, 1):
        env = _job_env(tmp_path / "sweep", n)
        assert env["PIPELINE_GPUS"] == "1" and env["OMP_NUM_THREADS"] == share and env["HF_HUB_OFFLINE"] == "1"
        assert env["TMPDIR"] == str(out / ".tmp") and env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    assert (out / ".tmp").is_dir()
    _launcher_env_unchanged(tmp_path)

    (tmp_path / "b").mkdir()
    res = run_app(tmp_path / "b", "x=1", "cluster=local", f"+paths.output_root={out}", "+model.download=true",
                  ENV_SNAPSHOT, env=snap)
    assert res.returncode == 0, res.stderr
    env = _job_env(tmp_path / "b" / "sweep", 0)
    assert env["PIPELINE_GPUS"] is None and env["HF_HUB_OFFLINE"] is None  # model.download=true: may fetch
    assert env["OMP_NUM_THREADS"] == str(os.cpu_count() or 1)  # alone on the machine
    _launcher_env_unchanged(tmp_path)


@pytest.mark.lsf
def test_lsf_jobs_get_their_environment_from_the_script(lsf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    out = tmp_path / "out"
    res = run_app(tmp_path, "x=1", "hydra.launcher.gpus_per_node=1", f"+paths.output_root={out}", *LSF_WAIT,
                  ENV_SNAPSHOT, env={"APP_ENV_SNAPSHOT": str(tmp_path / "env")})
    assert res.returncode == 0, res.stderr
    env = _job_env(tmp_path / "sweep", 0)
    assert env["PIPELINE_GPUS"] == "1" and env["HF_HUB_OFFLINE"] == "1" and env["TMPDIR"] == str(out / ".tmp")
    script = next((tmp_path / "sweep" / ".submitit").glob("*_submission.sh")).read_text()
    assert f"export TMPDIR={out / '.tmp'}" in script and "export HF_HUB_OFFLINE=1" in script
    _launcher_env_unchanged(tmp_path)


@pytest.mark.slurm
def test_slurm_jobs_get_their_environment_from_the_script(slurm_cluster, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    out = tmp_path / "out"
    res = run_app(tmp_path, "x=1", "cluster=slurm", f"hydra.launcher.partition={slurm_cluster.partition}",
                  f"+paths.output_root={out}", ENV_SNAPSHOT, env={"APP_ENV_SNAPSHOT": str(tmp_path / "env")})
    assert res.returncode == 0, res.stderr
    env = _job_env(tmp_path / "sweep", 0)
    assert env["HF_HUB_OFFLINE"] == "1" and env["TMPDIR"] == str(out / ".tmp") and env["PIPELINE_GPUS"] is None
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    _launcher_env_unchanged(tmp_path)


def test_a_local_rerun_submits_like_the_first_launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20 item 1: `pipeline rerun` had its own local slot loop, without PIPELINE_GPUS or the core
    share; it now goes through the launch path, so the rerun jobs get the first launch's environment. (The
    app writes no metrics.json: every job reads as failed once it has ended, so every job is rerun.)"""
    import subprocess
    import sys

    _clean_env(monkeypatch)
    out = tmp_path / "out"
    res = run_app(tmp_path, "x=1,2", "cluster=local", "hydra.launcher.gpus_per_node=1",
                  "hydra.launcher.visible_gpus=[0,1]", f"+paths.output_root={out}")
    assert res.returncode == 0, res.stderr
    sweep = tmp_path / "sweep"
    first = [_job_env(sweep, n) for n in (0, 1)]
    for n in (0, 1):
        (sweep / str(n) / "job.json").unlink()
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "rerun", str(sweep), "--failed", "--job", "1"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.stdout.count("rerun: job 1 ") == 1, r.stdout + r.stderr
    env = _job_env(sweep, 1)
    assert env["PIPELINE_GPUS"] == "1" and env["HF_HUB_OFFLINE"] == "1" and env["TMPDIR"] == first[1]["TMPDIR"]
    assert env["OMP_NUM_THREADS"] == str(os.cpu_count() or 1)  # one job at once: all the cores
    assert not (sweep / "0" / "job.json").exists()  # only the job asked for
    assert json.loads((sweep / "sweep.json").read_text())["reruns"][0]["jobs"] == [1]
