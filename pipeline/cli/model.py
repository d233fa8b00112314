"""Using a model: ``pipeline predict``, ``evaluate``, ``serve`` and ``prefetch``.

torch and transformers are imported when one of these commands runs, never at start-up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from pipeline.cli.common import check_format, console, fail, warn
from pipeline.errors import first_line


def _texts(texts: list[str] | None, file: Path | None) -> list[str]:
    """The texts given, then the non-empty lines of ``--file`` ('-': stdin)."""
    items = list(texts or [])
    if file is not None:
        if str(file) == "-":
            raw = sys.stdin.read()
        elif not file.is_file():
            fail(f"{file}: no such file")
        else:
            raw = file.read_text(encoding="utf-8")
        items += [line for line in raw.splitlines() if line.strip()]
    if not items:
        fail('nothing to classify: pass texts ("some text") or --file texts.txt')
    return items


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
    check_format(fmt, ("table", "json"))
    items = _texts(texts, file)
    from pipeline.models import predict as P

    try:
        clf = P.Classifier.load(path, max_length)
    except P.CheckpointNotFoundError as e:
        fail(str(e))
    rows = clf.predict(items, batch_size)
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from pipeline.results import views
    from pipeline.results.tables import show

    show(console(), views.predict_grid(rows, clf.labels, str(clf.checkpoint)))


def _print_evaluation(result: dict, data: Path) -> None:
    """Scores, per-class lines, and a warning when the file overlaps the run's training split."""
    from pipeline.results import class_metrics

    print(f"{result['checkpoint']} on {result['data']} (n={result['n']}): "
          f"accuracy={result['accuracy']:.4f} macro_f1={result['macro_f1']:.4f}")
    print("\n".join(class_metrics.lines(result["classes"])))
    seen = result["overlap"]
    if seen.get("checked") and seen["in_train"]:
        warn(f"{seen['in_train']} of {result['n']} texts ({seen['share']:.1%}) in {data.name} are in the run's "
             "training split: these scores overstate how the model does on new text")
    elif not seen.get("checked"):
        warn(f"could not check {data.name} against the run's training split: {seen.get('note')}")


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
    check_format(fmt, ("table", "json"))
    if not data.is_file():
        fail(f"{data}: no such file")
    from pipeline.errors import PipelineError
    from pipeline.models import predict as P

    cols = [c.strip() for c in text_columns.split(",") if c.strip()] if text_columns else None
    try:
        result = P.evaluate(path, data, cols, label_column, batch_size, limit)
    except (P.CheckpointNotFoundError, PipelineError, ValueError) as e:
        fail(first_line(e))
    if fmt == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    _print_evaluation(result, data)


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
    from pipeline.errors import PipelineError
    from pipeline.models import predict as P

    try:
        clf = P.Classifier.load(path, device=device)
    except P.CheckpointNotFoundError as e:
        fail(str(e))
    except (RuntimeError, AssertionError, PipelineError) as e:  # --device foo; --device cuda without CUDA
        fail(f"--device {device}: {first_line(e)}")
    from pipeline.serve import Limits, run

    run(clf, host, port, Limits(max_texts=max_texts, max_body_bytes=max_body, batch_size=batch_size))


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
        fail(str(e), 1)
    print(folder)
