"""Long listings drawn fast: a table of one-line cells laid out as rich's `Table(show_edge=False,
pad_edge=False)` draws it (the heavy header rule, `│` between columns), built as one `Text`.

rich lays a Table out cell by cell (measure, wrap, pad, render each cell as its own renderable): 1000
runs × 8 columns cost ~0.6 s, most of `cltui runs` over 1000 runs. Cells that are one line and
never wrap need none of that: pad each to its column's width and join. The result is rich text, so
colours follow the console as before (none when piped, none under NO_COLOR). When the table is
wider than the console, `fast_table` returns None and the caller falls back to rich's Table, which
shrinks columns. Torch-free, numpy-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from rich.cells import cell_len
from rich.text import Text

Justify = Literal["left", "right"]
Cell = str | tuple[str, str]
"""A cell's text, or (text, style)."""


def _pad(text: str, width: int, justify: Justify) -> str:
    fill = " " * (width - cell_len(text))
    return fill + text if justify == "right" else text + fill


def fast_table(columns: Sequence[tuple[str, Justify]], rows: Sequence[Sequence[Cell]], max_width: int | None,
               header_style: str = "bold") -> Text | None:
    """The table as rich would draw it with `Table(show_edge=False, pad_edge=False)` and no-wrap columns
    (bold headers, a `━╇━` rule, ` │ ` between cells), or None when it is wider than `max_width`."""
    texts = [[c if isinstance(c, str) else c[0] for c in row] for row in rows]
    widths = [cell_len(name) for name, _ in columns]
    for row in texts:
        for k, t in enumerate(row):
            n = cell_len(t)
            if n > widths[k]:
                widths[k] = n
    if max_width is not None and sum(widths) + 3 * (len(widths) - 1) > max_width:
        return None
    out = Text(no_wrap=True, overflow="ignore", end="")
    last = len(widths) - 1
    for k, (name, just) in enumerate(columns):  # rich styles a header's padding too: same bytes on a TTY
        if k:
            out.append("┃")
            out.append(" ", style=header_style)
        out.append(_pad(name, widths[k], just), style=header_style)
        if k < last:
            out.append(" ", style=header_style)
    out.append("\n" + "╇".join("━" * (w + (k > 0) + (k < last)) for k, w in enumerate(widths)))
    justs = [just for _, just in columns]
    for row, cells in zip(texts, rows):
        out.append("\n")
        plain: list[str] = []  # runs of unstyled cells are appended as one string
        for k, (t, cell) in enumerate(zip(row, cells)):
            padded = (" │ " if k else "") + _pad(t, widths[k], justs[k])
            if isinstance(cell, str) or not cell[1]:
                plain.append(padded)
                continue
            if plain:
                out.append("".join(plain))
                plain = []
            if k:
                out.append(" │ ")
            out.append(padded[3:] if k else padded, style=cell[1])  # its padding in its style, as rich
        if plain:
            out.append("".join(plain))
    return out
