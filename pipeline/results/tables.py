"""The one terminal-table renderer: every ``pipeline`` table goes through :func:`fit` and :func:`show`.

A table is a list of :class:`Column` s and rows of plain strings. :func:`fit` makes it fit a width:

1. ``pick`` (``--columns``) keeps only the named columns, in the order given;
2. columns that are empty in every row, or (with two or more rows) hold the same value in every row, are
   dropped and said once above the table (``same in all rows: state=COMPLETED; empty: error``);
3. override names are shortened to their shortest unambiguous dotted suffix (``trainer.lr`` -> ``lr``);
4. no cell ever wraps: numbers and short words keep their full width (``no_wrap``); long free text
   (errors, notes, texts) is cut with an ellipsis to the room that is left; if even that does not fit,
   the least important columns are left out and named (``not shown at 80 columns: ...``), so a wider
   terminal shows more.

rich is imported inside the functions: ``pipeline --help`` does not pay for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: what separates two columns: a blank rule and one space of padding; nothing at the edges
GAP = 2


@dataclass
class Column:
    key: str  # the name ``--columns`` uses (and the header unless ``header`` is set)
    header: str | None = None
    right: bool = False  # right-justified (numbers)
    text: bool = False  # long free text: may be cut with an ellipsis to fit
    keep: bool = False  # never dropped for being empty or constant (identifies the row)
    param: bool = False  # an override name: the header is shortened to a unique dotted suffix
    priority: int = 0  # higher stays longer when the terminal is too narrow for every column
    min_width: int = 12  # free text is not cut narrower than this; other columns are left out first
    group: str | None = None  # columns left out together, named once by this (e.g. "class probabilities")
    aliases: tuple[str, ...] = ()  # more names ``--columns`` accepts

    @property
    def title(self) -> str:
        return self.header if self.header is not None else self.key


@dataclass
class Grid:
    """What a command shows: columns, rows of cell texts, and how to style them."""

    columns: list[Column]
    rows: list[list[str]]
    title: str | None = None
    row_styles: list[str] = field(default_factory=list)  # one rich style per row ("" for none)
    cell_styles: dict[str, dict[str, str]] = field(default_factory=dict)  # column key -> cell text -> style
    hint: str = "a wider terminal or --columns shows them"  # said with the columns left out


@dataclass
class Fitted:
    """A grid laid out for one width: the rich table plus the lines said above it."""

    table: Any  # rich.table.Table
    notes: list[str]
    columns: list[Column]
    widths: list[int]


class UnknownColumnError(ValueError):
    """``--columns`` named a column the table does not have."""


def text_width(text: str) -> int:
    """Terminal columns ``text`` takes."""
    from rich.cells import cell_len

    return cell_len(text)


_WORD = re.compile(r"[^\s`]*`[^`]*`\S*|\S+")  # a word, or a `quoted command` with what touches it


def wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    """``text`` in lines of at most ``width`` columns, broken at spaces, later lines indented.

    A `quoted command` is one word: it is never broken, and one longer than the width gets a line of its
    own (to copy whole).
    """
    lines: list[str] = []
    line = ""
    for word in _WORD.findall(text):
        if not line:
            line = (indent if lines else "") + word
        elif text_width(line) + 1 + text_width(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = indent + word
    return [*lines, line] if line else lines


def short_names(names: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix of each name that no other name ends with (``trainer.lr`` -> ``lr``)."""
    out = {}
    for name in names:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            cand = ".".join(parts[-k:])
            clash = any(o != name and (o == cand or o.endswith("." + cand)) for o in names)
            if not clash:
                out[name] = cand
                break
        else:
            out[name] = name
    return out


def _pick(columns: list[Column], rows: list[list[str]], pick: Sequence[str]) -> tuple[list[Column], list[list[str]]]:
    short = short_names([c.title for c in columns if c.param])
    shown = [short[c.title] if c.param else c.title for c in columns]
    index = {}
    for i, c in enumerate(columns):
        for name in (c.key, c.title, shown[i], *c.aliases):
            index.setdefault(name, i)
    missing = [p for p in pick if p not in index]
    if missing:
        names = ", ".join(n for n in shown if n)
        raise UnknownColumnError(f"unknown column {', '.join(map(repr, missing))}; columns: {names}")
    order = list(dict.fromkeys(index[p] for p in pick))
    return [columns[i] for i in order], [[r[i] for i in order] for r in rows]


