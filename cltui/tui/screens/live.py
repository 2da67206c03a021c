"""The Live screen: one run as it trains (or as it ended), read from the run store ~4 times a second.

Progress with step rate and ETA, the loss sparkline, the accuracy matrix as a heat table that fills
in as tasks finish, forgetting curves, metrics so far beside the preset's reference, and the error
of a failed run. It follows the store, not a process, so runs started anywhere show the same way.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static
from textual.timer import Timer
from textual.worker import get_current_worker

from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.widgets import KeysFooter, LossLine, NavBar, heat_table, progress_table, run_header
from cltui.views import inference_table, metrics_table, reference_lines, status_alert
from engine.errors import RunStoreError
from engine.presentation import metrics_of, resume_of
from engine.run_index import RunSummary
from engine.store import RunRecord, read_run

if TYPE_CHECKING:
    from cltui.tui.panels import PanelArea
    from cltui.tui.plot import CurvesPlot

PLOT_EVERY = 1.0
"""Seconds between redraws of a running run's forgetting curves."""


def _signature(rec: RunRecord) -> tuple:
    """What changes when a run makes progress; an unchanged signature skips the redraw."""
    return (rec.run_id, rec.status, rec.live_status, rec.progress, rec.updated, rec.curve_steps.size,
            rec.scalar_steps.size, rec.error)


