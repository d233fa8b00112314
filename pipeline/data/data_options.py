"""What the data settings mean for one file: file-specific options, columns by name or position, label names.

A dataset config (``configs/data/bbc_news.yaml``) may hold settings that are true of its own file only
(BBC's ``dedup_columns: [text]``). They live under ``data.file_specific`` next to the file they belong to,
and :func:`effective` applies them only while ``data.file`` is that file, so a user's file given on top of
the default config (``python run.py data.file=my.csv ...``) never inherits them. A setting the user gives
at the top level (``data.dedup_columns=[body]``) always wins.

Column settings are checked against the file's header, each error naming the key that is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import DataError


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def is_own_file(file: str, own: str | None) -> bool:
    """True if ``file`` is the file a dataset config's ``file_specific`` settings were written for."""
    return bool(own) and Path(str(file)).name == Path(str(own)).name


def effective(d: Any, key: str) -> Any:
    """``data.<key>`` as it applies to ``data.file``: the top-level value if set, else the file-specific one
    when the file is the dataset's own."""
    value = d.get(key)
    if value is not None:
        return _plain(value)
    specific = _plain(d.get("file_specific")) or {}
    if key in specific and is_own_file(d.get("file"), specific.get("file")):
        return specific[key]
    return None


def dedup_columns(d: Any) -> list[str] | None:
    value = effective(d, "dedup_columns")
    return [str(c) for c in value] if value else None


def label_names(d: Any) -> dict[str, str] | None:
    """``{"0": "world", ...}`` from ``data.label_names`` (a list or a map), or None."""
    value = _plain(d.get("label_names"))
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return {str(i): str(name) for i, name in enumerate(value)}
    if isinstance(value, dict):
        return {str(k).strip(): str(v) for k, v in value.items()}
    raise DataError(f"data.label_names={value!r} must be a list ([world,sports]) or a map ({{0: world}})")


# ------------------------------------------------------------------------------------------------- columns


def _describe(df: pd.DataFrame) -> str:
    return ", ".join(str(c) for c in df.columns)


def resolve_column(df: pd.DataFrame, column: Any, key: str, source: str) -> Any:
    """The column ``column`` names: by name, else by position (``0``, ``-1``) when it is an integer."""
    if column in df.columns:
        return column
    if str(column) in [str(c) for c in df.columns]:
        return next(c for c in df.columns if str(c) == str(column))
    text = str(column).strip()
    if text.lstrip("-").isdigit():
        i = int(text)
        if -len(df.columns) <= i < len(df.columns):
            return df.columns[i]
        raise DataError(f"data file '{source}' has {len(df.columns)} columns, so {key}={text} is out of range; "
                        f"columns present: {_describe(df)}")
    raise DataError(f"data file '{source}' has no column {str(column)!r} ({key}); columns present: "
                    f"{_describe(df)}; set {key} to one of them (or a position, 0 = first)")


def resolve_columns(df: pd.DataFrame, text_columns: list[Any], label_column: Any,
                    dedup: list[Any] | None, source: str) -> tuple[list[Any], Any, list[Any]]:
    """Text, label and dedup columns checked against the header; the error names the wrong key."""
    if not text_columns:
        raise DataError("data.text_columns is empty: name the column(s) that hold the text, e.g. "
                        "data.text_columns=[text]")
    texts = [resolve_column(df, c, "data.text_columns", source) for c in text_columns]
    label = resolve_column(df, label_column, "data.label_column", source)
    keys = [resolve_column(df, c, "data.dedup_columns", source) for c in dedup or []]
    if label in texts:
        raise DataError(f"data.label_column={label_column!r} is also in data.text_columns: the label would be "
                        "part of the text; pick another column for one of them")
    return texts, label, keys


# -------------------------------------------------------------------------------------------------- labels


def label_strings(column: pd.Series) -> pd.Series:
    """Labels as stripped strings; integral numbers as ``"3"`` (JSONL/Parquet give 3 or 3.0), missing as ``""``."""
    def one(x: Any) -> str:
        if x is None or (isinstance(x, float) and x != x):
            return ""
        if isinstance(x, float) and x.is_integer():
            return str(int(x))
        return str(x).strip()

    return column.map(one)


def apply_label_names(labels: pd.Series, names: dict[str, str] | None, source: str, column: Any) -> pd.Series:
    """Integer labels replaced by their names; a label the map does not cover is an error naming it."""
    if not names:
        return labels
    present = sorted(set(labels) - {""})
    unknown = [x for x in present if x not in names]
    if unknown:
        raise DataError(
            f"data file '{source}' has labels {unknown[:5]} in column {str(column)!r} that data.label_names "
            f"does not name (it names {sorted(names)[:10]}): list a name for every label id"
        )
    return labels.map(lambda x: names.get(x, x))


def label_order(present: list[str], names: dict[str, str] | None) -> list[str]:
    """Model label ids: the order of data.label_names when given (id i = names[i]), else sorted."""
    if not names:
        return sorted(present)
    def by_id(key: str) -> tuple[int, str]:  # "10" after "9"
        return (int(key), "") if key.lstrip("-").isdigit() else (1 << 62, key)

    order = list(dict.fromkeys(names[k] for k in sorted(names, key=by_id)))
    return [x for x in order if x in set(present)]
