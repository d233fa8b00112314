"""The rule for rows that cleaning drops: a one-line warning above ``data.drop_warn_fraction``, an error
above ``data.drop_error_fraction`` (0.5 unless the user raises it).

Read from ``pipeline.data.data.clean``'s counts: at the bottom of the data package, beside cleaning, so that
loading (``data.py``) and reporting (``data_report.py``) both use it without importing each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import DataError

#: ``clean``'s count keys and what the report calls them
DROP_REASONS = (("dropped_empty_text", "empty text"), ("dropped_empty_label", "empty label"),
                ("dropped_duplicates", "duplicate"))


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


def as_stats(dropped: dict[str, int], rows_read: int) -> dict[str, Any]:
    """A report's drop counts (``{"empty text": 150}``) back in ``clean``'s terms, for :func:`check_drops`."""
    names = {name: key for key, name in DROP_REASONS}
    stats: dict[str, Any] = {"rows_raw": rows_read}
    for name, n in dropped.items():
        stats[names.get(name, "dropped_empty")] = n
    return stats
