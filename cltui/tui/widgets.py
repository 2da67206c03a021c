"""Reusable widgets of the TUI: the numbered tab bar, the accuracy heat table, the loss sparkline,
the rows table, and the rich renderables they draw from a RunRecord (the curves plot is in plot.py).

They only draw what they are given (`show(...)`); reading the store is the screens' job. Torch-free;
numpy only inside the Live screen's widgets (the Runs screen, drawn first, uses NavBar and RowsTable).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.progress_bar import ProgressBar
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import RenderResult
from textual.binding import Binding
from textual.widget import Widget
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from cltui.views import status_style
from engine.presentation import fmt, fmt_compact, phase_label, progress_of

if TYPE_CHECKING:
    from engine.store_read import RunRecord

TABS = (("presets", "Presets"), ("runs", "Runs"), ("live", "Live"), ("compare", "Compare"))


class NavBar(Static):
    """The numbered tabs (1 Presets · 2 Runs · 3 Live · 4 Compare): click one, or press its number."""

    DEFAULT_CSS = """
    NavBar { height: 1; width: 1fr; background: $panel; color: $text-muted; }
    """

    def __init__(self, active: str, note: str = "") -> None:
        super().__init__(self._markup(active, note), markup=True)

    @staticmethod
    def _markup(active: str, note: str) -> str:
        parts = ["[b] cltui [/b]"]
        for i, (mode, label) in enumerate(TABS, 1):
            if mode == active:
                parts.append(f"[reverse b] {i} {label} [/]")
            else:
                parts.append(f"[@click=app.goto('{mode}')] {i} {label} [/]")
        return " ".join(parts) + (f"  [dim]{note}[/dim]" if note else "")


class KeysFooter(Footer):
    """textual's Footer, rebuilt once per refresh however often the bindings change before it.

    The stock Footer schedules a full recompose (a widget per key, each restyled) for every
    `refresh_bindings()`; the Runs screen calls it whenever the row under the cursor or the focus may
    have changed, ~9 times before its first frame, which cost ~0.1 s of the TUI's start. One pending
    recompose at a time shows the same keys."""

    _recompose_pending = False

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not (self.is_attached and screen is self.screen):
            return
        if not self._recompose_pending:
            self._recompose_pending = True
            self.call_after_refresh(self._recompose_once)

    async def _recompose_once(self) -> None:
        self._recompose_pending = False  # bindings changed after this point schedule the next one
        await self.recompose()


class RowsTable(DataTable):
    """A DataTable whose rows are rebuilt from polled records.

    Textual 8.2 measures new rows' column widths when the table is idle, but lines drawn between
    `add_row` and that moment stay cached with the old widths (cells cut to the header's width).
    When the widths change, drop the cached lines (`notify_style_update` is the public way)."""

    # DataTable binds Home/End to sideways scrolling; in a list of runs they mean first/last row (as
    # do g/G, the vim/less keys lazygit and k9s use).
    BINDINGS = [Binding("home,g", "cursor_first", "First", show=False),
                Binding("end,G", "cursor_last", "Last", show=False),
                # DataTable's own Enter is hidden, and as the focused widget's it hides the screen's: name it.
                Binding("enter", "select_cursor", "Open", show=True)]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._widths: tuple[int, ...] = ()

    def action_cursor_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_cursor_last(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def on_idle(self, event: events.Idle) -> None:
        widths = tuple(c.content_width for c in self.columns.values())
        if widths != self._widths:
            self._widths = widths
            self.notify_style_update()


# -- heat colours ---------------------------------------------------------------------------------
_STOPS = ((0.0, (90, 20, 20)), (50.0, (150, 30, 30)), (70.0, (175, 90, 10)), (85.0, (150, 130, 20)),
          (95.0, (70, 125, 20)), (100.0, (20, 120, 60)))


def heat_color(v: float) -> str:
    """Background colour of an accuracy (%): dark red (0) → orange (70) → yellow (85) → green (100)."""
    v = min(max(v, 0.0), 100.0)
    for (x0, c0), (x1, c1) in zip(_STOPS, _STOPS[1:]):
        if v <= x1:
            f = (v - x0) / (x1 - x0)
            r, g, b = (round(a + (b_ - a) * f) for a, b_ in zip(c0, c1))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#14783c"


UNTRAINED = Style(color="grey50", italic=True)
"""An accuracy on a task the network has not been trained on yet (chance level, not forgetting)."""


def heat_table(rec: RunRecord, title: str = "accuracy % · row i: after task i") -> Text:
    """The accuracy matrix as a coloured heat table; empty cells (not evaluated yet) are dim dots.
    The diagonal (each task right after learning it) is bold and underlined.

    Built as one Text rather than a rich Table: a 20×20 Table takes ~20 ms to lay out, this ~1 ms."""
    n_tasks = len(rec.task_names)
    digits = 1 if n_tasks <= 10 else 0  # 20 tasks at 4 columns each still fit 100 columns
    width = len(f"{100:.{digits}f}")
    labels = []
    for tasks in rec.phase_tasks:
        labels.append(phase_label(rec.task_names, tasks)[:8])
    label_w = max(len(x) for x in labels) if labels else 3
    out = Text(no_wrap=True, overflow="crop")
    out.append(title + "\n", style="bold")
    out.append(" " * label_w + "".join(" " + name[:width].rjust(width) for name in rec.task_names) + "\n",
               style="bold")
    square = rec.acc.shape[0] == rec.acc.shape[1]
    styles: dict[tuple[str, bool], Style] = {}
    # A task not trained yet scores near chance: grey, not the red of a forgotten one.
    trained: set[int] = set()
    for i, row in enumerate(rec.acc):
        trained.update(rec.phase_tasks[i] if i < len(rec.phase_tasks) else ())
        out.append(labels[i].ljust(label_w), style="bold")
        for j, v in enumerate(row):
            if math.isnan(v):
                out.append(" " + "·".rjust(width), style="dim")
                continue
            if j not in trained:
                out.append(" " + f"{v:.{digits}f}".rjust(width), style=UNTRAINED)
                continue
            diag = square and i == j
            key = (heat_color(v), diag)
            style = styles.get(key) or styles.setdefault(
                key, Style(color="white", bgcolor=key[0], bold=diag, underline=diag))
            out.append(" " + f"{v:.{digits}f}".rjust(width), style=style)
        if i < len(rec.acc) - 1:
            out.append("\n")
    return out


def progress_table(rec: RunRecord) -> Table:
    """Run and task progress bars with step rate and ETA."""
    p = progress_of(rec)
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(justify="right", style="bold", no_wrap=True)
    t.add_column(ratio=1)
    t.add_column(no_wrap=True)
    t.add_row("run", ProgressBar(total=max(p.total, 1), completed=p.done), p.run_line())
    t.add_row(p.title, ProgressBar(total=max(p.phase_total, 1), completed=p.in_phase), p.phase_line)
    return t


def run_header(rec: RunRecord) -> Text:
    """Two lines: id, status and device; then preset, benchmark, method, model and seed."""
    st = rec.live_status
    env = rec.environment
    out = Text()
    out.append(rec.run_id, style="bold")
    out.append(f"  {st}", style=status_style(st))
    out.append(f"  device {env.get('device', '?')}", style="dim")
    if rec.group:
        out.append(f"  group {rec.group}", style="dim")
    out.append(f"\n{rec.preset} · {rec.benchmark} · {rec.method} · {rec.model} · seed {rec.seed}")
    return out


class LossLine(Widget):
    """One line: the training loss as a sparkline as wide as the widget, then its last value."""

    DEFAULT_CSS = """
    LossLine { height: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        import numpy as np

        super().__init__(id=id)
        self._loss = np.zeros(0)
        self._train_acc = math.nan

    def show(self, rec: RunRecord | None) -> None:
        import numpy as np

        if rec is not None and rec.scalars.shape[0]:
            self._loss = rec.scalar("loss")
            self._train_acc = float(rec.scalar("train_acc")[-1])
        else:
            self._loss, self._train_acc = np.zeros(0), math.nan
        self.refresh()

    def render(self) -> RenderResult:
        import numpy as np

        from cltui.live import sparkline

        if self._loss.size == 0:
            return Text("loss  (no steps logged yet)", style="dim")
        tail = f" {fmt_compact(float(self._loss[-1]))} · train acc {fmt(self._train_acc, 1)}%"
        width = max(self.size.width - 6 - len(tail), 4)
        # Decimate a long history to the width (every k-th point) rather than showing only the end.
        loss = self._loss[~np.isnan(self._loss)]
        if loss.size > width:
            loss = loss[np.linspace(0, loss.size - 1, width).astype(int)]
        out = Text("loss  ", style="bold")
        out.append(sparkline(loss, width), style="cyan")
        out.append(tail)
        return out



class GroupsTable(RowsTable):
    """The seed groups under the runs: Enter compares the group's runs (and the footer says so)."""

    BINDINGS = [Binding("enter", "select_cursor", "Compare group", show=True)]
