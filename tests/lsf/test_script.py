"""The bsub script: golden files per cluster preset, parameter validation, quoting (no LSF needed).

Regenerate the golden files after a reviewed change with ``UPDATE_GOLDEN=1 pytest tests/lsf/test_script.py``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from hydra_plugins.pipeline_launchers.config import LsfQueueConf
from hydra_plugins.pipeline_launchers.lsf_launcher import LsfLauncher
from pipeline.launch.submitit_lsf.lsf import LsfExecutor
from pipeline.launch.submitit_lsf.script import (
    MEM_LIMIT_MARGIN,
    LsfConfigError,
    format_mem,
    make_aggregate_bsub_string,
    make_bsub_string,
    parse_mem_mb,
)
from tests.bsub_lines import parse_bsub_lines
from tests.lsf.conftest import APP, GOLDEN

PRESETS = ["dtu_gpuv100", "dtu_gpuv100_32gb", "dtu_gpua100", "dtu_gpua100_80gb", "dtu_gpua40", "dtu_gpua10",
           "dtu_gpul40s", "dtu_gpuh100", "dtu_cpu", "lsf"]
FOLDER = "/work3/s123456/bert-hpc/multirun/2026-01-31_12-00-00/.submitit"


def preset_executor(preset: str, *overrides: str) -> LsfExecutor:
    """The executor the lsf launcher builds for ``cluster=<preset>`` (composed by Hydra)."""
    with initialize_config_dir(config_dir=str(APP.parent), version_base="1.3"):
        cfg = compose("config", overrides=[f"cluster={preset}", f"hydra.launcher.submitit_folder={FOLDER}",
                                           "hydra.launcher.python=python3", "hydra.launcher.name=train",
                                           *overrides], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop("_target_")
    return LsfLauncher(**params).make_executor()


def preset_script(preset: str, *overrides: str, map_count: int | None = 4) -> str:
    ex = preset_executor(preset, *overrides)
    params = dict(ex.parameters)
    params["env"] = {k: v for k, v in params["env"].items() if k != "PYTHONPATH"}  # machine-specific
    return make_bsub_string(ex._submitit_command_str, ex.folder, map_count=map_count, **params)


@pytest.mark.parametrize("name, overrides", [(p, ()) for p in PRESETS] + [
    ("lsf_openlava", ("cluster=lsf", "hydra.launcher.dialect=openlava")),
])
def test_golden_script(name: str, overrides: tuple[str, ...]) -> None:
    preset = name if not overrides else overrides[0].split("=", 1)[1]
    text = preset_script(preset, *overrides[1:])
    path = GOLDEN / f"{name}.bsub"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.is_file(), f"missing golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()
    check = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    parse_bsub_lines(text, f"{name}.bsub")  # every #BSUB line as LSF 10.1's bsub reads it, above any command


def test_dtu_gpu_lines() -> None:
    text = preset_script("dtu_gpua100_80gb")
    for line in ['#BSUB -J "train[1-4]%4"', "#BSUB -q gpua100", "#BSUB -n 4",
                 '#BSUB -gpu "num=1:mode=exclusive_process"',
                 '#BSUB -R "rusage[mem=8GB] span[hosts=1] select[gpu80gb]"', "#BSUB -W 4:00",
                 "#BSUB -M 10GB", "#BSUB -wa USR2", "#BSUB -wt 10", f"#BSUB -o {FOLDER}/%J_%I_0_log.out",
                 "export SUBMITIT_EXECUTOR=lsf", "export PIPELINE_GPUS=1"]:
        assert line in text.splitlines()
    assert sum(line.startswith("#BSUB -R") for line in text.splitlines()) == 1
    assert "module load" not in text  # the torch wheel brings its CUDA runtime (docs/dtu.md)
    assert text.index("export SUBMITIT_EXECUTOR") < text.index("export PIPELINE_GPUS=1") < text.index("python3 -u -m")


def test_openlava_emits_nothing_it_misreads() -> None:
    text = preset_script("lsf", "hydra.launcher.dialect=openlava")
    for flag in ("-gpu", "-wa", "-wt", "-env", "GB"):
        assert flag not in text
    assert '#BSUB -R "rusage[mem=2048] span[hosts=1]"' in text


def test_single_job_has_no_array() -> None:
    text = preset_script("lsf", map_count=None)
    assert "#BSUB -J train" in text.splitlines()
    assert f"#BSUB -o {FOLDER}/%J_0_log.out" in text.splitlines()


# -------------------------------------------------------------------------------------------- validation


def test_unknown_parameter_lists_valid_ones_with_defaults(tmp_path: Path) -> None:
    ex = LsfExecutor(tmp_path)
    with pytest.raises(ValueError, match=r"Unavailable parameter\(s\): \['queu'\]") as err:
        ex.update_parameters(queu="hpc")
    assert "queue (default: None)" in str(err.value)
    assert "timeout_min (default: 60)" in str(err.value)


@pytest.mark.parametrize("preset, overrides, message", [
    ("dtu_gpua100", ["hydra.launcher.timeout_min=2000"],
     "timeout_min=2000 is above the 1440-minute limit of queue gpua100"),
    ("dtu_cpu", ["hydra.launcher.gpus_per_node=1"], "gpus_per_node=1 on queue hpc, a CPU queue"),
    ("lsf", ["hydra.launcher.mem_per_slot=lots"], "mem_per_slot='lots': not a memory size"),
    ("lsf", ["hydra.launcher.dialect=openlava", "hydra.launcher.gpus_per_node=1"], "no -gpu option"),
    ("lsf", ["hydra.launcher.dialect=openlava", "hydra.launcher.warning_time_min=5"], "no -wa/-wt"),
    ("lsf", ["hydra.launcher.dialect=openlava", "hydra.launcher.mem_unit=suffix"], "plain numbers only"),
    ("lsf", ["hydra.launcher.dialect=pbs"], "valid dialects are lsf10, openlava"),
    ("lsf", ["hydra.launcher.nodes=2"], "one process per job"),
    ("lsf", ["hydra.launcher.queue='hpc;rm'"], "not a queue name"),
    ("lsf", ["+hydra.launcher.additional_parameters.W=10"], "unknown or reserved bsub flag -W"),
    ("lsf", ["+hydra.launcher.additional_parameters.u='a\"b'"], "LSF cannot take"),
    ("lsf", ["hydra.launcher.mem_gb=8"], "mem_gb and mem_per_slot are both set"),
    ("dtu_gpua40", ["hydra.launcher.gpus_per_node=3"], "gpus_per_node=3: a node of queue gpua40 has 2 GPUs"),
    ("dtu_gpuh100", ["hydra.launcher.mem_per_slot=200GB"],
     "the job asks for 4 x 200GB = 800GB of host memory; a node of queue gpuh100 has 720GB (node_mem_gb)"),
    ("lsf", ["hydra.launcher.queue_gpus=2", "hydra.launcher.gpus_per_node=4"], "queue has 2 GPUs in all"),
    ("dtu_gpua100", ["hydra.launcher.mem_limit=4GB"], "mem_limit=4GB is below the request of 8GB per slot"),
    ("lsf", ["hydra.launcher.node_gpus=0"], "node_gpus=0: expected an integer >= 1"),
])
def test_bad_input_fails_with_one_line(preset: str, overrides: list[str], message: str) -> None:
    with pytest.raises(LsfConfigError) as err:
        preset_executor(preset, *overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_memory() -> None:
    assert parse_mem_mb("16GB", "m") == 16384 == parse_mem_mb("16G", "m") == parse_mem_mb("16 GiB", "m")
    assert parse_mem_mb("512MB", "m") == 512 == parse_mem_mb(512, "m") == parse_mem_mb("512", "m")
    assert parse_mem_mb("1.5GB", "m") == 1536
    assert [format_mem(16384, u) for u in ("suffix", "KB", "MB", "GB")] == ["16GB", "16777216", "16384", "16"]
    assert format_mem(1536, "suffix") == "1536MB" and format_mem(1536, "GB") == "2"
    for bad in ("", "-1GB", "0", "16XB", "sixteen", True):
        with pytest.raises(LsfConfigError):
            parse_mem_mb(bad, "m")
    text = make_bsub_string("cmd", "/f", cores=4, mem_gb=16.0, mem_unit="suffix", mem_limit="20GB")
    assert '#BSUB -R "rusage[mem=4GB] span[hosts=1]"' in text and "#BSUB -M 20GB" in text


def test_mem_limit_auto_is_the_request_plus_the_margin() -> None:
    def limit(**kw) -> list[str]:
        return [ln for ln in make_bsub_string("cmd", "/f", cores=4, mem_limit="auto", **kw).splitlines()
                if ln.startswith("#BSUB -M")]

    assert limit(mem_per_slot="8GB", mem_unit="suffix") == ["#BSUB -M 10GB"]  # 8 GB + 25 %
    assert limit(mem_per_slot="2GB", mem_unit="suffix") == ["#BSUB -M 2560MB"]
    assert limit(mem_per_slot="8GB", mem_unit="MB") == ["#BSUB -M 10240"]    # the cluster's LSF_UNIT_FOR_LIMITS
    assert limit(mem_gb=32, mem_unit="suffix") == ["#BSUB -M 10GB"]           # 32 GB over 4 slots, + 25 %
    assert limit() == []                                                      # no request: nothing to derive
    assert MEM_LIMIT_MARGIN == 0.25


def test_aggregation_job_defaults_to_the_sweeps_own_queue() -> None:
    def agg_queue(preset: str, *overrides: str) -> list[str]:
        with initialize_config_dir(config_dir=str(APP.parent), version_base="1.3"):
            cfg = compose("config", overrides=[f"cluster={preset}", f"hydra.launcher.submitit_folder={FOLDER}",
                                               "hydra.launcher.python=python3", *overrides], return_hydra_config=True)
        params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        params.pop("_target_")
        be = LsfLauncher(**params).backend()
        text = be.aggregate_script(be.make_executor(), Path(FOLDER).parent, ["12"])
        return [ln for ln in text.splitlines() if ln.startswith("#BSUB -q")]

    assert agg_queue("lsf", "hydra.launcher.queue=normal") == ["#BSUB -q normal"]
    assert agg_queue("lsf") == []                        # no queue named: the cluster's default
    assert agg_queue("dtu_gpua100") == ["#BSUB -q hpc"]  # the DTU presets send it to the CPU queue
    assert LsfQueueConf().aggregate_queue is None        # the generic schema names no site's queue


def test_additional_parameters_quoted() -> None:
    text = make_bsub_string("cmd", "/f", additional_parameters={"B": True, "N": False, "u": "me@dtu.dk",
                                                                 "-G": "my group"})
    lines = text.splitlines()
    assert "#BSUB -B" in lines and "#BSUB -u me@dtu.dk" in lines and '#BSUB -G "my group"' in lines
    assert "#BSUB -N" not in lines


def test_aggregate_script() -> None:
    text = make_aggregate_bsub_string("python -m pipeline.cli aggregate /s", "/s", depends_on=["12", "13[2]"],
                                       queue="hpc", mem_unit="suffix")
    lines = text.splitlines()
    assert '#BSUB -w "ended(12) && ended(13)"' in lines
    assert "#BSUB -o /s/aggregate_%J.out" in lines and "#BSUB -q hpc" in lines
    assert not any(line.startswith("#BSUB -gpu") for line in lines)


# -------------------------------------------------------------------------------------------- quoting

NASTY = st.text(alphabet=st.sampled_from(list("ab ;$()'\"\n`\\|&<>*?~#!{}=-_./")), min_size=1, max_size=24)
NO_BSUB = '"\\\n\r'  # characters a #BSUB line cannot carry: refused, never mangled


def _run_script(text: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LSB_JOBID": "77", "LSB_JOBINDEX": "3"}
    return subprocess.run(["bash", "-c", text], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=NASTY)
def test_env_values_arrive_exactly(tmp_path: Path, value: str) -> None:
    out = tmp_path / "value.txt"
    text = make_bsub_string(f"printf %s \"$PIPELINE_X\" > {shlex.quote(str(out))}", tmp_path / "logs",
                             env={"PIPELINE_X": value}, map_count=5)
    (tmp_path / "logs").mkdir(exist_ok=True)
    assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0
    res = _run_script(text, tmp_path)
    assert res.returncode == 0, res.stderr
    assert out.read_text() == value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=NASTY)
def test_folder_arrives_exactly_or_is_refused(tmp_path: Path, value: str) -> None:
    folder = tmp_path / value.replace("/", "_")
    ex = LsfExecutor(folder, python="printf '%s\\n'")
    try:
        text = make_bsub_string(ex._submitit_command_str, folder, map_count=5)
    except LsfConfigError as e:
        assert any(c in str(folder) for c in NO_BSUB) and "folder" in str(e)
        return
    assert not any(c in str(folder) for c in NO_BSUB)
    assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0
    command = text.rstrip("\n").splitlines()[-1]
    assert shlex.split(command)[-1] == str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    res = _run_script(text, tmp_path)
    assert res.returncode == 0, res.stderr
    log = folder / "77_3_0_log.out"  # LSF's %J_%I, written by the script's own redirection
    assert log.read_text().splitlines()[-1] == str(folder)


@settings(max_examples=30, deadline=None)
@given(value=NASTY)
def test_aggregate_command_quoted(value: str) -> None:
    sweep = "/tmp/" + value.replace("/", "_")
    command = f"python -m pipeline.cli aggregate {shlex.quote(sweep)}"
    try:
        text = make_aggregate_bsub_string(command, sweep, depends_on=["5"])
    except LsfConfigError:
        assert any(c in sweep for c in NO_BSUB)
        return
    assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0
    assert shlex.split(text.rstrip("\n").splitlines()[-1])[-1] == sweep