class LiveScreen(Screen[None]):
    """Follow one run."""

    MODE = "live"
    HELP = ("Shows one run while it trains: progress with step rate and ETA, the loss, the accuracy "
            "matrix (row i = after task i, column j = task j; the diagonal is each task right after it "
            "was learned), forgetting curves with task boundaries, and the metrics so far beside the "
            "preset's published reference. With no run chosen it follows the newest running one. `r` "
            "resumes an interrupted or failed run; `x` stops a running one (it checkpoints first). `a` "
            "switches the right side between the forgetting curves and a panel per analysis the run records "
            "(sparsity, probes, gradients, ...), updated as rows arrive; `e` writes every figure of the run "
            "(as `cltui plot RUN`) to its figures/ folder.")
    BINDINGS = [
        Binding("r", "resume", "Resume"),
        Binding("x", "stop", "Stop run"),
        Binding("f", "follow_newest", "Newest running"),
        Binding("a", "next_panel", "Panels"),
        Binding("e", "export", "Figures"),
    ]

    @dataclass
    class RunRead(Message):
        """A fresh record of the followed run (posted by the polling worker only when it changed)."""

        rec: RunRecord

    @dataclass
    class ReadFailed(Message):
        """The run could not be read (deleted, not a run directory)."""

        run_dir: Path
        error: str

    @dataclass
    class Exported(Message):
        """The export worker wrote the run's figures (and skipped those without data)."""

        run_id: str
        paths: list[Path]
        skipped: list[str]

    @dataclass
    class ExportFailed(Message):
        run_id: str
        error: str

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.rec: RunRecord | None = None
        self._active = False
        self._wake = threading.Event()
        self._closing = False
        self._last_sig: tuple | None = None
        self._note: tuple[Text, Text] | None = None
        self._curves_key: tuple | None = None
        self._plot_at = 0.0
        self._plot_timer: Timer | None = None
        self._matrix_key: tuple | None = None
        self._has_panels = False  # the shown run records analyses: `a` in the footer
        self._can = (False, False)  # (stop, resume) apply to the shown run: only then in the footer
        self._resuming: Path | None = None  # asked to resume, its process not writing yet: say so

    def _plot(self) -> CurvesPlot:
        from cltui.tui.plot import CurvesPlot

        return self.query_one("#live-curves", CurvesPlot)

    def _panels(self) -> PanelArea:
        from cltui.tui.panels import PanelArea

        return self.query_one("#live-right", PanelArea)

    def compose(self) -> ComposeResult:
        from cltui.tui.panels import PanelArea  # plotext (~50 ms): imported when this screen is first shown

        yield NavBar(self.MODE)
        with Vertical(id="live-body"):
            yield Static(Text("no run yet: launch a preset (1) or open a run (2)", style="dim"), id="live-head")
            yield Static("", id="live-progress")
            yield LossLine(id="live-loss")
            yield Static("", id="live-alert")
            with Horizontal(id="live-main"):
                with VerticalScroll(id="live-left"):
                    yield Static("", id="live-matrix")
                    yield Static("", id="live-metrics")
                    yield Static("", id="live-error")
                yield PanelArea(id="live-right", every=PLOT_EVERY)  # the curves (#live-curves) or an analysis
        yield KeysFooter()

    # -- choosing the run ----------------------------------------------------------------------
    def show_run(self, run_dir: Path) -> None:
        """Follow `run_dir` from now on (read immediately)."""
        if self.run_dir != Path(run_dir) and self.query("#live-right"):
            self._panels().reset()
        if self._resuming is not None and self._resuming != Path(run_dir):
            self._resuming = None
        self.run_dir = Path(run_dir)
        self._last_sig, self._note = None, None
        self._wake.set()

    def show_resuming(self, run_dir: Path) -> None:
        """Resuming the run already shown keeps it on screen (the engine needs 10-20 s to import torch
        and load data before it writes again); only the alert line says what is happening."""
        if self.rec is None or Path(self.rec.run_dir) != Path(run_dir) or not self.query("#live-alert"):
            self.show_starting(f"resuming {Path(run_dir).name}")
            return
        self._note = None
        self._resuming = Path(run_dir)
        self.query_one("#live-alert", Static).update(self._resuming_text(self.rec.run_id))
        self._can = (False, False)
        self.refresh_bindings()

    @staticmethod
    def _resuming_text(run_id: str) -> Text:
        return Text(f"resuming {run_id}…  (the engine process imports torch and loads data first)", style="bold cyan")

    def show_starting(self, what: str) -> None:
        self.run_dir, self.rec, self._last_sig = None, None, None
        self._note = (Text(f"starting {what}…  (the engine process imports torch and loads data first)",
                           style="bold cyan"), Text(""))
        self._show_note()

    def show_launch_error(self, what: str, error: str) -> None:
        self._resuming = None
        self._note = (Text(f"could not start {what}", style="bold red"), Text(error, style="red"))
        self._show_note()

    def _show_note(self) -> None:
        """Draw the placeholder (starting…, launch error); the app may call before the screen is composed,
        in which case on_mount draws it."""
        if self._note is None or not self.query("#live-head"):
            return
        head, alert = self._note
        self._curves_key = self._matrix_key = None
        self.query_one("#live-head", Static).update(head)
        self.query_one("#live-alert", Static).update(alert)
        for wid in ("#live-progress", "#live-matrix", "#live-metrics", "#live-error"):
            self.query_one(wid, Static).update("")
        self.query_one("#live-loss", LossLine).show(None)
        self._plot().show(None)
        self._panels().reset()
        self._panels().show(None)
        self._refresh_keys()

    def action_follow_newest(self) -> None:
        recs = [r for r in getattr(self.app, "latest_records", []) if r.live_status == "running"]
        if not recs:
            self.notify("no run is running")
            return
        self.show_run(max(recs, key=lambda r: r.updated).run_dir)

    # -- polling -------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._show_note()
        self._follow()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        self._active = True
        self.records_changed(getattr(self.app, "latest_records", []))
        self._wake.set()

    def records_changed(self, records: list[RunSummary]) -> None:
        """From the app's store poller: an idle Live screen picks up the newest running run, so a
        run started elsewhere (`cltui run` in another terminal) appears here by itself."""
        if not self._active or self.run_dir is not None or self.rec is not None or self._note is not None:
            return
        running = [r for r in records if r.live_status == "running"]
        if running:
            self.show_run(max(running, key=lambda r: r.updated).run_dir)

    def on_screen_suspend(self, event: events.ScreenSuspend) -> None:
        self._active = False

    def on_unmount(self) -> None:
        # Wake the reader so it ends now: quitting waits for worker threads to finish.
        self._closing = True
        self._wake.set()

    @work(thread=True, exclusive=True, group="live-poll")
    def _follow(self) -> None:
        """One long-lived reader: every live_poll seconds (or when woken) read the followed run."""
        worker = get_current_worker()
        interval = self.app.settings.live_poll  # type: ignore[attr-defined]
        while not (worker.is_cancelled or self._closing):
            self._wake.wait(interval)
            self._wake.clear()
            run_dir = self.run_dir
            if self._closing:
                return
            if not self._active or run_dir is None:
                continue
            try:
                rec = read_run(run_dir)
            except RunStoreError as e:
                self.post_message(self.ReadFailed(run_dir, str(e)))
                continue
            sig = _signature(rec)
            if sig != self._last_sig:
                self._last_sig = sig
                self.post_message(self.RunRead(rec))

    def on_live_screen_read_failed(self, msg: ReadFailed) -> None:
        if msg.run_dir != self.run_dir:
            return
        self.run_dir, self.rec, self._last_sig = None, None, None
        self._note = (Text(msg.error, style="yellow"), Text(""))
        self._show_note()

    def on_live_screen_run_read(self, msg: RunRead) -> None:
        if self.run_dir is None or msg.rec.run_dir != self.run_dir:
            return  # a read of a run we stopped following
        self.update_from(msg.rec)

    def update_from(self, rec: RunRecord) -> None:
        """Redraw from one record. Header, progress and loss change with every step; the matrix,
        metrics and alert only when the matrix or status does, the plot only with a new curve point
        (rebuilding a 20-task plot costs tens of ms, so it is not done 4 times a second for nothing)."""
        self.rec = rec
        self.query_one("#live-head", Static).update(run_header(rec))
        self.query_one("#live-progress", Static).update(progress_table(rec))
        self.query_one("#live-loss", LossLine).show(rec)
        self._panels().show(rec)
        self._refresh_keys()
        curves_key = (rec.run_dir, rec.curve_steps.size, rec.progress[1])
        if curves_key != self._curves_key:
            # A 20-task plot at 200×60 costs ~100-250 ms to build and draw; a fast GPU run brings a
            # curve point with nearly every read, so a running run's plot is redrawn at most once
            # per PLOT_EVERY seconds (a timer draws the last point if nothing else arrives).
            wait = self._plot_at + PLOT_EVERY - time.monotonic()
            if (rec.live_status != "running" or wait <= 0 or self._curves_key is None
                    or self._curves_key[0] != rec.run_dir):
                self._curves_key, self._plot_at = curves_key, time.monotonic()
                self._plot().show(rec)
            elif self._plot_timer is None:
                self._plot_timer = self.set_timer(wait, self._plot_pending)
        inferred = rec.series.get("inferred_task_acc")  # task inference rows come just after the matrix's
        matrix_key = (rec.run_dir, rec.acc.tobytes(), rec.status, rec.live_status, rec.error,
                      0 if inferred is None else inferred.steps.size)
        if matrix_key == self._matrix_key:
            return
        self._matrix_key = matrix_key
        self.query_one("#live-matrix", Static).update(heat_table(rec))
        parts = [Text(""), metrics_table(rec, metrics_of(rec))]
        inference = inference_table(rec)
        if inference is not None:
            parts += [Text(""), inference]
        self.query_one("#live-metrics", Static).update(Group(*parts, *reference_lines(rec)))
        # The alert line is always visible; the full error text sits under the metrics (scroll).
        if self._resuming is not None and (rec.live_status == "running" or Path(rec.run_dir) != self._resuming):
            self._resuming = None  # its process is writing again
        alert, err = (self._resuming_text(rec.run_id), "") if self._resuming is not None else status_alert(rec)
        self.query_one("#live-alert", Static).update(alert)
        self.query_one("#live-error", Static).update(err)

    def _plot_pending(self) -> None:
        self._plot_timer = None
        if self.rec is not None:
            self.update_from(self.rec)

    # -- actions -------------------------------------------------------------------------------
    def action_resume(self) -> None:
        if self.rec is None:
            self.notify("no run shown")
            return
        res = resume_of(self.rec)
        if not res.possible:
            self.notify(f"run {self.rec.run_id}: {res.text}")
            return
        self.app.resume_run(self.rec.run_dir)  # type: ignore[attr-defined]

    def action_stop(self) -> None:
        rec = self.rec
        if rec is None or rec.live_status != "running":
            self.notify("no running run shown")
            return

        def stop(yes: bool | None) -> None:
            if not yes:
                return
            self.app.stop_run(rec)  # type: ignore[attr-defined]  # the engine checkpoints and marks it interrupted

        self.app.push_screen(ConfirmScreen(f"Stop run {rec.run_id}?",
                                           "It writes a checkpoint and can be resumed later."), stop)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A key is shown (and works) only where it applies: `a` for a run with analysis panels, Stop
        for a running run, Resume for one that can resume, Figures for any shown run."""
        if action == "next_panel":
            return self._has_panels
        if action == "stop":
            return self._can[0]
        if action == "resume":
            return self._can[1]
        if action == "export":
            return self.rec is not None
        return True

    def _refresh_keys(self) -> None:
        has = self.rec is not None and len(self._panels().panels()) > 1
        rec = self.rec
        can = (rec is not None and rec.live_status == "running",
               rec is not None and self._resuming is None and rec.live_status != "running" and resume_of(rec).possible)
        if has != self._has_panels or can != self._can:
            self._has_panels, self._can = has, can
            self.refresh_bindings()

    def action_next_panel(self) -> None:
        self._panels().cycle()

    def action_export(self) -> None:
        if self.rec is None:
            self.notify("no run shown")
            return
        self.export_run(self.rec.run_dir)

    def export_run(self, run_dir: Path) -> None:
        """Write every figure of `run_dir` to its figures/ folder (in a worker; a toast says where)."""
        self.notify(f"drawing the figures of {Path(run_dir).name}…")
        self._export(Path(run_dir))

    @work(thread=True, exclusive=True, group="export")
    def _export(self, run_dir: Path) -> None:
        """Every figure of the run, as `cltui plot RUN` draws them, into its figures/ folder (a fresh
        read: matplotlib takes about a second per figure, so this runs off the UI thread)."""
        from cltui.figures.export import write_figures
        from engine.errors import CltuiError

        run_id = run_dir.name
        try:
            rec = read_run(run_dir)
            run_id = rec.run_id
            paths, skipped = write_figures(rec, ["all"], "png", run_dir / "figures")
        except (CltuiError, OSError) as e:
            self.post_message(self.ExportFailed(run_id, str(e)))
            return
        self.post_message(self.Exported(run_id, paths, skipped))

    def on_live_screen_exported(self, msg: Exported) -> None:
        if not msg.paths:
            self.notify(f"{msg.run_id}: no figure has data yet", severity="warning", markup=False)
            return
        folder = msg.paths[0].parent
        names = ", ".join(p.name.removeprefix(f"{msg.run_id}-") for p in msg.paths)
        self.notify(f"wrote {len(msg.paths)} figures to {folder}: {names}", title="figures exported", timeout=10,
                    markup=False)

    def on_live_screen_export_failed(self, msg: ExportFailed) -> None:
        self.notify(msg.error, title=f"could not export the figures of {msg.run_id}", severity="error", timeout=10,
                    markup=False)