def _drop_uninformative(columns: list[Column], rows: list[list[str]]) -> tuple[list[int], list[str]]:
    """Indexes of the columns worth showing, and the note that names the others."""
    keep, same, empty = [], [], []
    for i, c in enumerate(columns):
        values = {r[i] for r in rows}
        if c.keep or not rows:
            keep.append(i)
        elif values == {""}:
            empty.append(c.title or c.key)
        elif len(rows) > 1 and len(values) == 1:
            same.append(f"{c.title or c.key}={rows[0][i]}")
        else:
            keep.append(i)
    notes = []
    if same:
        notes.append("same in all rows: " + ", ".join(same))
    if empty:
        notes.append("empty: " + ", ".join(empty))
    return keep, ["; ".join(notes)] if notes else []


def fit(grid: Grid, width: int, pick: Sequence[str] | None = None) -> Fitted:
    """Lay ``grid`` out in ``width`` terminal columns (see the module docstring for the rules)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    columns, rows = list(grid.columns), [list(r) for r in grid.rows]
    notes: list[str] = []
    if pick:
        columns, rows = _pick(columns, rows, pick)
    else:
        idx, notes = _drop_uninformative(columns, rows)
        columns, rows = [columns[i] for i in idx], [[r[i] for i in idx] for r in rows]
    short = short_names([c.title for c in columns if c.param])
    headers = [short.get(c.title, c.title) if c.param else c.title for c in columns]
    natural = [max([text_width(h), *(text_width(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    floor = [max(text_width(h), min(c.min_width, natural[i])) if c.text else natural[i]
             for i, (c, h) in enumerate(zip(columns, headers, strict=True))]

    shown = list(range(len(columns)))
    left_out: list[str] = []
    while len(shown) > 1 and sum(floor[i] for i in shown) + GAP * (len(shown) - 1) > width:
        # leave out the least important column (the rightmost among equals); never the first
        victim = min(shown[1:], key=lambda i: (columns[i].keep, columns[i].priority, -i))
        group = columns[victim].group
        for i in [j for j in shown if group and columns[j].group == group] or [victim]:
            shown.remove(i)
        left_out.append(group or headers[victim])
    widths = {i: natural[i] for i in shown}
    room = width - GAP * (len(shown) - 1) - sum(w for i, w in widths.items() if not columns[i].text)
    texts = [i for i in shown if columns[i].text]
    for n, i in enumerate(sorted(texts, key=lambda i: natural[i])):  # narrow texts first, the rest share
        share = max(floor[i], room // (len(texts) - n))
        widths[i] = min(natural[i], share)
        room -= widths[i]
    if left_out:
        notes.append(f"not shown at {width} columns ({grid.hint}): "
                     + ", ".join(reversed(left_out)))

    table = Table(title=Text(grid.title) if grid.title else None, title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), expand=False)
    for i in shown:
        c = columns[i]
        table.add_column(Text(headers[i]), justify="right" if c.right else "left", no_wrap=True,
                         overflow="ellipsis", width=widths[i])
    styles = grid.row_styles or [""] * len(rows)
    for r, style in zip(rows, styles, strict=True):
        cells = []
        for i in shown:
            s = grid.cell_styles.get(columns[i].key, {}).get(r[i], "")
            cells.append(Text(r[i], style=s))
        table.add_row(*cells, style=style or None)
    return Fitted(table=table, notes=notes, columns=[columns[i] for i in shown], widths=[widths[i] for i in shown])


def show(console: Any, grid: Grid, pick: Sequence[str] | None = None, footer: Sequence[str] = (),
         header: Sequence[str] = ()) -> Fitted:
    """Print ``grid`` fitted to ``console.width``: the title, ``header`` lines, the notes, the table, then
    ``footer`` lines (wrapped, a `quoted command` kept whole).

    Texts are printed as they are (no markup): job ids and overrides hold brackets.
    """
    from rich.text import Text

    fitted = fit(grid, console.width, pick)
    fitted.table.title = None
    if grid.title:
        console.print(Text(grid.title))
    for line in header:
        console.print(Text(line))
    for note in fitted.notes:
        console.print(Text(note, style="dim"))
    console.print(fitted.table)
    for line in footer:
        for part in wrap(line, console.width):
            console.print(Text(part), soft_wrap=True)
    return fitted


def console(stderr: bool = False, width: int | None = None) -> Any:
    """The console every command prints with: markup and highlighting off (ids and overrides hold brackets).

    On a terminal it is the terminal's width; piped or captured output uses ``$COLUMNS`` if set, else 200.
    """
    import os

    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, markup=False, width=width)
    if width is None and not out.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        out.width = 200
    return out
