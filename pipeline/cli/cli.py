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

The commands live in one module per family: :mod:`~pipeline.cli.follow` (status, watch, logs),
:mod:`~pipeline.cli.compare` (results, aggregate, best), :mod:`~pipeline.cli.model` (predict, evaluate,
serve, prefetch), :mod:`~pipeline.cli.maintenance` (rerun, data, clean, doctor); what they share is
:mod:`~pipeline.cli.common`. This module makes the typer app and registers them, in the order ``--help``
lists them.

Only typer is imported at start-up; everything else (rich, the results reader, torch, transformers,
matplotlib, scikit-learn, pandas) is imported inside the command that needs it, so ``pipeline --help``
and ``pipeline status`` answer in a fraction of a second. Errors are one line on stderr: exit 2 for bad
input (not a sweep, unknown metric), exit 1 when something failed.
"""

import typer

from pipeline.cli import compare, follow, maintenance, model

app = typer.Typer(
    name="pipeline",
    help="Watch, compare and use the runs of BERT fine-tuning sweeps (LSF, Slurm or local).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's help: paragraphs reflowed to the terminal, flags without a <bool> type
)


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


COMMANDS = (
    follow.status, follow.watch, follow.logs, maintenance.rerun,
    compare.results, compare.aggregate, compare.best,
    model.predict, model.evaluate, maintenance.data, maintenance.clean, model.serve, model.prefetch,
    maintenance.doctor,
)
for command in COMMANDS:
    app.command()(command)


if __name__ == "__main__":
    app()
