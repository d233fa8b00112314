"""The ``pipeline`` command: watch a sweep, read its logs, compare and aggregate runs, use the best model.

    pipeline status  SWEEP                     one line per job, one scheduler query for the whole sweep
    pipeline watch   SWEEP                     live view until every job has ended, then the results table
    pipeline logs    SWEEP [JOB] [-f] [--err]  a job's log (bpeek while LSF still buffers); no JOB: failures
    pipeline rerun   SWEEP --failed [OVERRIDES] resubmit the failed jobs into their run dirs (one batch)
    pipeline results SWEEP [SWEEP ...]         compare table (--by-seed, --metric, --format md|csv|json|latex)
    pipeline aggregate SWEEP                   SWEEP/results/{runs.csv,summary.*,results.json,*.png,report.html}
    pipeline best    SWEEP                     path of the best run's checkpoints/best
    pipeline predict RUN "text"                label + probabilities from a fine-tuned checkpoint
    pipeline evaluate RUN --data FILE          accuracy / macro-F1 / per class on a labelled file
    pipeline data    FILE [OVERRIDES]          what cleaning keeps and drops, classes, token lengths
    pipeline clean   SWEEP [--yes]             remove all but the best runs' checkpoints (dry run first)
    pipeline serve   RUN [--port 8000]         HTTP API + web page for the best model (pipeline/serve/)
    pipeline prefetch MODEL_ID                 download a hub model once so that jobs run offline
    pipeline doctor [--require-gpu]            can torch train on this node's GPUs? one line per problem

Only typer is imported at start-up; everything else (rich, the results reader, torch, transformers,
matplotlib, scikit-learn, pandas) is imported inside the command that needs it, so ``pipeline --help``
and ``pipeline status`` answer in a fraction of a second. Errors are one line on stderr: exit 2 for bad
input (not a sweep, unknown metric), exit 1 when something failed.
"""

import os
import sys
import time
from pathlib import Path

import typer

from pipeline import rundir

app = typer.Typer(
    name="pipeline",
    help="Watch, compare and use the runs of BERT fine-tuning sweeps (LSF, Slurm or local).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's help: paragraphs reflowed to the terminal, flags without a <bool> type
)

FORMATS = ("table", "md", "csv", "json", "latex")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"pipeline {version('bert-hpc-pipeline')}")
        except PackageNotFoundError:
            print("pipeline (not installed: run `make install`)")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Watch, compare and use the runs of BERT fine-tuning sweeps (LSF, Slurm or local)."""
METRIC_HELP = "Metric to rank by: val_macro_f1, val_accuracy, val_loss, test_macro_f1, wall_time_s, gpu_hours, ..."


# ---------------------------------------------------------------------------------------------- helpers


def _console(stderr: bool = False):
    from pipeline.results.tables import console

    return console(stderr)


def _fail(message: str, code: int = 2) -> None:
    """One line on stderr, then exit (2: bad input, 1: something failed)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _load_sweeps(paths: list[Path]):
    from pipeline.results import results as R

    try:
        return R.load_sweeps(paths)
    except R.NotASweepError as e:
        _fail(str(e))


def _check_mode(mode: str | None) -> None:
    if mode is not None and mode not in ("max", "min"):
        _fail(f"--mode must be max or min, not {mode!r}")


def _check_metric(metric: str, runs) -> None:
    from pipeline.results import results as R

    try:
        R.check_metric(metric, runs)
    except R.UnknownMetricError as e:
        _fail(str(e))


def _disk_line(runs) -> str:
    from pipeline.train.retention import disk_line

    return disk_line(runs)


# ----------------------------------------------------------------------------------------------- status


