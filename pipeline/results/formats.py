"""A :class:`~pipeline.results.compare.Table` as text: its cells, its footer lines, and the four file
formats (``md``, ``csv``, ``json``, ``latex``). The terminal table is :mod:`pipeline.results.views`.

The footer (under every human format): the totals (``total: 12 runs (8 completed, 4 pruned)``, with the
GPU hours and what they count when a run was given GPUs), the best run's GPU use and every GPU warning
when runs report them, and the best row.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from pipeline.results.compare import Table, count_text
from pipeline.results.runs import is_number

#: the footer line under the GPU hours: what they count
GPU_HOURS_NOTE = "GPU hours include all attempts (requeued, killed and failed ones too)"
#: GPU warnings said one per line under a table; the rest are counted (each run's is in csv/json)
MAX_GPU_WARNINGS = 3


def plural(n: int, word: str) -> str:
    """``1 run``, ``2 runs``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_number(metric: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if not is_number(value):
        return str(value)
    if metric == "gpu_hours":
        return f"{value:.3f}"
    if metric.endswith(("_s", "samples_per_s")):
        return f"{value:.1f}"
    if metric in ("best_epoch", "best_step", "epochs", "steps") or float(value).is_integer() and abs(value) > 1:
        return f"{value:.0f}"
    return f"{value:.4f}"


def cell(table: Table, row: dict[str, Any], col: str) -> str:
    """The text of one cell in the human formats."""
    if col == "best":
        return "*" if row.get("best") else ""
    if col == "state":
        state = str(row.get("state") or "")
        return state.upper() if not table.by_seed else state
    if col in table.display or col == "gpu_hours":
        if table.by_seed and col != "gpu_hours":
            mean, std = row.get(f"{col}_mean"), row.get(f"{col}_std")
            if mean is None:
                return ""
            if std is None:
                return format_number(col, mean)
            return f"{format_number(col, mean)} ± {format_number(col, std)}"
        return format_number(col, row.get(col))
    value = row.get(col)
    if col in table.params:
        return param_text(value)
    return "" if value is None else str(value)


def param_text(value: Any) -> str:
    """A parameter's cell: overrides as written; a study's float parameters to 4 significant digits
    (``3.162e-05``; csv and json keep every digit)."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def human_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    cols = table.human_columns()
    return cols, [[cell(table, row, c) for c in cols] for row in table.rows]


# ---------------------------------------------------------------------------------------------- footer


def total_line(table: Table) -> str:
    runs = plural(sum(table.counts.values()), "run")
    if not table.gpus_used:
        return f"total: {runs} ({count_text(table.counts)})"
    return f"total: {table.total_gpu_hours:.3f} GPU hours over {runs} ({count_text(table.counts)})"


def _gb(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def gpu_lines(table: Table) -> list[str]:
    """The best run's GPU use, then the runs' GPU warnings (none for CPU runs)."""
    g = table.gpu_best
    parts = []
    if is_number(g.get("util_mean")):
        parts.append(f"mean utilisation {g['util_mean']:.0f} %")
    if is_number(g.get("peak_mem_gb")):
        of = f" of {_gb(g['mem_total_gb'])}" if is_number(g.get("mem_total_gb")) else ""
        parts.append(f"peak memory {_gb(g['peak_mem_gb'])}{of} GB")
    lines = [f"GPU: {', '.join(parts)} (best run, job {g['job']})"] if parts else []
    warnings = table.gpu_warnings
    lines += [f"GPU warning, job {job}: {text}" for job, text in warnings[:MAX_GPU_WARNINGS]]
    if len(warnings) > MAX_GPU_WARNINGS:
        more = len(warnings) - MAX_GPU_WARNINGS
        lines.append(f"... and {plural(more, 'more run')} with a GPU warning (the gpu_warning column of "
                     "--format csv)")
    return lines


def best_line(table: Table) -> str:
    if table.best is None:
        return f"best: none (no completed run reports {table.metric})"
    row = table.rows[table.best]
    if table.by_seed:
        config = " ".join(f"{p}={row[p]}" for p in table.params if row.get(p) is not None) or "the configuration"
        jobs = str(row.get("jobs") or "")
        where = f"{config} ({'job' if len(jobs.split()) == 1 else 'jobs'} {jobs})"
    else:
        where = f"{table.id_column} {row.get(table.id_column)}"
    if table.multi_sweep:
        where = f"{row.get('sweep')} {where}"
    return f"best by {table.metric} ({table.mode}): {where} = {cell(table, row, table.metric)}"


def summary_lines(table: Table) -> list[str]:
    """What the footer says above the best line: totals (a study: its own line), what GPU hours count, GPU use."""
    return [table.headline or total_line(table), *([GPU_HOURS_NOTE] if table.gpus_used else []), *gpu_lines(table)]


def best_lines(table: Table) -> list[str]:
    """The best line; none where the table has a headline (a study's line names its best trial)."""
    return [] if table.headline else [best_line(table)]


def footer_lines(table: Table) -> list[str]:
    return [*summary_lines(table), *best_lines(table)]


# --------------------------------------------------------------------------------------------- formats


def to_markdown(table: Table) -> str:
    cols, rows = human_rows(table)

    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    right = set(table.display) | {"gpu_hours", "n"}
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |",
             "|" + "|".join("---:" if c in right else "---" for c in cols) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in rows]
    lines += ["", *summary_lines(table), *(line for best in best_lines(table) for line in ("", best))]
    return "\n".join(lines) + "\n"


_LATEX_ESC = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
              "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(s: str) -> str:
    s = "".join(_LATEX_ESC.get(ch, ch) for ch in s)
    return s.replace("±", r"$\pm$")


def to_latex(table: Table) -> str:
    cols, rows = human_rows(table)
    cols_l = [c for c in cols if c != "best"]
    right = set(table.display) | {"gpu_hours", "n"}
    spec = "".join("r" if c in right else "l" for c in cols_l)
    out = [f"\\begin{{tabular}}{{{spec}}}", r"\hline",
           " & ".join(latex_escape(c) for c in cols_l) + r" \\", r"\hline"]
    for i, r in enumerate(rows):
        cells = [latex_escape(v) for c, v in zip(cols, r, strict=True) if c != "best"]
        if i == table.best:
            cells = [f"\\textbf{{{c}}}" if c else c for c in cells]
        out.append(" & ".join(cells) + r" \\")
    out.append(r"\hline")
    out += [f"\\multicolumn{{{len(cols_l)}}}{{l}}{{{latex_escape(line)}}} \\\\" for line in summary_lines(table)]
    out += [r"\hline", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def data_rows(table: Table) -> tuple[list[str], list[dict[str, Any]]]:
    cols = table.data_columns()
    return cols, [{c: row.get(c) for c in cols} for row in table.rows]


def to_csv(table: Table) -> str:
    cols, rows = data_rows(table)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in rows:
        w.writerow([_csv_value(row[c]) for c in cols])
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    """Counts stay integers (``210``, not ``210.0``: metrics.json's numbers are all read as floats)."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _json_safe(v: Any) -> Any:
    return None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else v


def table_dict(table: Table) -> dict[str, Any]:
    cols, rows = data_rows(table)
    return {
        "metric": table.metric,
        "mode": table.mode,
        "by_seed": table.by_seed,
        "params": table.params,
        "metrics": table.metrics,
        "best": table.best,
        "total": {"gpu_hours": table.total_gpu_hours, "runs": sum(table.counts.values()),
                  "states": table.counts},
        "rows": [{c: _json_safe(row[c]) for c in cols} for row in rows],
        **table.extra,
    }


def to_json(table: Table) -> str:
    return json.dumps(table_dict(table), indent=2) + "\n"


FORMATTERS = {"md": to_markdown, "csv": to_csv, "json": to_json, "latex": to_latex}
