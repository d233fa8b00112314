"""The data report: what cleaning kept and dropped, the classes, and how long the texts are in tokens.

    report = data_report.for_config(cfg)      # dict, also stored in run_info.json under "data_report"
    data_report.lines(report)                 # the same as short text lines (pipeline data, preflight)

Built from the split ``pipeline.data.data.load_splits`` makes (so it counts exactly what training sees) plus the
token lengths under the model's tokenizer (``pipeline.data.tokens``, no torch import, so preflight stays
fast). The rule for rows lost in cleaning is ``pipeline.data.drops.check_drops``. This module sits on top of
the data package: it imports ``data``, ``drops`` and ``tokens``, and none of them imports it.

Tokenising a whole file takes seconds, so a report is made once per data file, data settings, tokenizer
and max_length: memoised in the process and kept in ``paths.cache_dir/data_reports/``. Preflight makes it at
submission; each job of the sweep reads it from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from pipeline import atomic
from pipeline.data import data, drops, tokens
from pipeline.errors import DataError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- report


def build(splits: Any, cfg: Any, source: str) -> dict[str, Any]:
    """The report for one split (``pipeline.data.data.Splits``) under ``cfg``'s model and max_length."""
    import pandas as pd

    stats = splits.stats
    frames = [splits.train, splits.val, splits.test]
    everything = pd.concat(frames, ignore_index=True)
    counts = everything.label.value_counts()
    rows_read = int(stats.get("rows_raw") or len(everything))
    dropped = drops.drop_counts(stats)
    report: dict[str, Any] = {
        "file": source,
        "rows_read": rows_read,
        "dropped": dropped,
        "dropped_share": round(sum(dropped.values()) / max(rows_read, 1), 4),
        "duplicates": {"dropped": int(stats.get("dropped_duplicates") or 0),
                       "kept": int(everything.text.duplicated().sum())},
        "rows_used": len(everything),
        "splits": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "classes": {str(label): int(counts.get(label, 0)) for label in splits.labels},
        "tokens": None,
    }
    measured = tokens.token_lengths(everything.text.tolist(), cfg.model)
    if measured is not None:
        lengths, name = measured
        max_length = int(cfg.trainer.max_length)
        lengths_at = tokens.length_stats(lengths, (max_length,))
        share = lengths_at.pop(f"over_{max_length}")
        report["tokens"] = {"tokenizer": name, **lengths_at, "max_length": max_length, "truncated_share": share}
    return report


_MEMO: dict[str, dict[str, Any]] = {}


def for_config(cfg: Any) -> dict[str, Any]:
    """The report for ``cfg``, computed once: memoised per process, and kept on disk in
    ``paths.cache_dir/data_reports/`` so that the jobs of a sweep read what preflight measured at submission
    instead of tokenising the whole file again at every job start."""
    splits = data.load_splits(cfg)  # memoised in this process by pipeline.data.data
    try:
        source = str(data.resolve_data_file(cfg.data.file, cfg.paths.data_dir))
    except DataError:
        source = str(cfg.data.file)  # prepared splits without the raw file
    key = report_key(cfg, splits.data_sha256, source)
    if key in _MEMO:
        return _MEMO[key]
    cache_dir = cfg.paths.get("cache_dir")
    path = Path(str(cache_dir)) / "data_reports" / f"{key}.json" if cache_dir else None
    report = _read_cached(path)
    if report is None:
        report = build(splits, cfg, source)
        if path is not None:
            try:
                atomic.write_text(path, json.dumps(report, indent=2) + "\n")  # in order: classes as labelled
            except OSError as e:  # a read-only cache costs the next job a re-measure, nothing more
                log.warning("could not write data report cache %s (%s)", path, e)
    _MEMO.clear()
    _MEMO[key] = report
    return report


def report_key(cfg: Any, data_sha256: str, source: str) -> str:
    """What the report depends on: the data file's content and settings, the tokenizer file, max_length."""
    from omegaconf import OmegaConf

    file = tokens.tokenizer_file(cfg.model)
    st = file.stat() if file is not None else None
    spec = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "model")} | {
        "max_length": int(cfg.trainer.max_length), "data_sha256": data_sha256, "source": source,
        "tokenizer": [str(file), st.st_size, st.st_mtime_ns] if st else None, "v": 2}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _read_cached(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # a damaged cache file is rebuilt, never trusted
        log.warning("ignoring unreadable data report cache %s (%s)", path, e)
        return None
    return report if isinstance(report, dict) and "rows_read" in report else None


def lines(report: dict[str, Any]) -> list[str]:
    """The report as short lines (each well under 80 columns apart from the file path)."""
    dropped = report["dropped"]
    out = [f"file          {report['file']}",
           f"rows read     {report['rows_read']:,}",
           "dropped       " + (", ".join(f"{n:,} {why}" for why, n in dropped.items()) or "none")
           + (f" ({report['dropped_share']:.1%})" if dropped else ""),
           f"duplicates    {report['duplicates']['dropped']:,} dropped, {report['duplicates']['kept']:,} kept",
           "rows used     {:,} ({})".format(report["rows_used"],
                                           " / ".join(f"{n:,} {s}" for s, n in report["splits"].items()))]
    total = max(report["rows_used"], 1)
    width = max((len(c) for c in report["classes"]), default=0)
    out.append(f"classes       {len(report['classes'])}")
    out += [f"  {name:<{width}}  {n:>6,}  {n / total:6.1%}" for name, n in report["classes"].items()]
    tok = report.get("tokens")
    if tok:
        out.append("tokens        " + "  ".join(f"p{p} {tok[f'p{p}']:,}" for p in tokens.PERCENTILES)
                   + f"  ({tok['tokenizer']})")
        out.append(f"truncated     {tok['truncated_share']:.1%} of texts are longer than max_length "
                   f"{tok['max_length']}")
    else:
        out.append("tokens        not measured (the model's tokenizer.json is not on this machine)")
    return out


def summary(report: dict[str, Any]) -> str:
    """One line for the job log."""
    tok = report.get("tokens") or {}
    n_dropped = sum(report["dropped"].values())
    text = (f"data report: {report['rows_read']:,} rows read, {n_dropped:,} dropped, {report['rows_used']:,} used, "
            f"{len(report['classes'])} classes")
    if tok:
        names = "/".join(f"p{p}" for p in tokens.PERCENTILES)
        values = "/".join(str(tok[f"p{p}"]) for p in tokens.PERCENTILES)
        text += f"; tokens {names} {values}, {tok['truncated_share']:.1%} truncated at {tok['max_length']}"
    return text


def report_for_file(file: str, overrides: list[str]) -> tuple[dict[str, Any], str | None, str | None]:
    """``pipeline data FILE [overrides]``: (report, warning, error) for FILE under run.py's config.

    The report is built even when cleaning drops more than ``data.drop_error_fraction`` (that is when it is
    needed most); ``error`` then says what training would refuse.
    """
    from pipeline.config import compose

    quoted = "'" + file.replace("\\", "\\\\").replace("'", "\\'") + "'"
    cfg = compose([*overrides, f"data.file={quoted}"])
    limit = cfg.data.drop_error_fraction
    cfg.data.drop_error_fraction = 1.0
    report = for_config(cfg)
    cfg.data.drop_error_fraction = limit
    warning = error = None
    try:
        warning = drops.check_drops(drops.as_stats(report["dropped"], report["rows_read"]), cfg.data,
                                    report["file"])
    except DataError as e:
        error = str(e)
    return report, warning, error
