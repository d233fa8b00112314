"""The ``pipeline`` CLI on synthetic sweeps: status (with a stub bjobs), logs, results, best."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.cli import app
from tests.results.lsf_captures import bjobs_json
from tests.results.make_runs import grid_sweep, lsf_job, write_run, write_sweep_json
from tests.table_fit import table_rows

runner = CliRunner()

# what LSF 10.1 prints for: bjobs -a -o "jobid stat job_name exit_code" -json 1234 1240
BJOBS_JSON = bjobs_json('''    {
      "JOBID":"1240",
      "STAT":"PEND",
      "JOB_NAME":"aggregate",
      "EXIT_CODE":""
    }''')


def stub(bindir: Path, name: str, stdout: str, rc: int = 0, stderr: str = "") -> Path:
    """A fake scheduler command that prints captured output and records each call (one line each)."""
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / f"{name}.out").write_text(stdout)
    (bindir / f"{name}.err").write_text(stderr)
    calls = bindir / f"{name}.calls"
    script = bindir / name
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> "{calls}"\n'
        f'cat "{bindir / (name + ".out")}"\n'
        f'cat "{bindir / (name + ".err")}" >&2\n'
        f"exit {rc}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return calls


def calls_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def lsf_sweep(tmp_path):
    """Job 0 completed, 1 died (EXIT, no metrics.json), 2 running, 3 pending, 4 forgotten by bjobs."""
    root = tmp_path / "sweep"
    jobs = [lsf_job(root, n, [f"trainer.lr={n + 1}e-4", "seed=0"]) for n in range(5)]
    write_run(root / "0", jobs[0]["overrides"], job_id="1234[1]", scheduler="lsf")
    write_run(root / "1", jobs[1]["overrides"], state="running", job_id="1234[2]", scheduler="lsf")
    write_run(root / "2", jobs[2]["overrides"], state="running", job_id="1234[3]", scheduler="lsf")
    (root / "logs").mkdir()
    Path(jobs[1]["stdout"]).write_text("Sender: LSF System\nTERM_MEMLIMIT: job killed after reaching LSF memory "
                                       "usage limit.\nExited with exit code 1.\n")
    write_sweep_json(root, "lsf", jobs, gpus=1, aggregate_job_id="1240")
    return root


def test_status_lsf_one_bjobs_call(lsf_sweep, tmp_path, monkeypatch):
    calls = stub(tmp_path / "bin", "bjobs", BJOBS_JSON)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    result = runner.invoke(app, ["status", str(lsf_sweep)])
    assert calls_of(calls) == ["-a -o jobid stat job_name exit_code -json 1234 1240"]
    lines = table_rows(result.stdout)
    assert "COMPLETED" in lines["0"]
    assert "FAILED" in lines["1"] and "EXIT" in lines["1"] and "exit code 1" in lines["1"]
    assert "TERM_MEMLIMIT" in lines["1"]  # the reason, from the job's log
    assert "RUNNING" in lines["2"] and "PENDING" in lines["3"] and "MISSING" in lines["4"]
    assert "5 jobs: 1 completed, 1 running, 1 pending, 1 failed, 1 missing" in result.stdout
    assert "aggregate job 1240: PEND" in result.stdout
    assert result.exit_code == 1


def test_status_plain_bjobs_fallback(lsf_sweep, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    plain = ("JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME\n"
             "1234    s123456 RUN   hpc        n-62-30-1   n-62-31-7   train[2]   Jan  1 10:00\n"
             "1234    s123456 RUN   hpc        n-62-30-1   n-62-31-7   train[3]   Jan  1 10:00\n"
             "1234    s123456 PEND  hpc        n-62-30-1               train[4]   Jan  1 10:00\n")
    script = bindir / "bjobs"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> "{bindir}/calls"\n'
        'case "$*" in *-json*) echo "bjobs: illegal option -- json" >&2; exit 255;; esac\n'
        f"cat <<'EOF'\n{plain}EOF\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    result = runner.invoke(app, ["status", str(lsf_sweep)])
    assert len(calls_of(bindir / "calls")) == 2
    assert "1 pending" in result.stdout and "2 running" in result.stdout
    assert result.exit_code == 0  # nothing failed


def test_status_scheduler_down_warns_and_uses_run_dirs(lsf_sweep, tmp_path, monkeypatch):
    stub(tmp_path / "bin", "bjobs", "", rc=255, stderr="LSF is down. Please wait ...\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    result = runner.invoke(app, ["status", str(lsf_sweep)])
    assert "warning: bjobs failed" in result.stderr
    assert "1 completed, 2 running, 2 missing" in result.stdout
    assert result.exit_code == 0


def test_status_all_finished_asks_no_scheduler(tmp_path, monkeypatch):
    grid_sweep(tmp_path / "s", scheduler="lsf")
    calls = stub(tmp_path / "bin", "bjobs", BJOBS_JSON)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    result = runner.invoke(app, ["status", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert calls_of(calls) == []
    assert "4 jobs: 4 completed" in result.stdout


def test_status_slurm_one_sacct_call(tmp_path, monkeypatch):
    root = tmp_path / "s"
    grid_sweep(root, scheduler="slurm")
    meta = json.loads((root / "sweep.json").read_text())
    meta["jobs"].append({"job_num": 4, "job_id": "456_4", "overrides": ["trainer.lr=9e-4", "seed=0"]})
    (root / "sweep.json").write_text(json.dumps(meta))
    calls = stub(tmp_path / "bin", "sacct", "456_0|COMPLETED|0:0\n456_0.batch|COMPLETED|0:0\n456_[4]|PENDING|0:0\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    result = runner.invoke(app, ["status", str(root)])
    assert calls_of(calls) == ["-j 456 --format=JobID,State,ExitCode -P -n"]
    assert "4 completed, 1 pending" in result.stdout and result.exit_code == 0


def test_status_corrupt_shows_and_rest_prints(tmp_path):
    grid_sweep(tmp_path / "s")
    write_run(tmp_path / "s" / "4", ["trainer.lr=3e-4", "seed=0"], state="corrupt")
    result = runner.invoke(app, ["status", str(tmp_path / "s")])
    assert "CORRUPT" in result.stdout and result.stdout.count("COMPLETED") == 4
    assert result.exit_code == 1


def test_status_failed_exit_code(tmp_path):
    grid_sweep(tmp_path / "s")
    write_run(tmp_path / "s" / "4", ["trainer.lr=3e-4", "seed=0"], state="failed")
    write_run(tmp_path / "s" / "5", ["trainer.lr=3e-4", "seed=1"], state="running")
    result = runner.invoke(app, ["status", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert "RuntimeError: CUDA out of memory" in result.stdout and "RUNNING" in result.stdout


def test_logs_without_job_shows_failures(tmp_path):
    grid_sweep(tmp_path / "s")
    write_run(tmp_path / "s" / "4", ["trainer.lr=3e-4", "seed=0"], state="failed")
    (tmp_path / "s" / "4" / "run.log").write_text(
        "[INFO] start\n" + "".join(f"[INFO] step {i}\n" for i in range(50)) +
        "Traceback (most recent call last):\nRuntimeError: CUDA out of memory\n")
    result = runner.invoke(app, ["logs", str(tmp_path / "s")])
    assert result.exit_code == 0
    assert "job 4" in result.stdout and "FAILED" in result.stdout
    assert "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" in result.stdout  # the error line
    assert result.stdout.rstrip().endswith("RuntimeError: CUDA out of memory")  # the log's tail
    assert "[INFO] start" not in result.stdout  # only the last lines


def test_logs_no_failures(tmp_path):
    grid_sweep(tmp_path / "s")
    result = runner.invoke(app, ["logs", str(tmp_path / "s")])
    assert result.exit_code == 0 and "no failed jobs" in result.stdout


def test_logs_job_prefers_scheduler_log(tmp_path):
    grid_sweep(tmp_path / "s", scheduler="slurm")
    (tmp_path / "s" / ".submitit").mkdir()
    (tmp_path / "s" / ".submitit" / "1.out").write_text("a\nb\nc\n")
    (tmp_path / "s" / ".submitit" / "1.err").write_text("warning x\n")
    (tmp_path / "s" / "2" / "run.log").write_text("hydra log of job 2\n")
    out = runner.invoke(app, ["logs", str(tmp_path / "s"), "1", "-n", "2"])
    assert out.exit_code == 0 and out.stdout == "b\nc\n"
    assert runner.invoke(app, ["logs", str(tmp_path / "s"), "1", "--err"]).stdout == "warning x\n"
    # job 2's scheduler log does not exist: run.log
    out = runner.invoke(app, ["logs", str(tmp_path / "s"), "2"])
    assert "hydra log of job 2" in out.stdout
    bad = runner.invoke(app, ["logs", str(tmp_path / "s"), "77"])
    assert bad.exit_code == 2 and "no job '77'" in bad.stderr


def test_logs_follow_ends_when_run_has_ended(tmp_path):
    grid_sweep(tmp_path / "s")
    (tmp_path / "s" / "0" / "run.log").write_text("done\n")
    out = runner.invoke(app, ["logs", str(tmp_path / "s"), "0", "-f"])
    assert out.exit_code == 0 and out.stdout == "done\n"


def test_logs_lsf_running_uses_bpeek(lsf_sweep, tmp_path, monkeypatch):
    calls = stub(tmp_path / "bin", "bpeek", "<< output from stdout >>\nepoch 1 step 10\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    out = runner.invoke(app, ["logs", str(lsf_sweep), "2"])
    assert calls_of(calls) == ["1234[3]"]
    assert "epoch 1 step 10" in out.stdout and out.exit_code == 0


def test_results_unknown_metric_one_line_exit_2(tmp_path):
    grid_sweep(tmp_path / "s")
    out = runner.invoke(app, ["results", str(tmp_path / "s"), "--metric", "val_f2"])
    assert out.exit_code == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "val_macro_f1" in out.stderr and out.stdout == ""


def test_not_a_sweep_one_line_exit_2(tmp_path):
    (tmp_path / "x").mkdir()
    for cmd in ("results", "status", "logs", "aggregate", "best"):
        out = runner.invoke(app, [cmd, str(tmp_path / "x")])
        assert out.exit_code == 2, cmd
        assert len(out.stderr.strip().splitlines()) == 1 and "not a sweep" in out.stderr


def test_results_formats_via_cli(tmp_path):
    import pandas as pd

    grid_sweep(tmp_path / "s", gpus=1)
    write_run(tmp_path / "s" / "4", ["trainer.lr=3e-4", "seed=0"], state="failed")
    csv_out = runner.invoke(app, ["results", str(tmp_path / "s"), "--format", "csv"])
    df = pd.read_csv(io.StringIO(csv_out.stdout))
    assert len(df) == 5 and df.loc[df.state == "failed", "error"].iloc[0].startswith("RuntimeError")
    js = json.loads(runner.invoke(app, ["results", str(tmp_path / "s"), "--by-seed", "-f", "json"]).stdout)
    assert js["by_seed"] and js["total"]["gpu_hours"] == pytest.approx(4.0)
    md = runner.invoke(app, ["results", str(tmp_path / "s"), "-f", "md"]).stdout
    assert "|---" in md and "FAILED" in md and "total: 4.000 GPU hours" in md
    tex = runner.invoke(app, ["results", str(tmp_path / "s"), "-f", "latex"]).stdout
    assert "\\begin{tabular}" in tex
    table = runner.invoke(app, ["results", str(tmp_path / "s")])
    assert table.exit_code == 0 and "FAILED" in table.stdout and "RuntimeError: CUDA out of memory" in table.stdout
    assert "gpu_h" in table.stdout and "total: 4.000 GPU hours over 5 runs" in table.stdout
    out = tmp_path / "table.md"
    assert runner.invoke(app, ["results", str(tmp_path / "s"), "-f", "md", "-o", str(out)]).exit_code == 0
    assert out.read_text() == md
    assert runner.invoke(app, ["results", str(tmp_path / "s"), "-f", "xls"]).exit_code == 2


def test_results_multi_sweep_has_sweep_column(tmp_path):
    grid_sweep(tmp_path / "sweepA")
    grid_sweep(tmp_path / "sweepB", lrs=("5e-5",))
    out = runner.invoke(app, ["results", str(tmp_path / "sweepA"), str(tmp_path / "sweepB"), "-f", "csv",
                              "--by-seed"])
    import pandas as pd

    df = pd.read_csv(io.StringIO(out.stdout))
    assert set(df["sweep"]) == {"sweepA", "sweepB"} and len(df) == 3
    table = runner.invoke(app, ["results", str(tmp_path / "sweepA"), str(tmp_path / "sweepB")])
    assert "sweep" in table.stdout.splitlines()[2] and "sweepB" in table.stdout


def test_best_prints_checkpoint(tmp_path):
    expected = grid_sweep(tmp_path / "s")
    top = max(expected, key=lambda k: expected[k]["val_macro_f1"])
    low = min(expected, key=lambda k: expected[k]["val_macro_f1"])
    for k in (top, low):
        (tmp_path / "s" / str(k) / "checkpoints" / "best").mkdir(parents=True)
    out = runner.invoke(app, ["best", str(tmp_path / "s")])
    assert out.exit_code == 0 and out.stdout.strip() == str(tmp_path / "s" / str(top) / "checkpoints" / "best")
    out = runner.invoke(app, ["best", str(tmp_path / "s"), "--metric", "val_loss"])
    assert out.stdout.strip().endswith(f"{top}/checkpoints/best")  # lowest loss = best f1 here
    out = runner.invoke(app, ["best", str(tmp_path / "s"), "--metric", "val_macro_f1", "--mode", "min"])
    assert out.stdout.strip() == str(tmp_path / "s" / str(low) / "checkpoints" / "best")


def test_python_m_entry_point(tmp_path):
    import subprocess
    import sys

    grid_sweep(tmp_path / "s")
    p = subprocess.run([sys.executable, "-m", "pipeline.cli", "results", str(tmp_path / "s"), "-f", "csv"],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].startswith("rank,best,sweep")


def test_markup_like_text_is_shown_verbatim(tmp_path):
    grid_sweep(tmp_path / "s")
    write_run(tmp_path / "s" / "4", ["trainer.lr=3e-4", "seed=0", "data.text_columns=[title,text]"],
              state="failed", error="KeyError: '[/bold]' not found [red]")
    for cmd in (["status"], ["results"], ["results", "--by-seed"]):
        out = runner.invoke(app, [*cmd, str(tmp_path / "s")])
        assert "KeyError: '[/bold]' not found [red]" in out.stdout, cmd


def test_prefetch_offline_uncached_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = runner.invoke(app, ["prefetch", "acme/not-cached-model", "--cache-dir", str(tmp_path)])
    assert out.exit_code == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "HF_HUB_OFFLINE" in out.stderr
