"""The cltui Textual app: four screens as modes (1 Presets, 2 Runs, 3 Live, 4 Compare), the store
poller that feeds them, and the workers that plan, launch, resume and stop runs.

`create_app(store, executor, settings)` builds it from injected objects (tests pass a fake
executor and a temporary store); `run_tui()` is what bare `cltui` runs. Never imports torch:
training happens in `python -m engine` processes started by engine.executor.LocalExecutor
(detached, so runs outlive the TUI). Seed groups are planned by engine.planning, not here.

Start-up is part of the design: importing this module loads textual and the engine's light modules
only, never numpy, h5py or plotext (tests/test_start.py). Each screen's module is imported when its
mode is first shown; the runs arrive from the store poller's worker, which lists them through the run
index (engine/run_index.py) and so opens no run file that did not change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.worker import get_current_worker

from cltui.tui.advice import tui_advice
from cltui.tui.palette import palette_commands
from cltui.tui.records import RunPoller
from cltui.tui.screens import SCREENS, screen_class
from cltui.tui.services import Settings
from engine.errors import CltuiError
from engine.executor import Executor, RunHandle
from engine.run_index import RunSummary
from engine.store_dir import RunStore

if TYPE_CHECKING:
    from cltui.tui.screens.live import LiveScreen
    from cltui.tui.screens.runs import RunsScreen
    from engine.planning import PlannedRun

class _Quitting(Exception):
    """Raised in the store poller while it reads many runs and the app quits."""


def _records_signature(records: list[RunSummary]) -> tuple:
    return tuple((r.run_id, r.live_status, r.progress, r.updated, r.status) for r in records)


class CltuiApp(App[None]):
    """Presets, runs, live view and comparisons of continual-learning runs."""

    CSS_PATH = "app.tcss"
    TITLE = "cltui"
    BINDINGS = [
        Binding("1", "goto('presets')", "Presets", show=False),
        Binding("2", "goto('runs')", "Runs", show=False),
        Binding("3", "goto('live')", "Live", show=False),
        Binding("4", "goto('compare')", "Compare", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    @dataclass
    class RunsPolled(Message):
        """The store's runs, when any changed (from the store poller)."""

        records: list[RunSummary]

    @dataclass
    class Launched(Message):
        """A launched or resumed run now exists on disk."""

        run_dir: Path
        first: bool

    @dataclass
    class LaunchFailed(Message):
        what: str
        error: str

    @dataclass
    class SweepPlanned(Message):
        """A sweep's group record exists (its runs start next): show the group view."""

        group: str

    def __init__(self, store: RunStore, executor: Executor, settings: Settings) -> None:
        super().__init__()
        self.store, self.executor, self.settings = store, executor, settings
        self.latest_records: list[RunSummary] = []
        self.launch_failures: list[tuple[str, str, str]] = []  # (time, what, error): shown on the Runs screen
        self._handles: list[RunHandle] = []  # runs this app started and has not seen end yet
        self._handles_lock = threading.Lock()
        self._poll_wake = threading.Event()
        self._closing = False
        for mode in SCREENS:
            self.add_mode(mode, partial(self._new_screen, mode))

    @staticmethod
    def _new_screen(mode: str) -> Screen:
        return screen_class(mode)()

    # -- start and the store poller ------------------------------------------------------------
    def on_mount(self) -> None:
        # Listing run ids is a directory scan; the records themselves arrive from the poller worker.
        start = self.settings.start_mode or ("runs" if self.store.run_ids() else "presets")
        self.switch_mode(start)
        self._poll_store()

    def poll_now(self) -> None:
        self._poll_wake.set()

    @work(thread=True, exclusive=True, group="store-poll")
    def _poll_store(self) -> None:
        """One long-lived reader of the runs directory: every runs_poll seconds, post what changed."""
        worker = get_current_worker()
        poller = RunPoller(self.store)
        last: tuple | None = None

        def partial(so_far: list[RunSummary]) -> None:
            # Without an index (a first start), 1000 runs take seconds to read: show them as they come,
            # and stop reading if the app quits meanwhile (quitting waits for this thread).
            if worker.is_cancelled or self._closing:
                raise _Quitting
            self.post_message(self.RunsPolled(so_far))

        while not (worker.is_cancelled or self._closing):
            self._observe()
            try:
                records = poller.poll(partial=partial)
            except _Quitting:
                return
            sig = _records_signature(records)
            if sig != last:
                last = sig
                self.post_message(self.RunsPolled(records))
            self._poll_wake.wait(self.settings.runs_poll)
            self._poll_wake.clear()

    def _observe(self) -> None:
        """Poll the runs this app started, so ended ones are collected (a detached child that is
        never polled stays a zombie for as long as the TUI is open)."""
        with self._handles_lock:
            handles = list(self._handles)
        ended = [h for h in handles if self.executor.poll(h) is not None]
        with self._handles_lock:
            self._handles = [h for h in self._handles if h not in ended]

    def on_unmount(self) -> None:
        # Quitting waits for worker threads: wake the store poller so it ends at once.
        self._closing = True
        self._poll_wake.set()

    def on_cltui_app_runs_polled(self, msg: RunsPolled) -> None:
        self.latest_records = msg.records
        runs = self.runs_screen()
        if runs is not None:
            runs.show_records(msg.records)
        live = self.live_screen()
        if live is not None:
            live.records_changed(msg.records)

    def mode_screen(self, mode: str) -> Screen | None:
        stack = self._screen_stacks.get(mode)  # only modes already opened have a screen
        return stack[0] if stack else None

    # The screen of a mode already opened, typed (its module is loaded by then: importing it is free).
    def runs_screen(self) -> RunsScreen | None:
        screen = self.mode_screen("runs")
        if screen is None:
            return None
        from cltui.tui.screens.runs import RunsScreen

        return screen if isinstance(screen, RunsScreen) else None

    def live_screen(self) -> LiveScreen | None:
        screen = self.mode_screen("live")
        if screen is None:
            return None
        from cltui.tui.screens.live import LiveScreen

        return screen if isinstance(screen, LiveScreen) else None

    # -- navigation ----------------------------------------------------------------------------
    def action_goto(self, mode: str) -> None:
        self.switch_mode(mode)

    def action_help(self) -> None:
        from cltui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen([screen_class(mode) for mode in SCREENS]))

    def show_live(self) -> LiveScreen:
        """Switch to the Live screen (made on first use) and return it."""
        from cltui.tui.screens.live import LiveScreen

        self.switch_mode("live")
        screen = self.mode_screen("live")
        assert isinstance(screen, LiveScreen)
        return screen

    def open_run(self, run_dir: Path) -> None:
        """Show a stored run on the Live screen."""
        self.show_live().show_run(run_dir)

    def compare_runs(self, run_dirs: list[Path]) -> None:
        from cltui.tui.screens.compare import CompareScreen

        self.switch_mode("compare")
        screen = self.mode_screen("compare")
        assert isinstance(screen, CompareScreen)
        screen.show_runs(run_dirs)

    def open_group(self, group: str) -> None:
        """Push the group view (a sweep or seed group: mean ± std per grid point, its runs, bands)."""
        from cltui.tui.screens.group import GroupScreen  # imports plotext: only when a group is opened

        self.push_screen(GroupScreen(self.settings.runs_dir, group, self.settings.runs_poll))

    def ask_sweep(self) -> None:
        """The sweep launcher, preset prefilled from the Presets screen's selection."""
        from cltui.tui.screens.sweep import SweepRequest, SweepScreen

        presets = self.mode_screen("presets")

        def go(req: SweepRequest | None) -> None:
            if req is not None:
                self._sweep(req.preset, req.overrides, req.grid, req.seeds, req.parallel)

        self.push_screen(SweepScreen(str(getattr(presets, "_current", "") or "")), go)

    @work(thread=True, group="sweep")
    def _sweep(self, preset: str, overrides: list[str], grid: list[str], seeds: int, parallel: int) -> None:
        """Plan and drive a sweep (engine.sweep) through the app's executor, runs detached. This thread is
        the sweep's driver: runs not yet started when the TUI quits are not started (the group then reads
        'incomplete'); `cltui sweep` in a terminal drives one to its end."""
        from engine.planning import parse_grid
        from engine.sweep import plan_sweep, run_sweep

        try:
            parsed = parse_grid(grid)
            gid, runs, slots = plan_sweep(preset, overrides, seeds, parsed)
            first = [True]

            def started(run: PlannedRun, handle: RunHandle) -> None:
                if first[0]:
                    self.post_message(self.SweepPlanned(gid))
                self._started(handle, first=False)
                first[0] = False

            outcomes = run_sweep(self.executor, self.settings.runs_dir, gid, runs[0].config.name, overrides, parsed,
                                 runs, slots, parallel, "local", on_start=started)
            failed = [o for o in outcomes if o.handle is None]
            if failed:  # runs that never started have no record to show their error: say it here
                self.post_message(self.LaunchFailed(f"{len(failed)} run(s) of sweep {gid}", failed[0].error))
        except (CltuiError, OSError) as e:
            self.post_message(self.LaunchFailed(f"sweep of {preset}", str(e)))

    def on_cltui_app_sweep_planned(self, msg: SweepPlanned) -> None:
        self.open_group(msg.group)

    # -- launching -----------------------------------------------------------------------------
    def start_runs(self, preset: str, overrides: list[str], seeds: int = 1) -> None:
        """Plan `preset` with `overrides` over `seeds` seeds (engine.planning) and start every run
        detached; the Live screen follows the first one."""
        what = preset + (f" ×{seeds} seeds" if seeds > 1 else "")
        self.show_live().show_starting(what)
        self._launch(preset, list(overrides), seeds, what)

    def resume_run(self, run_dir: Path) -> None:
        self.show_live().show_resuming(Path(run_dir))
        self._resume(Path(run_dir))

    def stop_run(self, rec: RunSummary) -> None:
        """Ask a running run (started here or anywhere on this machine) to checkpoint and stop."""
        try:
            self.executor.stop(RunHandle(rec.run_id, rec.run_dir))
        except (CltuiError, OSError) as e:
            self.notify(f"could not stop {rec.run_id}: {e}", severity="error")

    def _started(self, handle: RunHandle, first: bool) -> None:
        with self._handles_lock:
            self._handles.append(handle)
        self.post_message(self.Launched(handle.run_dir, first=first))

    @work(thread=True, group="launch")
    def _launch(self, preset: str, overrides: list[str], seeds: int, what: str) -> None:
        from engine.planning import plan

        try:
            runs: list[PlannedRun] = plan(preset, overrides, seeds)
        except (CltuiError, OSError) as e:
            self.post_message(self.LaunchFailed(what, str(e)))
            return
        if len(runs) == 1:
            self._submit(runs[0], True, what)
            return
        # A seed group starts together: each submit waits until its engine process has imported
        # torch and loaded data (~5-10 s), so one after another they would start that far apart.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            for k, run in enumerate(runs):
                pool.submit(self._submit, run, k == 0, f"{what} (seed {run.config.seed})")

    def _submit(self, run: PlannedRun, first: bool, what: str) -> None:
        try:
            self._started(self.executor.submit(run), first=first)
        except (CltuiError, OSError) as e:  # RunStartError: the engine's structured error line
            self.post_message(self.LaunchFailed(what, str(e)))

    @work(thread=True, group="launch")
    def _resume(self, run_dir: Path) -> None:
        try:
            self._started(self.executor.resume(run_dir), first=True)
        except (CltuiError, OSError) as e:
            self.post_message(self.LaunchFailed(f"resume of {run_dir.name}", str(e)))

    def on_cltui_app_launched(self, msg: Launched) -> None:
        self.poll_now()
        if msg.first:
            live = self.live_screen()
            if live is not None:
                live.show_run(msg.run_dir)
        self.notify(f"started {msg.run_dir.name}")

    def on_cltui_app_launch_failed(self, msg: LaunchFailed) -> None:
        import time

        error = tui_advice(msg.error)
        # A failure before any run file exists would otherwise leave no trace once the toast is gone.
        self.launch_failures = [(time.strftime("%H:%M:%S"), msg.what, error), *self.launch_failures][:5]
        runs = self.runs_screen()
        if runs is not None:
            runs.show_failures(self.launch_failures)
        live = self.live_screen()
        if live is not None:
            live.show_launch_error(msg.what, error)
        self.notify(error, title=f"could not start {msg.what}", severity="error", timeout=10)

    # -- command palette (cltui/tui/palette.py) ------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from palette_commands(self)


def create_app(store: RunStore, executor: Executor, settings: Settings) -> CltuiApp:
    """The app from injected parts: the real ones in run_tui(), fakes in tests."""
    return CltuiApp(store, executor, settings)


def run_tui(runs_dir: Path | None = None, data_dir: str | None = None) -> None:
    """Bare `cltui`: the runs dir and data dir come from the environment, as for the CLI."""
    overrides: dict[str, object] = {}
    if runs_dir is not None:
        overrides["runs_dir"] = Path(runs_dir)
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = Settings.from_env(**overrides)
    from engine.executor import LocalExecutor

    executor = LocalExecutor(settings.runs_dir, settings.data_dir, detach=True)
    create_app(RunStore(settings.runs_dir), executor, settings).run()
