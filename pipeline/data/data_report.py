"""The data report: what cleaning kept and dropped, the classes, and how long the texts are in tokens.

    report = data_report.for_config(cfg)      # dict, also stored in run_info.json under "data_report"
    data_report.lines(report)                 # the same as short text lines (pipeline data, preflight)

Built from the split ``pipeline.data.data.load_splits`` makes (so it counts exactly what training sees) plus the
model's tokenizer, loaded from its ``tokenizer.json`` with the ``tokenizers`` library (no torch import, so
preflight stays fast). :func:`check_drops` is the rule for rows lost in cleaning: a one-line warning above
``data.drop_warn_fraction``, an error above ``data.drop_error_fraction`` (0.5 unless the user raises it).

Tokenising a whole file takes seconds, so a report is made once per data file, data settings, tokenizer
and max_length: memoised in the process and kept in ``paths.cache_dir/data_reports/``. Preflight makes it at
submission; each job of the sweep reads it from there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import atomic
from pipeline.errors import DataError

log = logging.getLogger(__name__)

PERCENTILES = (50, 90, 99)
DROP_REASONS = (("dropped_empty_text", "empty text"), ("dropped_empty_label", "empty label"),
                ("dropped_duplicates", "duplicate"))


# ----------------------------------------------------------------------------------------------- drops


def drop_counts(stats: dict[str, Any]) -> dict[str, int]:
    """Rows dropped per reason (``empty text``, ``empty label``, ``duplicate``), from ``clean``'s counts."""
    out = {name: int(stats.get(key) or 0) for key, name in DROP_REASONS}
    if "dropped_empty_text" not in stats and stats.get("dropped_empty"):  # splits prepared before the split
        out["empty text or label"] = int(stats["dropped_empty"])
    return {k: v for k, v in out.items() if v}


def _drops_text(rows_read: int, drops: dict[str, int]) -> str:
    total = sum(drops.values())
    why = ", ".join(f"{n:,} {reason}" for reason, n in drops.items())
    return f"{total:,} of {rows_read:,} rows ({total / max(rows_read, 1):.1%}: {why})"


def check_drops(stats: dict[str, Any], d: Any, source: str) -> str | None:
    """A warning line when cleaning dropped more than ``data.drop_warn_fraction`` of the rows; a DataError
    above ``data.drop_error_fraction``. None when the drops are within bounds."""
    rows_read = int(stats.get("rows_raw") or 0)
    drops = drop_counts(stats)
    share = sum(drops.values()) / rows_read if rows_read else 0.0
    err_at = float(d.get("drop_error_fraction", 0.5))
    warn_at = float(d.get("drop_warn_fraction", 0.1))
    if share > err_at:
        raise DataError(
            f"cleaning '{source}' dropped {_drops_text(rows_read, drops)}, more than "
            f"data.drop_error_fraction={err_at:g}: check data.text_columns, data.label_column and the file's "
            f"format (`pipeline data {source}` shows the report), or set data.drop_error_fraction=1 to train "
            f"on what is left")
    if share > warn_at:
        return (f"cleaning '{Path(source).name}' dropped {_drops_text(rows_read, drops)}, above "
                f"data.drop_warn_fraction={warn_at:g}: check the file and its column settings")
    return None


# ---------------------------------------------------------------------------------------------- tokens


def tokenizer_file(model_cfg: Any) -> Path | None:
    """The model's ``tokenizer.json``: in its folder, or in the Hugging Face cache for a hub id."""
    from pipeline.models.model import offline_minilm_path

    path = model_cfg.get("path")
    folder = Path(offline_minilm_path()) if not path or not model_cfg.get("pretrained", True) else \
        Path(str(path)).expanduser()
    if folder.is_dir():
        return folder / "tokenizer.json" if (folder / "tokenizer.json").is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(str(path), "tokenizer.json")
    except Exception:  # no cache, odd id: the report goes without token lengths
        return None
    return Path(hit) if isinstance(hit, str) else None


def token_lengths(texts: list[str], model_cfg: Any) -> tuple[np.ndarray, str] | None:
    """Untruncated token counts (with [CLS]/[SEP]) and the tokenizer's name; None without a tokenizer.json."""
    file = tokenizer_file(model_cfg)
    if file is None:
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(file))
    tok.no_truncation()  # sentence-transformers ship tokenizer.json with truncation at 128 switched on
    tok.no_padding()
    lengths = np.fromiter((len(e.ids) for e in tok.encode_batch(texts)), dtype=np.int64, count=len(texts))
    return lengths, f"{model_cfg.get('name')} tokenizer"


def length_stats(lengths: np.ndarray, max_length: int) -> dict[str, Any]:
    out: dict[str, Any] = {f"p{p}": int(np.percentile(lengths, p)) for p in PERCENTILES}
    out.update({"max_length": int(max_length), "truncated_share": round(float((lengths > max_length).mean()), 4)})
    return out


# ---------------------------------------------------------------------------------------------- report


