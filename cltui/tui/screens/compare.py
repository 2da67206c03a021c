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
from textual.widgets import Static
from textual.worker import get_current_worker

from cltui.tui.widgets import KeysFooter, NavBar, heat_table
from cltui.views import status_style
from engine.errors import RunStoreError
from engine.presentation import (
    STD_LABEL,
    fmt,
    has_reference,
    mean_std,
    metric_cell,
    metric_rows,
    metrics_of,
    reference_of,
)
from engine.provenance import comparability_note
from engine.store import RunRecord, read_run

if TYPE_CHECKING:
    from cltui.tui.plot import CurvesPlot


def compare_table(recs: list[RunRecord], selected: int = -1) -> Table:
    """Rows: what each run is, every metric, then each run's own preset reference (and whether the run
    is comparable with it); one column per run, named by run, plus mean ± sample std over the runs.
    The `selected` run's column head is highlighted (`o` opens it)."""
    from cltui.tui.plot import short_labels

    t = Table(show_edge=False, pad_edge=False, title="metrics (%)", title_justify="left", title_style="bold")
    t.add_column("", no_wrap=True)
    for k, name in enumerate(short_labels(recs)):
        t.add_column(Text(name, style="reverse bold" if k == selected else "bold"), justify="right", no_wrap=True)
    spread = len(recs) > 1
    if spread:
        t.add_column(Text(f"mean ± sd n={len(recs)}", style="bold"), justify="right", no_wrap=True)
    pad = [""] if spread else []
    t.add_row("method", *[r.method for r in recs], *pad)
    t.add_row("seed", *[str(r.seed) for r in recs], *pad)
    t.add_row("status", *[Text(r.live_status, style=status_style(r.live_status)) for r in recs], *pad)
    refs = [reference_of(r) for r in recs]
    per_run = [metric_rows(metrics_of(r), ref) for r, ref in zip(recs, refs)]
    for k, first in enumerate(per_run[0] if per_run else []):
        vals = [rows[k].value for rows in per_run]
        finite = [v for v in vals if not math.isnan(v)]
        # The best value of a row in bold (for forgetting, lower is better).
        best = (min(finite) if first.key == "forgetting" else max(finite)) if len(finite) > 1 else None
        cells = [Text(fmt(v), style="bold green" if best is not None and v == best else "") for v in vals]
        mean, std, _ = mean_std(vals)
        t.add_row(first.label, *cells, *([metric_cell(mean, std)] if spread else []))
    if any(has_reference(ref) for ref in refs):
        # Each run against its own preset's reference (runs of different presets have different ones).
        for key in ("during", "final"):
            t.add_row(Text(f"ref {key}", style="dim"),
                      *[Text(fmt(ref.get(key)) if ref.get(key) is not None else "", style="dim") for ref in refs],
                      *pad)
        notes = [comparability_note(r.environment) for r in recs]
        if any(notes):
            t.add_row(Text("vs ref", style="dim"),
                      *[Text("not comparable", style="yellow") if n else Text("comparable", style="dim")
                        for n in notes], *pad)
    return t


def legend(recs: list[RunRecord]) -> Text:
    """Each column's full run id, and what makes a run not comparable with its reference."""
    from cltui.tui.plot import short_labels

    out = Text()
    for name, r in zip(short_labels(recs), recs):
        out.append(name, style="bold")
        out.append(f"  {r.run_id}\n", style="dim")
        note = comparability_note(r.environment)
        if note:
            out.append(f"  {note}\n", style="yellow")
    out.append(f"sd: {STD_LABEL}", style="dim")
    return out


class CompareScreen(Screen[None]):
    """Runs side by side."""

    MODE = "compare"
    HELP = ("Two or more runs side by side: what each is and its metrics (best in green), mean ± sample "
            "std over the runs, and each run's own preset reference (marked 'not comparable' when the run's "
            "overrides change the protocol); the mean accuracy over seen tasks of every run on one plot, with "
            "x = task index + fraction of the task (so runs of different lengths line up) and task "
            "boundaries; and each run's accuracy matrix. Columns are named by run (the id without its date). "
            "Left/right (h/l) select a run, `o` opens it live. Choose runs on the Runs screen: space marks, "
            "`c` compares; enter on a seed group compares its runs.")
    BINDINGS = [Binding("left,h", "select(-1)", "◀"), Binding("right,l", "select(1)", "▶ select run"),
                Binding("o", "open_selected", "Open selected")]

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
        self.selected = 0

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
        yield KeysFooter()

    def show_runs(self, run_dirs: list[Path]) -> None:
        self.run_dirs = [Path(p) for p in run_dirs]
        self._last_sig = None
        self._wake.set()

    def on_mount(self) -> None:
        self._follow()

    def on_resize(self, event: events.Resize) -> None:
        # Under 110 columns the metrics table (three runs and their mean need ~70) and the plot do not
        # both fit: the table takes the width and the plot steps aside (the matrices stay below).
        self.set_class(event.size.width < 110, "-narrow")

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
        self.selected = min(self.selected, max(len(recs) - 1, 0))
        self.query_one("#compare-metrics", Static).update(Group(compare_table(recs, self.selected), Text(""),
                                                                legend(recs)))
        self._plot().show_many(recs)
        box = self.query_one("#compare-matrices", HorizontalScroll)
        statics = list(box.query(Static))
        if len(statics) != len(recs):
            box.remove_children()
            statics = [Static(classes="compare-matrix") for _ in recs]
            box.mount_all(statics)
        from cltui.tui.plot import short_labels

        for s, r, name in zip(statics, recs, short_labels(recs)):
            s.update(heat_table(r, title=name))

    def action_select(self, delta: int) -> None:
        if not self.recs:
            return
        self.selected = (self.selected + delta) % len(self.recs)
        self.query_one("#compare-metrics", Static).update(Group(compare_table(self.recs, self.selected), Text(""),
                                                                legend(self.recs)))

    def action_open_selected(self) -> None:
        if self.recs:
            self.app.open_run(self.recs[self.selected].run_dir)  # type: ignore[attr-defined]
