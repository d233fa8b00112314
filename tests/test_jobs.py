"""The hand-submitted job scripts in jobs/: shell syntax, #BSUB lines, and end to end under the fake LSF.

Under the fake LSF the scripts run as written (``bsub < jobs/<script>``); only the queue is overridden on
the bsub command line where the script asks for a GPU queue (command-line options beat #BSUB lines), the
training runs on CPU with model=tiny on 200 BBC rows, and the job's outputs go to tmp_path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bsub_lines import BsubLineError, parse_bsub_lines
from tests.conftest import ROOT, SHARED_DATA

JOBS = ROOT / "jobs"
SCRIPTS = ["train.bsub", "sweep.bsub", "aggregate.bsub"]
TINY_CPU = ["model=tiny", "data.max_rows=200", "trainer.max_length=64", "trainer.batch_size=8", "trainer.lr=3e-3",
            "trainer.log_every_steps=5", "trainer.device=cpu"]


# ----------------------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_is_valid_bash(name):
    r = subprocess.run(["bash", "-n", str(JOBS / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", SCRIPTS)
def test_bsub_lines_parse_and_come_before_any_command(name):
    text = (JOBS / name).read_text()
    opts = parse_bsub_lines(text, f"jobs/{name}")
    assert text.startswith("#!/bin/bash\n")
    given = {o: v for _, o, v in opts}
    assert {"-q", "-J", "-n", "-R", "-W", "-o", "-e"} <= set(given)
    assert "%J" in given["-o"] and "%J" in given["-e"] and given["-o"].startswith("logs/")
    if name != "train.bsub":
        assert given["-q"] == "hpc" and "-gpu" not in given


def test_train_bsub_asks_for_one_a100_for_24h_with_a_warning_signal():
    opts = {o: v for _, o, v in parse_bsub_lines((JOBS / "train.bsub").read_text())}
    assert opts["-q"] == "gpua100" and opts["-n"] == "4" and opts["-W"] == "24:00"
    assert opts["-gpu"] == "num=1:mode=exclusive_process"
    assert opts["-R"] == "rusage[mem=8GB] span[hosts=1]"
    assert (opts["-wa"], opts["-wt"]) == ("USR2", "10")


def test_parser_on_literal_lines():
    text = "\n".join([
        "#!/bin/bash",
        "# a comment with -q in it",
        '#BSUB -q gpuv100 -n 4   # two options on one line',
        "#BSUB -R 'select[gpu32gb]'",
        '#BSUB -R "rusage[mem=4GB]"',
        "#BSUBX not a directive",
        "#BSUB -N",
        "",
        "echo hi",
    ])
    assert parse_bsub_lines(text) == [(3, "-q", "gpuv100"), (3, "-n", "4"), (4, "-R", "select[gpu32gb]"),
                                      (5, "-R", "rusage[mem=4GB]"), (7, "-N", None)]


BAD_LINES = [
    ("-W 24:00", "-W 24h", "give [hours:]minutes"),
    ("-n 4", "-n four", "-n 'four'"),
    ('-gpu "num=1:mode=exclusive_process"', '-gpu "num=1:mode=exclusive"', "mode=exclusive is not"),
    ('-gpu "num=1:mode=exclusive_process"', '-gpus "num=1"',
     "'-gpus' is not a bsub option of LSF 10.1 (did you mean -gpu?)"),
    ('-R "rusage[mem=8GB] span[hosts=1]"', '-R "rusage[mem=8GB] span[hosts=1"', "unbalanced brackets"),
    ("-J bert-train", "-J", "-J needs a value"),
    ("-wa USR2", "-wa USR3", "give a signal name"),
    ("-o logs/train_%J.out", '-o "logs/train_%J.out', "check the quotes"),
]


@pytest.mark.parametrize("good, bad, says", BAD_LINES)
def test_a_bad_bsub_line_is_reported_with_its_line_number(tmp_path, good, bad, says):
    text = (JOBS / "train.bsub").read_text()
    lines = text.splitlines()
    (lineno,) = [i + 1 for i, line in enumerate(lines) if line == f"#BSUB {good}"]
    lines[lineno - 1] = f"#BSUB {bad}"
    copy = tmp_path / "train.bsub"
    copy.write_text("\n".join(lines) + "\n")
    with pytest.raises(BsubLineError) as e:
        parse_bsub_lines(copy.read_text(), str(copy))
    assert e.value.lineno == lineno
    assert str(e.value).startswith(f"{copy}:{lineno}: ") and says in str(e.value), str(e.value)


def test_misplaced_and_repeated_lines_are_reported():
    with pytest.raises(BsubLineError, match=r"^s:4: #BSUB below the first command \(line 3\)"):
        parse_bsub_lines("#!/bin/bash\n#BSUB -q hpc\nmodule load cuda\n#BSUB -n 4\n", "s")
    with pytest.raises(BsubLineError, match=r"^s:3: -q is given again \(first on line 2\)"):
        parse_bsub_lines("#!/bin/bash\n#BSUB -q hpc\n#BSUB -q gpua100\n", "s")
    with pytest.raises(BsubLineError, match="the command goes below #BSUB"):
        parse_bsub_lines("#BSUB python run.py\n", "s")


def test_checker_command_names_the_bad_line(tmp_path):
    bad = tmp_path / "mine.bsub"
    bad.write_text("#!/bin/bash\n#BSUB -q hpc\n#BSUB -W 24h\necho hi\n")
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "bsub_lines.py"), str(JOBS / "train.bsub"), str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout.startswith(f"{JOBS / 'train.bsub'}: -q gpua100 "), r.stdout
    assert r.stderr.strip() == f"{bad}:3: -W '24h': give [hours:]minutes, e.g. 24:00 or 90"


def test_aggregate_bsub_without_a_sweep_says_what_to_set(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run(["bash", str(JOBS / "aggregate.bsub")], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "set SWEEP" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------ under the fake LSF


@pytest.fixture
def job_env(fake_lsf, tmp_path, monkeypatch):
    """The submitting shell's environment: bsub hands it to the job."""
    if not (SHARED_DATA / "bbc_news.csv.gz").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}: set PIPELINE_DATA_DIR")
    settings = {
        "PIPELINE_PROJECT_DIR": str(ROOT), "PIPELINE_VENV": sys.prefix, "PIPELINE_MODULES": "",
        "PIPELINE_OUTPUT_ROOT": str(tmp_path / "outputs"), "PIPELINE_DATA_DIR": str(SHARED_DATA),
        "PIPELINE_PROCESSED_DIR": str(tmp_path / "processed"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
    }
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
    for k in ("OVERRIDES", "CLUSTER", "SWEEP_NAME", "SWEEP", "PIPELINE_RUN_DIR", "PIPELINE_CONDA_ENV",
              "PIPELINE_FAULTS", "WANDB_MODE"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "submit").mkdir()
    return tmp_path / "submit"


def submit(fake_lsf, cwd: Path, script: str, *options: str) -> int:
    return fake_lsf.submit(*options, script=(JOBS / script).read_text(), cwd=cwd)


def job_log(cwd: Path, kind: str, jobid: int) -> str:
    out = cwd / "logs" / f"{kind}_{jobid}.out"
    err = cwd / "logs" / f"{kind}_{jobid}.err"
    return (out.read_text() if out.exists() else "") + (err.read_text() if err.exists() else "")




@pytest.mark.lsf
@pytest.mark.slow
def test_train_bsub_runs_one_fine_tune(fake_lsf, job_env, monkeypatch, tmp_path):
    monkeypatch.setenv("OVERRIDES", " ".join([*TINY_CPU, "trainer.epochs=1"]))
    jobid = submit(fake_lsf, job_env, "train.bsub", "-q", "hpc")  # the CPU queue instead of gpua100
    fake_lsf.wait_all(timeout=240)
    log = job_log(job_env, "train", jobid)
    assert fake_lsf.stat(jobid) == "DONE", log
    job = fake_lsf.job(jobid)
    assert job["queue"] == "hpc" and job["gpu"] == "num=1:mode=exclusive_process" and job["ncores"] == 4
    run_dir = tmp_path / "outputs" / "jobs" / f"bert-train-{jobid}"
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "completed" and m["steps"] == 20
    assert "run completed" in log and "Successfully completed." in log
    assert json.loads((run_dir / "run_info.json").read_text())["job_id"] == str(jobid)
    assert not fake_lsf.calls("brequeue")


@pytest.mark.lsf
@pytest.mark.slow
def test_train_bsub_on_a_cpu_queue_trains_on_the_cpu(fake_lsf, job_env, monkeypatch, tmp_path):
    """Issue 22 item 8: on the CPU queue train.bsub said "this job was given 1 GPU(s)" (PIPELINE_GPUS
    defaulted to 1 whatever the queue). Now it asks for the GPUs its queue gives: none on hpc."""
    monkeypatch.setenv("OVERRIDES", " ".join([t for t in TINY_CPU if t != "trainer.device=cpu"] + ["trainer.epochs=1"]))
    monkeypatch.delenv("PIPELINE_GPUS", raising=False)
    jobid = submit(fake_lsf, job_env, "train.bsub", "-q", "hpc")
    fake_lsf.wait_all(timeout=240)
    log = job_log(job_env, "train", jobid)
    assert fake_lsf.stat(jobid) == "DONE", log
    assert "queue hpc, PIPELINE_GPUS=0" in log and "GPU(s)" not in log
    assert json.loads((tmp_path / "outputs" / "jobs" / f"bert-train-{jobid}" / "metrics.json").read_text())[
        "status"] == "completed"


@pytest.mark.lsf
def test_train_bsub_asked_for_a_gpu_it_cannot_use_names_pipeline_gpus_0(fake_lsf, job_env, monkeypatch, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    monkeypatch.setenv("OVERRIDES", " ".join([t for t in TINY_CPU if t != "trainer.device=cpu"]))
    monkeypatch.setenv("PIPELINE_GPUS", "1")  # asked for by hand on the CPU queue
    jobid = submit(fake_lsf, job_env, "train.bsub", "-q", "hpc")
    fake_lsf.wait_all(timeout=240)
    log = job_log(job_env, "train", jobid)
    assert fake_lsf.stat(jobid) == "EXIT", log
    cause = [ln for ln in log.splitlines() if "but cannot use them" in ln]
    assert cause and cause[-1].endswith("to train on the CPU instead: PIPELINE_GPUS=0 or trainer.device=cpu"), log
    assert not fake_lsf.calls("brequeue")  # a Python error, not a signal: never requeued


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_keep_jobs_off_the_hub(name):
    """Compute nodes need not reach the Hugging Face hub: every script exports HF_HUB_OFFLINE=1 unless the
    submitting shell set it (HF_HUB_OFFLINE=0 for a config that downloads, model.download=true)."""
    assert 'export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}' in (JOBS / name).read_text()


@pytest.mark.lsf
@pytest.mark.slow
def test_train_bsub_requeues_itself_at_the_warning_and_resumes(fake_lsf, job_env, monkeypatch, tmp_path):
    monkeypatch.setenv("OVERRIDES", " ".join([*TINY_CPU, "trainer.epochs=6", "trainer.checkpoint_every_steps=1000"]))
    jobid = submit(fake_lsf, job_env, "train.bsub", "-q", "hpc", "-J", "requeue-me")
    run_dir = tmp_path / "outputs" / "jobs" / f"requeue-me-{jobid}"
    deadline = time.time() + 180
    while time.time() < deadline and not (run_dir / "metrics.jsonl").exists():
        time.sleep(0.05)
    assert (run_dir / "metrics.jsonl").exists(), job_log(job_env, "train", jobid)
    assert fake_lsf.run("bkill", "-s", "USR2", str(jobid)).returncode == 0  # what -wa USR2 -wt 10 sends
    fake_lsf.wait_all(timeout=240)
    log = job_log(job_env, "train", jobid)
    assert fake_lsf.stat(jobid) == "DONE", log
    assert [c["argv"] for c in fake_lsf.calls("brequeue")] == [[str(jobid)]]
    assert fake_lsf.job(jobid)["elements"]["0"]["runs"] == 1
    assert "run-limit warning (SIGUSR2)" in log and "requeue 1/3" in log
    assert "TERM_REQUEUE_OWNER" in log and "run completed" in log
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["attempt"] == 2 and 0 < info["resumed_from_step"] < 120
    assert "resumed from checkpoints/last" in (run_dir / "run.log").read_text()
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "completed" and m["steps"] == 120 and m["attempts"] == 2
    assert (run_dir / ".requeues").read_text().strip() == "1"


@pytest.mark.lsf
@pytest.mark.slow
def test_sweep_bsub_launches_a_sweep_and_aggregate_bsub_redoes_its_results(fake_lsf, job_env, monkeypatch, tmp_path):
    monkeypatch.setenv("CLUSTER", "dtu_cpu")
    monkeypatch.setenv("SWEEP_NAME", "lr-grid")
    monkeypatch.setenv("OVERRIDES", " ".join([*TINY_CPU, "trainer.epochs=1", "trainer.lr=1e-3,3e-3"]))
    driver = submit(fake_lsf, job_env, "sweep.bsub")
    fake_lsf.wait_all(timeout=400)
    log = job_log(job_env, "sweep", driver)
    assert fake_lsf.stat(driver) == "DONE", log
    sweep = tmp_path / "outputs" / "multirun" / "lr-grid"
    assert "pipeline status" in log and str(sweep) in log
    jobs = fake_lsf.jobs()
    assert len(jobs) == 3, jobs  # the driver, the sweep's job array, the aggregation job
    assert all(el["stat"] == "DONE" for j in jobs.values() for el in j["elements"].values())
    runs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(runs) == 2
    assert all(json.loads((r / "metrics.json").read_text())["status"] == "completed" for r in runs)
    summary = sweep / "results" / "summary.md"
    assert summary.is_file()

    summary.unlink()
    monkeypatch.setenv("SWEEP", str(sweep))
    agg = submit(fake_lsf, job_env, "aggregate.bsub")
    fake_lsf.wait_all(timeout=240)
    assert fake_lsf.stat(agg) == "DONE", job_log(job_env, "aggregate", agg)
    assert summary.is_file() and "lr" in summary.read_text()