def build(splits: Any, cfg: Any, source: str) -> dict[str, Any]:
    """The report for one split (``pipeline.data.data.Splits``) under ``cfg``'s model and max_length."""
    import pandas as pd

    stats = splits.stats
    frames = [splits.train, splits.val, splits.test]
    everything = pd.concat(frames, ignore_index=True)
    counts = everything.label.value_counts()
    rows_read = int(stats.get("rows_raw") or len(everything))
    drops = drop_counts(stats)
    report: dict[str, Any] = {
        "file": source,
        "rows_read": rows_read,
        "dropped": drops,
        "dropped_share": round(sum(drops.values()) / max(rows_read, 1), 4),
        "duplicates": {"dropped": int(stats.get("dropped_duplicates") or 0),
                       "kept": int(everything.text.duplicated().sum())},
        "rows_used": len(everything),
        "splits": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "classes": {str(label): int(counts.get(label, 0)) for label in splits.labels},
        "tokens": None,
    }
    measured = token_lengths(everything.text.tolist(), cfg.model)
    if measured is not None:
        lengths, name = measured
        report["tokens"] = {"tokenizer": name, **length_stats(lengths, int(cfg.trainer.max_length))}
    return report


_MEMO: dict[str, dict[str, Any]] = {}


def for_config(cfg: Any) -> dict[str, Any]:
    """The report for ``cfg``, computed once: memoised per process, and kept on disk in
    ``paths.cache_dir/data_reports/`` so that the jobs of a sweep read what preflight measured at submission
    instead of tokenising the whole file again at every job start."""
    import json

    from pipeline.data.data import load_splits, resolve_data_file

    splits = load_splits(cfg)  # memoised in this process by pipeline.data.data
    try:
        source = str(resolve_data_file(cfg.data.file, cfg.paths.data_dir))
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
    import hashlib
    import json

    from omegaconf import OmegaConf

    file = tokenizer_file(cfg.model)
    st = file.stat() if file is not None else None
    spec = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "model")} | {
        "max_length": int(cfg.trainer.max_length), "data_sha256": data_sha256, "source": source,
        "tokenizer": [str(file), st.st_size, st.st_mtime_ns] if st else None, "v": 1}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _read_cached(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    import json

    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # a damaged cache file is rebuilt, never trusted
        log.warning("ignoring unreadable data report cache %s (%s)", path, e)
        return None
    return report if isinstance(report, dict) and "rows_read" in report else None


def lines(report: dict[str, Any]) -> list[str]:
    """The report as short lines (each well under 80 columns apart from the file path)."""
    drops = report["dropped"]
    out = [f"file          {report['file']}",
           f"rows read     {report['rows_read']:,}",
           "dropped       " + (", ".join(f"{n:,} {why}" for why, n in drops.items()) or "none")
           + (f" ({report['dropped_share']:.1%})" if drops else ""),
           f"duplicates    {report['duplicates']['dropped']:,} dropped, {report['duplicates']['kept']:,} kept",
           "rows used     {:,} ({})".format(report["rows_used"],
                                           " / ".join(f"{n:,} {s}" for s, n in report["splits"].items()))]
    total = max(report["rows_used"], 1)
    width = max((len(c) for c in report["classes"]), default=0)
    out.append(f"classes       {len(report['classes'])}")
    out += [f"  {name:<{width}}  {n:>6,}  {n / total:6.1%}" for name, n in report["classes"].items()]
    tok = report.get("tokens")
    if tok:
        out.append(f"tokens        p50 {tok['p50']:,}  p90 {tok['p90']:,}  p99 {tok['p99']:,}  ({tok['tokenizer']})")
        out.append(f"truncated     {tok['truncated_share']:.1%} of texts are longer than max_length "
                   f"{tok['max_length']}")
    else:
        out.append("tokens        not measured (the model's tokenizer.json is not on this machine)")
    return out


def summary(report: dict[str, Any]) -> str:
    """One line for the job log."""
    tok = report.get("tokens") or {}
    drops = sum(report["dropped"].values())
    text = (f"data report: {report['rows_read']:,} rows read, {drops:,} dropped, {report['rows_used']:,} used, "
            f"{len(report['classes'])} classes")
    if tok:
        text += (f"; tokens p50/p90/p99 {tok['p50']}/{tok['p90']}/{tok['p99']}, "
                 f"{tok['truncated_share']:.1%} truncated at {tok['max_length']}")
    return text


def report_for_file(file: str, overrides: list[str]) -> tuple[dict[str, Any], str | None, str | None]:
    """``pipeline data FILE [overrides]``: (report, warning, error) for FILE under run.py's config.

    The report is built even when cleaning drops more than ``data.drop_error_fraction`` (that is when it is
    needed most); ``error`` then says what training would refuse.
    """
    from pipeline.data.prepare import compose

    quoted = "'" + file.replace("\\", "\\\\").replace("'", "\\'") + "'"
    cfg = compose([*overrides, f"data.file={quoted}"])
    limit = cfg.data.drop_error_fraction
    cfg.data.drop_error_fraction = 1.0
    report = for_config(cfg)
    cfg.data.drop_error_fraction = limit
    warning = error = None
    try:
        warning = check_drops(_as_stats(report), cfg.data, report["file"])
    except DataError as e:
        error = str(e)
    return report, warning, error


def _as_stats(report: dict[str, Any]) -> dict[str, Any]:
    """The report's drop counts back in ``clean``'s terms (for :func:`check_drops`)."""
    names = {name: key for key, name in DROP_REASONS}
    stats: dict[str, Any] = {"rows_raw": report["rows_read"]}
    for name, n in report["dropped"].items():
        stats[names.get(name, "dropped_empty")] = n
    return stats