@app.command()
def status(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory or a single run directory."),
    metric: str = typer.Option("val_macro_f1", "--metric", "-m", help="Validation metric shown as 'best'."),
    no_scheduler: bool = typer.Option(False, "--no-scheduler", help="Do not ask the scheduler; run dirs only."),
    columns: str | None = typer.Option(None, "--columns", "-c", help="Columns to show, comma-separated: job, "
                                       "job_id, state, scheduler, runtime, epoch, step, eta, best, note."),
) -> None:
    """Each job's state, progress, ETA and best metric.

    One line per job: scheduler id, state, runtime, epoch, step/total, ETA, best val metric so far.
    ETAs come from the job's progress.json: the mean step time since its last (re)start.

    Asks the scheduler once for the whole sweep (bjobs / sacct / pid check). Exit code 1 if any job
    failed or has a corrupt metrics.json.
    """
    from pipeline.launch import sweep_status as S
    from pipeline.results import views
    from pipeline.results.tables import UnknownColumnError, show

    (sw,) = _load_sweeps([sweep])
    _check_metric(metric, sw.runs)
    answer = S.Answer(sw.scheduler) if no_scheduler else S.query_sweep(sw)
    if answer.warning:
        _warn(answer.warning)
    rows = S.sweep_status(sw, answer, metric)

    out = _console()
    pick = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    try:
        show(out, views.status_grid(rows, metric, f"{sw.path}  ({sw.scheduler})"), pick)
    except UnknownColumnError as e:
        _fail(str(e))
    counts: dict[str, int] = {}
    for st in rows:
        counts[st.state] = counts.get(st.state, 0) + 1
    order = ("completed", "running", "requeued", "pending", "failed", "corrupt", "missing")
    out.print(f"{len(rows)} jobs: " + ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s)))
    out.print(_disk_line(sw.runs))
    agg = S.aggregate_state(sw, answer)
    if agg:
        out.print(f"aggregate job {sw.meta.get('aggregate_job_id')}: {agg}")
    if S.has_failures(rows):
        raise typer.Exit(1)


@app.command()
def watch(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory."),
    metric: str = typer.Option("val_macro_f1", "--metric", "-m", help="Validation metric shown (last, best)."),
    interval: float | None = typer.Option(None, "--interval", "-i",
                                          help="Seconds between refreshes (one scheduler query each). "
                                               "Default: 1 for local sweeps, 10 on a cluster."),
) -> None:
    """Follow a sweep live until every job has ended.

    Then prints the results table (exit 1 if any job failed). One row per job: state, step/total with a
    bar, samples/s, ETA, latest and best validation metric; the sweep's totals and best run at the top.
    Not on a terminal: one plain line per change.
    """
    from pipeline.results import results as R
    from pipeline.results import views
    from pipeline.results import watch as W

    (sw,) = _load_sweeps([sweep])
    _check_metric(metric, sw.runs)
    try:
        snap = W.watch(sweep, metric, interval)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    views.print_results(_console(), R.run_table(snap.sweep.runs, metric), str(sw.path))
    if any(j.state in R.BAD_STATES for j in snap.jobs):
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------------- logs


