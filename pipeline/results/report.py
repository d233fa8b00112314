"""``results/report.html``: one self-contained page per sweep, written by ``pipeline aggregate``.

What it shows: the counts and the best run, the per-run compare table and the per-configuration
table (both sortable by clicking a column header), the aggregate step's final-metric and learning-curve
plots, the best run's confusion matrix on the test split, and each failed job with its error and the
tail of its log.
Images are inlined as base64 PNGs and the sorting script is inline, so the file can be copied off the
cluster and opened anywhere, offline.

The confusion matrix comes from ``metrics.json`` (``test_classes``, which training writes, or
``confusion_matrix`` at the top level or under ``test``: a list of rows, or
``{"labels": [...], "matrix": [[...]]}``) and, when that is absent, is counted from the run's
``test_predictions.csv`` (columns ``label`` and ``prediction``).
"""

from __future__ import annotations

import base64
import csv
import html
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from pipeline import rundir as RD
from pipeline.results.compare import Table, best_run, count_text
from pipeline.results.formats import best_line, human_rows, summary_lines
from pipeline.results.logs import log_tail
from pipeline.results.metrics import curve_key
from pipeline.results.runs import Run, Sweep
from pipeline.rundir import BAD_STATES

#: lines of a failed job's log the report shows
LOG_TAIL_LINES = 40
Matrix = tuple[list[str], list[list[int]], str]  # labels, rows (true) x columns (predicted), source


class Section(Protocol):
    """A section a kind of sweep adds (:class:`pipeline.results.extras.ReportSection`): a heading and its
    HTML body, escaped by whoever built it."""

    title: str
    html: str
    replaces_tables: bool


# ------------------------------------------------------------------------------------------- inputs


