"""Render something at a terminal width and check that it fits: for every table test (results, status,
predict, watch).

    text = render(lambda console: views.print_results(console, table), 80)
    assert_fits(text, 80, [["0", "1e-4", "0.8100"], ...])   # each inner list: one row, on one line
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any


def render(what: Any, width: int) -> str:
    """Print ``what`` (a rich renderable, or a callable given the Console) on a ``width``-column console."""
    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), highlight=False, markup=False, color_system=None,
                      force_terminal=False, legacy_windows=False)
    if callable(what):
        what(console)
    else:
        console.print(what)
    return console.file.getvalue()


def assert_fits(text: str, width: int, rows: Sequence[Sequence[str]]) -> None:
    """No line is wider than ``width``, and the values of each row sit whole, in order, on one line.

    A wrapped cell splits its value over two lines, and a cut one loses its end: either fails here.
    """
    from rich.cells import cell_len

    lines = text.splitlines()
    wide = [ln for ln in lines if cell_len(ln) > width]
    assert not wide, f"{len(wide)} lines wider than {width} columns:\n" + "\n".join(wide) + f"\n---\n{text}"
    for row in rows:
        if not any(_in_order(ln, row) for ln in lines):
            raise AssertionError(f"no line holds the row {list(row)} whole, in order, at {width} columns:\n{text}")


def _in_order(line: str, values: Sequence[str]) -> bool:
    pos = 0
    for v in values:
        i = line.find(str(v), pos)
        if i < 0:
            return False
        pos = i + len(str(v))
    return True


def table_rows(text: str) -> dict[str, str]:
    """The rows of a table whose first column is the job number, by that number."""
    return {ln.split()[0]: ln for ln in text.splitlines()
            if len(ln.split()) > 1 and ln.split()[0].isdigit() and ln.split()[1] != "jobs:"}