def _tail_lines(path: Path, n: int | None) -> str:
    """The last ``n`` lines of a file (all of it for n in (None, 0)), reading only the end of big files."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if not n:
            f.seek(0)
            data = f.read()
        else:
            block, data = 65536, b""
            while size > 0 and data.count(b"\n") <= n:
                step = min(block, size)
                size -= step
                f.seek(size)
                data = f.read(step) + data
    text = data.decode("utf-8", "replace")
    if n:
        text = "".join(text.splitlines(keepends=True)[-n:])
    return text


def _write(text: str) -> None:
    sys.stdout.write(text)
    if text and not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def _run_finished(run) -> bool:
    return run.run_dir is not None and rundir.metrics_json(run.run_dir).is_file()


def _follow(path: Path, run, n: int | None, poll: float = 0.5, idle_after_end: float = 1.0) -> None:
    """Print the tail, then what is appended, until Ctrl-C or the run has ended and the log is quiet."""
    try:
        while not path.exists():  # a pending job: wait for its log to appear
            if _run_finished(run):
                _fail(f"{path} does not exist and the run has ended", 1)
            time.sleep(poll)
        sys.stdout.write(_tail_lines(path, n))
        sys.stdout.flush()
        pos = path.stat().st_size
        quiet_since = None
        while True:
            size = path.stat().st_size
            if size < pos:  # truncated (requeued job): start over
                pos = 0
            if size > pos:
                with open(path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read(size - pos)
                pos = size
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
                quiet_since = None
            elif _run_finished(run):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= idle_after_end:
                    return
            time.sleep(poll)
    except KeyboardInterrupt:
        return


def _log_candidates(run, err: bool) -> list[Path]:
    paths: list[Path] = []
    declared = run.stderr if err else run.stdout
    if declared:
        paths.append(Path(declared))
    if run.run_dir is not None:
        paths.append(run.run_dir / rundir.RUN_LOG)
        paths += sorted(p for p in run.run_dir.glob("*.log") if p.name != rundir.RUN_LOG)
    return paths


def _failure_log(run) -> Path | None:
    for p in [*_log_candidates(run, True), *_log_candidates(run, False)]:
        if p.is_file() and p.stat().st_size > 0:
            return p
    return None


def _bpeek(argv: list[str], follow: bool, n: int | None) -> bool:
    """The backend's live view of a job's log (``bpeek [-f] ID``: LSF buffers -o output until the job ends):
    True if it answered."""
    import subprocess

    job_id = argv[-1]
    try:
        if follow:
            return subprocess.run(argv).returncode == 0
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired) as e:
        _warn(f"{argv[0]} {job_id}: {e}")
        return False
    except KeyboardInterrupt:
        return True
    if p.returncode != 0:
        said = (p.stderr or p.stdout).strip().splitlines()
        _warn(f"{argv[0]} {job_id}: {said[0] if said else f'exit code {p.returncode}'}")
        return False
    text = p.stdout
    if n:
        text = "".join(text.splitlines(keepends=True)[-n:])
    _write(text)
    return True


def _find_run(sw, job: str):
    for run in sw.runs:
        if run.label == job or run.name == job or (run.job_id and run.job_id == job):
            return run
    _fail(f"no job {job!r} in {sw.path} (jobs: {', '.join(r.label for r in sw.runs) or 'none'})")


@app.command()
def logs(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory or a single run directory."),
    job: str | None = typer.Argument(None, help="Job number (or scheduler id). Omit: tails of all failed jobs."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing what is appended."),
    err: bool = typer.Option(False, "--err", help="The scheduler's stderr file instead of stdout."),
    lines: int | None = typer.Option(None, "--lines", "-n", help="Last N lines (0: all). Default 100; 20 per failure."),
) -> None:
    """Print or follow a job's log (no JOB: the failed jobs' logs).

    The scheduler's stdout/stderr from sweep.json, else <run>/run.log.

    For LSF, while the -o file does not exist yet (LSF writes it at job end), `bpeek` shows the output.
    """
    from pipeline.launch import sweep_status as S
    from pipeline.results import results as R

    (sw,) = _load_sweeps([sweep])
    if job is None:
        answer = S.query_sweep(sw)
        if answer.warning:
            _warn(answer.warning)
        failed = [st for st in S.sweep_status(sw, answer) if st.state in R.BAD_STATES]
        if not failed:
            print(f"no failed jobs in {sw.path}")
            return
        n = 20 if lines is None else lines
        for st in failed:
            log = _failure_log(st.run)
            where = str(log) if log else "no log found"
            print(f"==> job {st.run.label} ({st.run.job_id or 'no job id'}) {st.state.upper()}: "
                  f"{st.note or 'no error recorded'}  [{where}]")
            if log:
                _write(_tail_lines(log, n))
        return

    run = _find_run(sw, job)
    n = 100 if lines is None else lines
    candidates = _log_candidates(run, err)
    declared = Path(run.stderr if err else run.stdout) if (run.stderr if err else run.stdout) else None
    if declared is not None and declared.is_file():
        return _follow(declared, run, n) if follow else _write(_tail_lines(declared, n))
    be = S.sweep_backend(sw)
    peek = be.peek_command(run.job_id, follow) if be is not None and run.job_id else None
    if peek and not _run_finished(run):
        if _bpeek(peek, follow, n):
            return
    for path in candidates:
        if path.is_file():
            if declared is not None:
                _warn(f"{declared} does not exist yet; showing {path}")
            return _follow(path, run, n) if follow else _write(_tail_lines(path, n))
    if follow and declared is not None:
        return _follow(declared, run, n)  # waits for the file to appear
    looked = ", ".join(str(p) for p in candidates) or "nothing to look at"
    _fail(f"no log for job {run.label} yet (state {run.state}; looked at {looked})", 1)


# ------------------------------------------------------------------------------------------------ rerun


@app.command()
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

    if not failed:
        _fail("say which jobs to rerun: --failed (the failed, corrupt and missing ones; --job N narrows it)")
    try:
        code = RR.rerun(sweep, overrides or [], jobs=job or None, dry_run=dry_run)
    except RR.RerunError as e:
        _fail(str(e), e.code)
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------------------------------------- results


def _baselines(sweeps) -> list[dict]:
    """One TF-IDF + logistic-regression row per dataset of each sweep (cached under SWEEP/results)."""
    from pipeline.results import baseline as B

    out = []
    for sw in sweeps:
        groups: dict[tuple, object] = {}
        for run in sw.runs:
            key = tuple(sorted((k, v) for k, v in run.params.items() if k == "data" or k.startswith("data.")))
            if run.run_dir is not None and rundir.hydra_file(run.run_dir).is_file():
                groups.setdefault(key, run)
        for run in groups.values():
            cache = sw.path / rundir.RESULTS_DIR if os.access(sw.path, os.W_OK) else Path(
                os.environ.get("PIPELINE_OUTPUT_ROOT", "outputs")) / ".cache"
            try:
                result = B.baseline_for_run(run.run_dir, cache, run.info.get("data_sha256"))
            except Exception as e:  # the table still prints without the baseline
                _warn(f"baseline for {sw.name} (from {run.run_dir}): {str(e).strip().splitlines()[:1]}")
                continue
            out.append({"sweep": sw.name, "metrics": B.baseline_metrics(result),
                        "label": f"{B.NAME} ({result.get('dataset')}, C={result.get('C')})"})
    return out


def _metric_columns(cols: list[str] | None, runs, any_column: bool) -> list[str] | None:
    """The metrics among ``--columns`` (short headers like val_f1 too); the table format takes any column."""
    from pipeline.results import results as R
    from pipeline.results.views import SHORT_METRIC

    if not cols:
        return None
    full = {short: name for name, short in SHORT_METRIC.items()}
    present = set(R.metrics_present(runs)) | R.STANDARD_METRICS
    out = []
    for col in cols:
        name = full.get(col, col)
        if name in present:
            out.append(name)
        elif not any_column:
            _check_metric(col, runs)
    return out or None


@app.command()
def results(
    sweeps: list[Path] = typer.Argument(..., help="One or more sweep (or run) directories, side by side."),
    by_seed: bool = typer.Option(False, "--by-seed", help="One row per configuration: mean ± std over seeds."),
    metric: str = typer.Option("val_macro_f1", "--metric", "-m", help=METRIC_HELP),
    mode: str | None = typer.Option(None, "--mode", help="max or min (default: min for losses and times)."),
    all_params: bool = typer.Option(False, "--all-params", help="Show every override, not only those that vary."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, md, csv, json or latex."),
    columns: str | None = typer.Option(
        None, "--columns", "-c", help="Columns to show, in this order, comma-separated: metrics (val_macro_f1 or "
        "its header val_f1, ...), override names, job, state, error, ... (md/csv/json/latex: metrics only)."),
    baseline: bool = typer.Option(False, "--baseline", help="Add a TF-IDF + logistic-regression row per dataset."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Compare runs: one row each, or one per configuration.

    --by-seed: one row per configuration, mean ± std over its seeds.

    The best row is marked; columns that are empty or the same in every row are named above the table
    instead of shown, and columns that do not fit the terminal are named too (--columns picks them).
    """
    from pipeline.results import results as R

    _check_mode(mode)
    if fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    sws = _load_sweeps(sweeps)
    runs = [r for sw in sws for r in sw.runs]
    _check_metric(metric, runs)
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    metric_cols = _metric_columns(cols, runs, fmt == "table" and output is None)
    base = _baselines(sws) if baseline else None
    build = R.seed_table if by_seed else R.run_table
    table = build(runs, metric, mode, all_params, metric_cols, base)
    if fmt == "table" and output is None:
        from pipeline.results import views
        from pipeline.results.tables import UnknownColumnError

        try:
            views.print_results(_console(), table, ", ".join(str(sw.path) for sw in sws), cols)
        except UnknownColumnError as e:
            _fail(str(e))
        _console().print(_disk_line(runs))
        return
    text = R.FORMATTERS[fmt](table) if fmt != "table" else R.to_markdown(table)
    if output is not None:
        from pipeline import atomic

        atomic.write_text(output, text)
        print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@app.command()
