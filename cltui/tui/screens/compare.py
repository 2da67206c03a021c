"""The Compare screen: two or more runs side by side — a metrics table, their mean seen-task
accuracy curves on one plot, and their accuracy matrices next to each other.

Pick runs on the Runs screen (space marks, `c` compares; enter on a seed group compares its runs).
The runs are re-read about once a second while any of them is still running.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from cltui.tui.widgets import NavBar, heat_table
from cltui.views import status_style
from engine.errors import RunStoreError
from engine.presentation import (
    fmt,
    has_reference,
    metric_rows,
    metrics_of,
    reference_of,
)
from engine.store import RunRecord, read_run

if TYPE_CHECKING:
    from cltui.tui.plot import CurvesPlot


def compare_table(recs: list[RunRecord]) -> Table:
    """Rows: what each run is, then every metric; one column per run, plus the first run's reference."""
    t = Table(show_edge=False, pad_edge=False, title="metrics (%)", title_justify="left", title_style="bold")
    t.add_column("")
    for k in range(1, len(recs) + 1):
        t.add_column(f"{k}", justify="right", no_wrap=True)
    ref = reference_of(recs[0]) if recs else {}
    has_ref = has_reference(ref)
    if has_ref:
        t.add_column("ref", justify="right", style="dim")
    pad = [""] if has_ref else []
    t.add_row("method", *[r.method for r in recs], *pad)
    t.add_row("seed", *[str(r.seed) for r in recs], *pad)
    t.add_row("status", *[Text(r.live_status, style=status_style(r.live_status)) for r in recs], *pad)
    per_run = [metric_rows(metrics_of(r), ref) for r in recs]
    for k, first in enumerate(per_run[0] if per_run else []):
        vals = [rows[k].value for rows in per_run]
        finite = [v for v in vals if not math.isnan(v)]
        # The best value of a row in bold (for forgetting, lower is better).
        best = (min(finite) if first.key == "forgetting" else max(finite)) if len(finite) > 1 else None
        cells = [Text(fmt(v), style="bold green" if best is not None and v == best else "") for v in vals]
        t.add_row(first.label, *cells, *([first.reference_cell] if has_ref else []))
    return t


def legend(recs: list[RunRecord]) -> Text:
    out = Text()
    for k, r in enumerate(recs, 1):
        out.append(f"{k} ", style="bold")
        out.append(f"{r.run_id}\n")
    return out


class CompareScreen(Screen[None]):
    """Runs side by side."""

    MODE = "compare"
    HELP = ("Two or more runs side by side: what each is and its metrics (best in green; the reference "
            "column is the first run's preset), the mean accuracy over seen tasks vs step of every run on "
            "one plot, and each run's accuracy matrix. Choose runs on the Runs screen: space marks, `c` "
            "compares; enter on a seed group compares its runs. Numbers in the table and plot legend "
            "match the list under the table.")
    BINDINGS = [Binding("o", "open_first", "Open run 1 live")]

    @dataclass
    class Read(Message):
        """Fresh records of the compared runs (posted only when one changed)."""

        recs: list[RunRecord]

    def __init__(self) -> None:
        super().__init__()
        self.run_dirs: list[Path] = []
        self.recs: list[RunRecord] = []
        self._active = False
        self._wake = threading.Event()
        self._closing = False
        self._last_sig: tuple | None = None

    def _plot(self) -> CurvesPlot:
        from cltui.tui.plot import CurvesPlot

        return self.query_one("#compare-curves", CurvesPlot)

    def compose(self) -> ComposeResult:
        from cltui.tui.plot import (
            CurvesPlot,  # plotext (~50 ms): imported when this screen is first shown
        )

        yield NavBar(self.MODE)
        with Vertical(id="compare-body"):
            with Horizontal(id="compare-top"):
                # One Static for table and legend: its auto width is the table's (nested auto-width
                # containers size to their narrowest child here).
                yield Static(Text("mark runs on the Runs screen (2) with space, then press c", style="dim"),
                             id="compare-metrics")
                yield CurvesPlot(id="compare-curves")
            yield HorizontalScroll(id="compare-matrices")
        yield Footer()

    def show_runs(self, run_dirs: list[Path]) -> None:
        self.run_dirs = [Path(p) for p in run_dirs]
        self._last_sig = None
        self._wake.set()

    def on_mount(self) -> None:
        self._follow()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        self._active = True
        self._wake.set()

    def on_screen_suspend(self, event: events.ScreenSuspend) -> None:
        self._active = False

    def on_unmount(self) -> None:
        self._closing = True  # end the reader now: quitting waits for worker threads
        self._wake.set()

    @work(thread=True, exclusive=True, group="compare-poll")
    def _follow(self) -> None:
        worker = get_current_worker()
        interval = self.app.settings.runs_poll  # type: ignore[attr-defined]
        while not (worker.is_cancelled or self._closing):
            self._wake.wait(interval)
            self._wake.clear()
            dirs = list(self.run_dirs)
            if self._closing:
                return
            if not self._active or not dirs:
                continue
            recs = []
            for d in dirs:
                try:
                    recs.append(read_run(d))
                except RunStoreError:
                    continue  # deleted meanwhile: compare the rest
            sig = tuple((r.run_id, r.live_status, r.progress, r.updated, r.curve_steps.size) for r in recs)
            if sig != self._last_sig:
                self._last_sig = sig
                self.post_message(self.Read(recs))

    def on_compare_screen_read(self, msg: Read) -> None:
        self.update_from(msg.recs)

    def update_from(self, recs: list[RunRecord]) -> None:
        self.recs = recs
        self.query_one("#compare-metrics", Static).update(Group(compare_table(recs), Text(""), legend(recs)))
        self._plot().show_many(recs)
        box = self.query_one("#compare-matrices", HorizontalScroll)
        statics = list(box.query(Static))
        if len(statics) != len(recs):
            box.remove_children()
            statics = [Static(classes="compare-matrix") for _ in recs]
            box.mount_all(statics)
        for k, (s, r) in enumerate(zip(statics, recs), 1):
            s.update(heat_table(r, title=f"{k} {r.method} s{r.seed}"))

    def action_open_first(self) -> None:
        if self.recs:
            self.app.open_run(self.recs[0].run_dir)  # type: ignore[attr-defined]
