"""``results/report.html`` from ``pipeline aggregate`` on synthetic sweeps (no training, no browser)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

from pipeline import atomic
from pipeline.results import aggregation
from pipeline.results.report import confusion
from pipeline.results.runs import load_sweep, read_json
from tests.results.make_runs import grid_sweep, write_run


class Page(HTMLParser):
    """Rows per table id, image sources and outside references of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, int] = {}
        self.table: str | None = None
        self.in_body = False
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id")
        elif tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body and self.table:
            self.rows[self.table] = self.rows.get(self.table, 0) + 1
        elif tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith(("data:", "#")):
                self.external.append(a[key])

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_body = False


def parse(path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_is_self_contained_with_one_row_per_run(tmp_path):
    root = tmp_path / "sweep"
    grid_sweep(root, seeds=(0, 1, 2))
    write_run(root / "6", ["trainer.lr=3e-4", "seed=0"], state="failed")
    (root / "6" / "run.log").write_text("".join(f"line {i}\n" for i in range(100)) + "RuntimeError: boom\n")
    write_run(root / "7", ["trainer.lr=3e-4", "seed=1"], state="running", curve=[0.5], torn_line=True)
    paths = aggregation.aggregate(root)
    report = paths["report.html"]
    assert report == root / "results" / "report.html"
    page = parse(report)
    assert page.rows["runs"] == 8 and page.rows["configs"] == 3
    assert page.external == []  # nothing to fetch: opens offline, anywhere
    assert len(page.images) == 2
    for src in page.images:
        assert base64.b64decode(src.removeprefix("data:image/png;base64,"))[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.read_text()
    assert "RuntimeError: boom" in text and "line 99" in text and "line 50" not in text  # the log's tail
    assert "CUDA out of memory" in text  # the failed run's error line
    assert re.search(r"best by val_macro_f1 \(max\): job \d+", text)
    assert "no test_predictions.csv" in text  # synthetic runs have no predictions: said, not crashed


def test_confusion_from_metrics_json_or_from_predictions(tmp_path):
    run_dir = write_run(tmp_path / "0", ["seed=0"])
    atomic.write_text(run_dir / "test_predictions.csv",
                      "text,label,prediction,confidence\na,sport,sport,0.9\nb,sport,tech,0.6\nc,tech,tech,0.8\n")
    (run,) = load_sweep(run_dir).runs
    labels, rows, source = confusion(run)
    assert (labels, rows, source) == (["sport", "tech"], [[1, 1], [0, 1]], "test_predictions.csv")

    final = read_json(run_dir / "metrics.json")
    final["test"]["confusion_matrix"] = {"labels": ["a", "b", "c"], "matrix": [[5, 0, 0], [1, 4, 0], [0, 0, 5]]}
    atomic.write_json(run_dir / "metrics.json", final)
    (run,) = load_sweep(run_dir).runs
    assert confusion(run) == (["a", "b", "c"], [[5, 0, 0], [1, 4, 0], [0, 0, 5]], "metrics.json")

    del final["test"]["confusion_matrix"]
    final["confusion_matrix"], final["labels"] = [[3, 1], [2, 4]], ["x", "y"]
    atomic.write_json(run_dir / "metrics.json", final)
    (run,) = load_sweep(run_dir).runs
    assert confusion(run) == (["x", "y"], [[3, 1], [2, 4]], "metrics.json")


def test_report_of_a_sweep_whose_jobs_have_not_started(tmp_path):
    root = tmp_path / "sweep"
    root.mkdir()
    atomic.write_text(root / "multirun.yaml", "hydra:\n  mode: MULTIRUN\n")
    atomic.write_json(root / "sweep.json", {"scheduler": "lsf", "jobs": [
        {"job_num": 0, "job_id": "7[1]", "run_dir": str(root / "0"), "overrides": ["seed=0"]}]})
    paths = aggregation.aggregate(root)
    text = paths["report.html"].read_text()
    assert "No completed run reports val_macro_f1 yet" in text and "No failed jobs." in text