def aggregate(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory."),
    metric: str = typer.Option("val_macro_f1", "--metric", "-m", help=METRIC_HELP),
    mode: str | None = typer.Option(None, "--mode", help="max or min."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default SWEEP/results)."),
) -> None:
    """Write the sweep's results folder: tables and plots.

    SWEEP/results/{runs.csv, summary.csv, summary.md, results.json, curves.png, final.png, report.html}.
    """
    from pipeline.results import results as R

    _check_mode(mode)
    (sw,) = _load_sweeps([sweep])
    _check_metric(metric, sw.runs)
    paths = R.aggregate(sw, metric, mode, out)
    for p in paths.values():
        print(p)


@app.command()
def best(
    sweeps: list[Path] = typer.Argument(..., help="Sweep (multirun) directories."),
    metric: str = typer.Option("val_macro_f1", "--metric", "-m", help=METRIC_HELP),
    mode: str | None = typer.Option(None, "--mode", help="max or min."),
) -> None:
    """Print the best run's checkpoint folder.

    The checkpoints/best folder of the best completed run, by --metric.
    """
    from pipeline.atomic import resolve_dir
    from pipeline.results import results as R

    _check_mode(mode)
    sws = _load_sweeps(sweeps)
    runs = [r for sw in sws for r in sw.runs]
    _check_metric(metric, runs)
    run = R.best_run(runs, metric, mode)
    if run is None or run.run_dir is None:
        _fail(f"no completed run reports {metric} yet", 1)
    ckpt = resolve_dir(rundir.checkpoint_dir(run.run_dir, rundir.BEST_CHECKPOINT))
    if ckpt is None:
        _fail(f"best run {run.run_dir} ({metric}={run.metrics[metric]:.4f}) has no checkpoints/best", 1)
    print(ckpt)