def model_labels(run_dir: Path) -> list[str]:
    """Label names in the model's order (``checkpoints/best/config.json``'s id2label), [] if unknown."""
    try:
        config = RD.checkpoint_dir(run_dir, RD.BEST_CHECKPOINT) / "config.json"  # Hugging Face's model config
        cfg = json.loads(config.read_text(encoding="utf-8"))
        id2label = cfg.get("id2label") or {}
        return [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return []


def _matrix_from_metrics(final: dict[str, Any]) -> tuple[list[str] | None, list[list[int]]] | None:
    for holder in (final.get("test_classes"), final, final.get("test")):
        if not isinstance(holder, dict) or "confusion_matrix" not in holder:
            continue
        cm = holder["confusion_matrix"]
        labels = holder.get("labels") or final.get("labels")
        if isinstance(cm, dict):
            labels = cm.get("labels") or labels
            cm = cm.get("matrix")
        if isinstance(cm, list) and cm and all(isinstance(r, list) and len(r) == len(cm) for r in cm):
            rows = [[int(v) for v in r] for r in cm]
            ok = isinstance(labels, list) and len(labels) == len(rows)
            return ([str(x) for x in labels] if ok else None), rows
    return None


def confusion(run: Run) -> Matrix | None:
    """The run's test confusion matrix: from ``metrics.json``, else counted from ``test_predictions.csv``."""
    if run.run_dir is None:
        return None
    found = _matrix_from_metrics(run.final or {})
    if found is not None:
        labels, rows = found
        labels = labels or model_labels(run.run_dir) or [str(i) for i in range(len(rows))]
        if len(labels) == len(rows):
            return labels, rows, RD.METRICS_JSON
    try:
        with open(run.run_dir / RD.TEST_PREDICTIONS_CSV, newline="", encoding="utf-8") as f:
            pairs = [(r["label"], r["prediction"]) for r in csv.DictReader(f)]
    except (OSError, KeyError, csv.Error):
        return None
    if not pairs:
        return None
    seen = {x for pair in pairs for x in pair}
    labels = [lab for lab in model_labels(run.run_dir) if lab in seen]
    labels += sorted(seen - set(labels))
    index = {lab: i for i, lab in enumerate(labels)}
    rows = [[0] * len(labels) for _ in labels]
    for true, pred in pairs:
        rows[index[true]][index[pred]] += 1
    return labels, rows, RD.TEST_PREDICTIONS_CSV


# --------------------------------------------------------------------------------------------- HTML


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _sort_value(table: Table, row: dict[str, Any], col: str) -> str:
    """What a column sorts by: the raw number where there is one (the mean for per-config tables)."""
    if col == "best":
        return "1" if row.get("best") else "0"
    raw = row.get(f"{col}_mean") if table.by_seed and col in table.display else row.get(col)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return repr(float(raw))
    return "" if raw is None else str(raw)


def _cell(col: str, text: str, sort: str, numeric: bool) -> str:
    classes = " ".join(c for c in ("num" if numeric else "", "err" if col == "error" else "") if c)
    title = f' title="{_e(text)}"' if col == "error" and text else ""
    shown = "★" if col == "best" and text else _e(text)
    return f'<td data-sort="{_e(sort)}" class="{classes}"{title}>{shown}</td>'


def table_html(table: Table, table_id: str) -> str:
    """A sortable HTML table with the same columns and cells as ``pipeline results``' table."""
    cols, cells = human_rows(table)
    numeric = set(table.display) | {"gpu_hours", "n", table.id_column}
    head = "".join(
        f'<th data-col="{_e(c)}" class="{"num" if c in numeric else ""}" title="sort by {_e(c)}">{_e(c)}</th>'
        for c in cols)
    body = []
    for i, (row, texts) in enumerate(zip(table.rows, cells, strict=True)):
        state = str(row.get("state") or "").split(",")[0].split()[-1:] or [""]
        tds = "".join(_cell(c, t, _sort_value(table, row, c), c in numeric)
                      for c, t in zip(cols, texts, strict=True))
        cls = f"state-{_e(state[0])}" + (" best" if i == table.best else "")
        body.append(f'<tr class="{cls}">{tds}</tr>')
    return (f'<table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def figure_html(png: bytes, caption: str) -> str:
    """A plot inlined as a base64 PNG with its caption (inside ``<div class="plots">``: click to enlarge)."""
    return f"<figure>{_img(png, caption)}<figcaption>{_e(caption)}</figcaption></figure>"


def confusion_html(matrix: Matrix, run: Run) -> str:
    labels, rows, source = matrix
    total = sum(map(sum, rows))
    correct = sum(rows[i][i] for i in range(len(rows)))
    head = "".join(f'<th class="pred" title="{_e(lab)}">{_e(lab)}</th>' for lab in labels)
    body = []
    for lab, row in zip(labels, rows, strict=True):
        n = sum(row) or 1
        tds = "".join(
            f'<td style="background: rgba(37,99,235,{v / n:.3f}); color: {"#fff" if v / n > 0.55 else "inherit"}" '
            f'title="true {_e(lab)}, predicted {_e(labels[j])}: {v} of {sum(row)}">{v}</td>'
            for j, v in enumerate(row))
        body.append(f'<tr><th class="true" title="{_e(lab)}">{_e(lab)}</th>{tds}</tr>')
    acc = f"{correct / total:.4f}" if total else "n/a"
    return (f'<p class="note">Job {_e(run.label)} on its test split ({total} texts, accuracy {acc}); '
            f'rows: true label, columns: predicted; shading: share of the row. Source: {_e(source)}.</p>'
            f'<table id="confusion" class="confusion"><thead><tr><th class="corner">true ↓ / predicted →</th>'
            f'{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def failures_html(runs: list[Run]) -> str:
    failed = [r for r in runs if r.state in BAD_STATES]
    if not failed:
        return '<p class="note">No failed jobs.</p>'
    parts = []
    for run in failed:
        path, tail = log_tail(run, LOG_TAIL_LINES)
        where = f"last {LOG_TAIL_LINES} lines of {_e(path)}" if path else "no log found"
        parts.append(
            f'<details class="failure" open><summary><b>job {_e(run.label)}</b> '
            f'<span class="badge {_e(run.state)}">{_e(run.state)}</span> {_e(run.error or "")}</summary>'
            f'<p class="note">{where}; run dir {_e(run.run_dir)}</p>'
            + (f"<pre>{_e(tail)}</pre>" if tail else "") + "</details>")
    return "".join(parts)


STYLE = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --accent:#2563eb; --bg:#f5f7fa; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg);
       background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:16px 28px; }
header h1 { margin:0 0 2px; font-size:20px; }
.note { color:var(--muted); font-size:13px; margin:4px 0 10px; }
main { padding:8px 28px 40px; max-width:1400px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:14px 18px; margin:18px 0; }
h2 { font-size:16px; margin:0 0 8px; }
.chips { display:flex; flex-wrap:wrap; gap:8px; margin-top:10px; }
.chip { border:1px solid var(--line); border-radius:6px; padding:3px 10px; background:var(--bg); font-size:13px; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; }
table.sortable th { cursor:pointer; user-select:none; white-space:nowrap; }
table.sortable th:hover { color:var(--accent); }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:left; }
thead th { background:var(--bg); position:sticky; top:0; }
.num { text-align:right; }
td.err { color:#b42318; max-width:200px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
tr.best td { background:#eef4ff; font-weight:600; }
tr.state-failed td, tr.state-corrupt td { background:#fff5f5; }
th[aria-sort=ascending]::after { content:" ▲"; font-size:10px; }
th[aria-sort=descending]::after { content:" ▼"; font-size:10px; }
.plots { display:flex; flex-wrap:wrap; gap:16px; }
.plots figure { margin:0; display:table; }  /* the caption wraps at the image's width */
.plots figcaption { display:table-caption; caption-side:bottom; }
.plots img { height:300px; width:auto; max-width:100%; border:1px solid var(--line); border-radius:6px;
             cursor:zoom-in; }
.plots img.big { height:auto; cursor:zoom-out; }
figcaption { color:var(--muted); font-size:13px; }
table.confusion td { text-align:center; min-width:56px; border:1px solid #fff; }
table.confusion th.pred { writing-mode:initial; font-weight:600; }
table.confusion th.true { font-weight:600; }
details.failure { border-left:3px solid #d92d20; padding:6px 12px; margin:10px 0; background:#fffbfa; }
details.failure summary { cursor:pointer; }
pre { background:#111827; color:#e5e7eb; padding:10px 12px; border-radius:6px; overflow-x:auto;
      font-size:12px; line-height:1.4; }
.badge { border-radius:4px; padding:0 6px; font-size:12px; background:#fee4e2; color:#b42318; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach((table) => {
  const heads = table.tHead.rows[0].cells;
  Array.from(heads).forEach((th, col) => th.addEventListener("click", () => {
    const asc = th.getAttribute("aria-sort") !== "ascending";
    Array.from(heads).forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const key = (r) => r.cells[col].dataset.sort;
    const numeric = rows.every((r) => key(r) === "" || !isNaN(parseFloat(key(r))));
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");  // empty cells last either way
      const d = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y, undefined, {numeric: true});
      return asc ? d : -d;
    });
    rows.forEach((r) => body.appendChild(r));
  }));
});
document.querySelectorAll(".plots img").forEach(
  (img) => img.addEventListener("click", () => img.classList.toggle("big")));
"""


def _plots_html(per_run: Table, images: dict[str, bytes]) -> str:
    captions = (
        (RD.FINAL_PNG, f"Final {per_run.metric} per configuration: each seed a dot, the mean a bar"),
        (RD.CURVES_PNG, f"Learning curves per configuration: validation {curve_key(per_run.metric)} (mean over "
                        "seeds) and training loss"),
    )
    return "".join(figure_html(images[name], cap) for name, cap in captions if images.get(name))


def _confusion_section(best: Run | None, metric: str) -> str:
    matrix = confusion(best) if best is not None else None
    if matrix is not None and best is not None:
        return confusion_html(matrix, best)
    if best is not None:
        return (f'<p class="note">The best run has no confusion matrix in {RD.METRICS_JSON} and no '
                f'{RD.TEST_PREDICTIONS_CSV}.</p>')
    return f'<p class="note">No completed run reports {_e(metric)} yet.</p>'


def _chips(sweep: Sweep, per_run: Table) -> str:
    runs = sum(per_run.counts.values())
    chips = [f"{runs} run{'' if runs == 1 else 's'} ({count_text(per_run.counts)})",
             *([f"{per_run.total_gpu_hours:.3f} GPU hours"] if per_run.gpus_used else []),
             f"scheduler: {sweep.scheduler}", f"ranked by {per_run.metric} ({per_run.mode})"]
    return "".join(f'<span class="chip">{_e(c)}</span>' for c in chips)


def _tables_html(per_run: Table, summary: Table) -> str:
    """The Runs section (with the footer's lines) and the Configurations section."""
    notes = "".join(f'<p class="note">{_e(line)}</p>' for line in summary_lines(per_run))
    return ("<section><h2>Runs</h2><p class=\"note\">One row per job; click a column header to sort. ★ marks the best "
            f"""run.</p>
<div class="scroll">{table_html(per_run, "runs")}</div>{notes}</section>
<section><h2>Configurations (mean ± std over seeds)</h2>
<div class="scroll">{table_html(summary, "configs")}</div></section>""")


def render(sweep: Sweep, per_run: Table, summary: Table, images: dict[str, bytes],
           sections: Sequence[Section] = ()) -> str:
    """The report as one HTML string. ``images``: ``{"final.png": png, "curves.png": png}`` from the aggregate
    step; ``sections``: what a kind of sweep adds (:mod:`pipeline.results.extras`), after the configurations,
    or first, instead of the tables (``replaces_tables``)."""
    best = best_run(sweep.runs, per_run.metric, per_run.mode)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    first = "".join(f"<section><h2>{_e(s.title)}</h2>{s.html}</section>" for s in sections if s.replaces_tables)
    added = "".join(f"<section><h2>{_e(s.title)}</h2>{s.html}</section>" for s in sections if not s.replaces_tables)
    best_html = "" if first else f'\n<p id="best-line"><b>{_e(best_line(per_run))}</b></p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(sweep.name)}: sweep report</title><style>{STYLE}</style></head>
<body>
<header><h1>Sweep report: {_e(sweep.name)}</h1>
<div class="note">{_e(sweep.path)} · generated {generated} by <code>pipeline aggregate</code></div>
<div class="chips">{_chips(sweep, per_run)}</div>{best_html}</header>
<main>
{first or _tables_html(per_run, summary)}
{added}
<section><h2>Plots</h2><p class="note">Click a plot to enlarge it.</p>
<div class="plots">{_plots_html(per_run, images)}</div></section>
<section><h2>Confusion matrix of the best run</h2>{_confusion_section(best, per_run.metric)}</section>
<section><h2>Failed jobs</h2>{failures_html(sweep.runs)}</section>
</main>
<script>{SCRIPT}</script>
</body></html>
"""
