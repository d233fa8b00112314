"""``pipeline status`` / ``logs`` against the fake LSF 10.1 (and its OpenLava dialect) in tests/fake_lsf."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipeline.cli.cli import app
from tests.results.make_runs import write_run, write_sweep_json
from tests.table_fit import table_rows

pytestmark = pytest.mark.lsf

SCRIPT = """#!/bin/sh
echo "hello from $LSB_JOBINDEX"
case $LSB_JOBINDEX in
  1) exit 0 ;;
  2) echo "RuntimeError: boom" >&2; exit 1 ;;
  *) sleep 60 ;;
esac
"""


def lsf_sweep(fake_lsf, root):
    """A real (fake) array: element 1 done, 2 exited 1, 3 running, 4 pending behind the %1 slot limit."""
    (root / "logs").mkdir(parents=True)
    jid = fake_lsf.submit("-J", "train[1-4]%1", "-o", str(root / "logs" / "%J_%I.out"), script=SCRIPT, cwd=root)
    fake_lsf.wait_for(jid, "RUN", index=3)
    jobs = []
    for num in range(4):
        out = str(root / "logs" / f"{jid}_{num + 1}.out")
        jobs.append({"job_num": num, "job_id": f"{jid}[{num + 1}]", "run_dir": str(root / str(num)),
                     "stdout": out, "stderr": out, "overrides": [f"trainer.lr={num + 1}e-4", "seed=0"]})
    write_run(root / "0", jobs[0]["overrides"], job_id=jobs[0]["job_id"], scheduler="lsf")
    write_run(root / "1", jobs[1]["overrides"], state="running", job_id=jobs[1]["job_id"], scheduler="lsf")
    write_run(root / "2", jobs[2]["overrides"], state="running", job_id=jobs[2]["job_id"], scheduler="lsf")
    write_sweep_json(root, "lsf", jobs, gpus=1, array_id=str(jid))
    return jid


def rows(stdout: str) -> dict[str, str]:
    return table_rows(stdout)


@pytest.mark.parametrize("dialect, bjobs_calls", [("lsf10", 1), ("openlava", 2)])
def test_status_on_fake_lsf(fake_lsf, tmp_path, dialect, bjobs_calls):
    root = tmp_path / "sweep"
    lsf_sweep(fake_lsf, root)
    fake_lsf.set_dialect(dialect)
    before = len(fake_lsf.calls("bjobs"))
    result = CliRunner().invoke(app, ["status", str(root)])
    assert len(fake_lsf.calls("bjobs")) - before == bjobs_calls  # one query (plus the plain fallback)
    r = rows(result.stdout)
    assert "COMPLETED" in r["0"]
    assert "FAILED" in r["1"] and "EXIT" in r["1"] and "RuntimeError: boom" in r["1"]
    assert "RUNNING" in r["2"] and "RUN" in r["2"]
    assert "PENDING" in r["3"] and "PEND" in r["3"]
    assert result.exit_code == 1


def test_logs_on_fake_lsf(fake_lsf, tmp_path):
    root = tmp_path / "sweep"
    lsf_sweep(fake_lsf, root)
    running = CliRunner().invoke(app, ["logs", str(root), "2"])  # -o not written yet: bpeek
    assert running.exit_code == 0 and "hello from 3" in running.stdout
    assert fake_lsf.calls("bpeek")
    failures = CliRunner().invoke(app, ["logs", str(root)])
    assert "job 1" in failures.stdout and "RuntimeError: boom" in failures.stdout
    assert "job 0" not in failures.stdout