# ---------------------------------------------------------------------------------------------- predict


@app.command()
def predict(
    path: Path = typer.Argument(..., help="Checkpoint folder, run directory (uses checkpoints/best) or sweep."),
    texts: list[str] | None = typer.Argument(None, help="Texts to classify."),
    file: Path | None = typer.Option(None, "--file", help="More texts, one per line ('-' = stdin)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    batch_size: int = typer.Option(32, "--batch-size"),
    max_length: int | None = typer.Option(None, "--max-length",
                                          help="Default: the run's trainer.max_length, else 512."),
) -> None:
    """Label texts with a fine-tuned checkpoint (offline).

    One line per text: the label, its probability and the start of the text (the other classes'
    probabilities too when the terminal is wide enough; --format json has them all).
    """
    if fmt not in ("table", "json"):
        _fail(f"--format must be table or json, not {fmt!r}")
    items = list(texts or [])
    if file is not None:
        if str(file) == "-":
            raw = sys.stdin.read()
        elif not file.is_file():
            _fail(f"{file}: no such file")
        else:
            raw = file.read_text(encoding="utf-8")
        items += [line for line in raw.splitlines() if line.strip()]
    if not items:
        _fail('nothing to classify: pass texts ("some text") or --file texts.txt')
    from pipeline.models import predict as P

    try:
        clf = P.Classifier.load(path, max_length)
    except P.CheckpointNotFoundError as e:
        _fail(str(e))
    rows = clf.predict(items, batch_size)
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from pipeline.results import views
    from pipeline.results.tables import show

    show(_console(), views.predict_grid(rows, clf.labels, str(clf.checkpoint)))


@app.command()
def evaluate(
    path: Path = typer.Argument(..., help="Checkpoint folder, run directory or sweep (its best run)."),
    data: Path = typer.Option(..., "--data", help="Labelled CSV/TSV/JSONL/Parquet file."),
    text_columns: str | None = typer.Option(None, "--text-columns", help="Comma-separated; default: the run's."),
    label_column: str | None = typer.Option(None, "--label-column", help="Default: the run's (else 'label')."),
    batch_size: int = typer.Option(32, "--batch-size"),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N rows."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Accuracy, macro-F1 and per-class scores on a labelled file.

    Of the checkpoint given: a checkpoint folder, a run (its checkpoints/best) or a sweep (its best run).
    """
    if fmt not in ("table", "json"):
        _fail(f"--format must be table or json, not {fmt!r}")
    if not data.is_file():
        _fail(f"{data}: no such file")
    from pipeline.errors import PipelineError
    from pipeline.models import predict as P

    cols = [c.strip() for c in text_columns.split(",") if c.strip()] if text_columns else None
    try:
        result = P.evaluate(path, data, cols, label_column, batch_size, limit)
    except (P.CheckpointNotFoundError, PipelineError, ValueError) as e:
        _fail(str(e).strip().splitlines()[0])
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    print(f"{result['checkpoint']} on {result['data']} (n={result['n']}): "
          f"accuracy={result['accuracy']:.4f} macro_f1={result['macro_f1']:.4f}")
    from pipeline.results import class_metrics

    print("\n".join(class_metrics.lines(result["classes"])))
    seen = result["overlap"]
    if seen.get("checked") and seen["in_train"]:
        _warn(f"{seen['in_train']} of {result['n']} texts ({seen['share']:.1%}) in {data.name} are in the run's "
              "training split: these scores overstate how the model does on new text")
    elif not seen.get("checked"):
        _warn(f"could not check {data.name} against the run's training split: {seen.get('note')}")


# ------------------------------------------------------------------------------------- data and disk


@app.command("data")
def data_cmd(
    file: str = typer.Argument(..., help="Labelled CSV/TSV/JSONL/Parquet file (sets data.file)."),
    overrides: list[str] | None = typer.Argument(
        None, help="Hydra overrides as for run.py: data=csv data.text_columns=[title,body] data.label_column=2"),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """What training would see in a data file.

    Without training: rows read, dropped per reason, duplicates, class counts, token lengths
    (p50/p90/p99) and the share truncated at trainer.max_length. Overrides as for run.py."""
    if fmt not in ("table", "json"):
        _fail(f"--format must be table or json, not {fmt!r}")
    from pipeline.data.data_report import report_for_file
    from pipeline.errors import PipelineError

    try:
        report, warning, error = report_for_file(file, overrides or [])
    except PipelineError as e:
        _fail(str(e).strip().splitlines()[0])
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        from pipeline.data.data_report import lines

        print("\n".join(lines(report)))
    if warning:
        _warn(warning)
    if error:
        _fail(f"training would stop here: {error}")


@app.command()
def clean(
    sweep: Path = typer.Argument(..., help="Sweep (multirun) directory or a single run directory."),
    keep: int = typer.Option(1, "--keep", "-k", help="How many of the best completed runs keep their model."),
    metric: str = typer.Option("val_macro_f1", "--metric", "-m", help=METRIC_HELP),
    mode: str | None = typer.Option(None, "--mode", help="max or min."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove (without it: only list what would go)."),
) -> None:
    """Remove all but the best runs' checkpoints.

    Every completed run except the best --keep ones loses checkpoints/ (the kept ones their resume state).
    Runs that are not completed keep everything (a failed run resumes from checkpoints/last). Lists what it
    would remove unless --yes."""
    from pipeline.train import retention

    _check_mode(mode)
    if keep < 0:
        _fail(f"--keep must be 0 or more, not {keep}")
    (sw,) = _load_sweeps([sweep])
    _check_metric(metric, sw.runs)
    plan, kept = retention.clean_plan(sw.runs, metric, mode, keep)
    for run in kept:
        print(f"keep   job {run.label}: checkpoints/best ({metric}={run.metrics[metric]:.4f})")
    for item in plan:
        print(f"{'remove' if yes else 'would remove'} job {item.run_label}: "
              f"{item.path.relative_to(sw.path) if item.path.is_relative_to(sw.path) else item.path} "
              f"({retention.human_bytes(item.bytes)}; {item.why})")
    total = sum(item.bytes for item in plan)
    if not plan:
        print("nothing to remove")
    elif yes:
        freed = retention.apply(plan)
        print(f"freed {retention.human_bytes(freed)}")
    else:
        print(f"dry run: {retention.human_bytes(total)} would be freed; "
              f"rerun with --yes to remove: pipeline clean {sweep} --yes")
    print(_disk_line(sw.runs))


# ------------------------------------------------------------------------------------------------ serve


@app.command()
def serve(
    path: Path = typer.Argument(..., help="Checkpoint folder, run directory or sweep (its best run)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: all)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    max_texts: int = typer.Option(64, "--max-texts", min=1, help="Most texts per request."),
    max_body: int = typer.Option(1 << 20, "--max-body", min=1024, help="Largest request body in bytes."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda, cuda:1, ..."),
) -> None:
    """Serve the best model over HTTP: a JSON API and a web page.

    The model is loaded once, then: POST /predict (one text or a list), GET /health, GET /model, a page at
    / to paste a text into, and the API docs at /docs. See docs/serve.md.
    """
    from pipeline.models import predict as P

    try:
        clf = P.Classifier.load(path, device=device)
    except P.CheckpointNotFoundError as e:
        _fail(str(e))
    except (RuntimeError, AssertionError) as e:  # --device foo; --device cuda without CUDA (an AssertionError)
        _fail(f"--device {device}: {str(e).strip().splitlines()[0]}")
    from pipeline.serve import Limits, run

    run(clf, host, port, Limits(max_texts=max_texts, max_body_bytes=max_body, batch_size=batch_size))


# --------------------------------------------------------------------------------------------- prefetch


@app.command()
def prefetch(
    model: str = typer.Argument(..., help="Hugging Face hub id, e.g. bert-base-uncased."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Default: $HF_HOME/hub."),
) -> None:
    """Download a hub model once, so that jobs run offline.

    Model and tokenizer, on a login node; jobs then load it with HF_HUB_OFFLINE=1.
    """
    from pipeline.errors import PipelineError
    from pipeline.models.prefetch import prefetch as fetch

    try:
        folder = fetch(model, str(cache_dir) if cache_dir else None)
    except PipelineError as e:
        _fail(str(e), 1)
    print(folder)


@app.command()
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


if __name__ == "__main__":
    app()
