"""Looking after sweeps, data and nodes: ``pipeline rerun``, ``data``, ``clean`` and ``doctor``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from pipeline.cli.common import METRIC_HELP, check_format, check_mode, disk_line, fail, load_sweeps, metric_for, warn
from pipeline.errors import first_line


def rerun(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory with a sweep.json."),
    overrides: list[str] | None = typer.Argument(
        None, help="Hydra overrides for the rerun jobs (recorded): trainer.lr=3e-3, hydra.launcher.timeout_min=240"),
    failed: bool = typer.Option(False, "--failed", help="Resubmit the failed, corrupt and missing jobs."),
    job: list[int] | None = typer.Option(None, "--job", "-j", help="Only this job number (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be resubmitted; change nothing."),
) -> None:
    """Resubmit a sweep's failed jobs in one batch.

    One LSF array, Slurm array or set of local processes.

    Never a completed, pending or running job (one scheduler query decides, as in `status`). Each job lands
    in its own run directory and resumes from checkpoints/last; with overrides that change its config it
    starts over (the old attempt's files move to <run dir>/.rerun/<n>/). sweep.json gets the new job ids.
    """
    from pipeline.launch import rerun as RR
    from pipeline.search.rerun import is_study, rerun_workers

    if not failed:
        fail("say which jobs to rerun: --failed (the failed, corrupt and missing ones; --job N narrows it)")
    rerun = rerun_workers if is_study(sweep) else RR.rerun
    try:
        code = rerun(sweep, overrides or [], jobs=job or None, dry_run=dry_run)
    except RR.RerunError as e:
        fail(str(e), e.code)
    if code:
        raise typer.Exit(code)


def data(
    file: str = typer.Argument(..., help="Labelled CSV/TSV/JSONL/Parquet file (sets data.file)."),
    overrides: list[str] | None = typer.Argument(
        None, help="Hydra overrides as for run.py: data=csv data.text_columns=[title,body] data.label_column=2"),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """What training would see in a data file.

    Without training: rows read, dropped per reason, duplicates, class counts, token lengths
    (p50/p90/p99) and the share truncated at trainer.max_length. Overrides as for run.py."""
    check_format(fmt, ("table", "json"))
    from pipeline.data.data_report import lines, report_for_file
    from pipeline.errors import PipelineError

    try:
        report, warning, error = report_for_file(file, overrides or [])
    except PipelineError as e:
        fail(first_line(e))
    if fmt == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        print("\n".join(lines(report)))
    if warning:
        warn(warning)
    if error:
        fail(f"training would stop here: {error}")


def clean(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory or a single run directory."),
    keep: int = typer.Option(1, "--keep", "-k", help="How many of the best completed runs keep their model."),
    metric: str | None = typer.Option(None, "--metric", "-m", help=METRIC_HELP),
    mode: str | None = typer.Option(None, "--mode", help="max or min."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove (without it: only list what would go)."),
) -> None:
    """Remove all but the best runs' checkpoints.

    Every completed run except the best --keep ones loses checkpoints/ (the kept ones their resume state).
    Runs that are not completed keep everything (a failed run resumes from checkpoints/last). Lists what it
    would remove unless --yes."""
    from pipeline.train import retention

    check_mode(mode)
    if keep < 0:
        fail(f"--keep must be 0 or more, not {keep}")
    (sw,) = load_sweeps([sweep])
    metric = metric_for(metric, [sw])
    plan, kept = retention.clean_plan(sw.runs, metric, mode, keep)
    for run in kept:
        print(f"keep   job {run.label}: checkpoints/best ({metric}={run.metrics[metric]:.4f})")
    for item in plan:
        print(f"{'remove' if yes else 'would remove'} job {item.run_label}: "
              f"{item.path.relative_to(sw.path) if item.path.is_relative_to(sw.path) else item.path} "
              f"({retention.human_bytes(item.bytes)}; {item.why})")
    if not plan:
        print("nothing to remove")
    elif yes:
        print(f"freed {retention.human_bytes(retention.apply(plan))}")
    else:
        print(f"dry run: {retention.human_bytes(sum(item.bytes for item in plan))} would be freed; "
              f"rerun with --yes to remove: pipeline clean {sweep} --yes")
    print(disk_line(sw.runs))


def doctor(
    require_gpu: bool = typer.Option(False, "--require-gpu", help="Exit 1 unless a usable GPU is found."),
) -> None:
    """Check that this node's torch can use its GPUs.

    Prints torch's CUDA build, the driver, the GPUs and their architectures, bf16 support and the result of
    a tiny CUDA matmul; one line per problem with its fix."""
    from pipeline.train.doctor import doctor as run_doctor

    lines, code = run_doctor(require_gpu)
    print("\n".join(lines), flush=True)
    if code:
        raise typer.Exit(code)
