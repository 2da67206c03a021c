"""The cltui Textual app: four screens as modes (1 Presets, 2 Runs, 3 Live, 4 Compare), the store
poller that feeds them, and the workers that launch or resume runs.

`create_app(store, launcher, settings)` builds it from injected objects (tests pass a fake
launcher and a temporary store); `run_tui()` is what bare `cltui` runs. Never imports torch:
training happens in `python -m engine` processes started by the launcher.
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

from cltui.tui.records import RunPoller
from cltui.tui.screens.compare import CompareScreen
from cltui.tui.screens.help import HelpScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.screens.presets import PresetsScreen
from cltui.tui.screens.runs import RunsScreen
from cltui.tui.services import Launcher, LaunchError, ProcessLauncher, Settings
from engine.errors import CltuiError
from engine.store import RunRecord, RunStore

if TYPE_CHECKING:
    from engine.config import RunConfig

SCREENS: dict[str, type[Screen]] = {"presets": PresetsScreen, "runs": RunsScreen, "live": LiveScreen,
                                    "compare": CompareScreen}


def _records_signature(records: list[RunRecord]) -> tuple:
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

        records: list[RunRecord]

    @dataclass
    class Launched(Message):
        """A launched or resumed run now exists on disk."""

        run_dir: Path
        first: bool

    @dataclass
    class LaunchFailed(Message):
        what: str
        error: str

    def __init__(self, store: RunStore, launcher: Launcher, settings: Settings) -> None:
        super().__init__()
        self.store, self.launcher, self.settings = store, launcher, settings
        self.latest_records: list[RunRecord] = []
        self._poll_wake = threading.Event()
        self._closing = False
        for mode, cls in SCREENS.items():
            self.add_mode(mode, cls)

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
        while not (worker.is_cancelled or self._closing):
            self.launcher.reap()
            records = poller.poll()
            sig = _records_signature(records)
            if sig != last:
                last = sig
                self.post_message(self.RunsPolled(records))
            self._poll_wake.wait(self.settings.runs_poll)
            self._poll_wake.clear()

    def on_unmount(self) -> None:
        # Quitting waits for worker threads: wake the store poller so it ends at once.
        self._closing = True
        self._poll_wake.set()

    def on_cltui_app_runs_polled(self, msg: RunsPolled) -> None:
        self.latest_records = msg.records
        runs = self._mode_screen("runs")
        if isinstance(runs, RunsScreen):
            runs.show_records(msg.records)
        live = self._mode_screen("live")
        if isinstance(live, LiveScreen):
            live.records_changed(msg.records)

    def _mode_screen(self, mode: str) -> Screen | None:
        stack = self._screen_stacks.get(mode)  # only modes already opened have a screen
        return stack[0] if stack else None

    # -- navigation ----------------------------------------------------------------------------
    def action_goto(self, mode: str) -> None:
        self.switch_mode(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(list(SCREENS.values())))

    def _live(self) -> LiveScreen:
        self.switch_mode("live")
        screen = self._mode_screen("live")
        assert isinstance(screen, LiveScreen)
        return screen

    def open_run(self, run_dir: Path) -> None:
        """Show a stored run on the Live screen."""
        self._live().show_run(run_dir)

    def compare_runs(self, run_dirs: list[Path]) -> None:
        self.switch_mode("compare")
        screen = self._mode_screen("compare")
        assert isinstance(screen, CompareScreen)
        screen.show_runs(run_dirs)

    # -- launching -----------------------------------------------------------------------------
    def start_runs(self, cfgs: list[RunConfig], group: str = "") -> None:
        """Launch each config detached; the Live screen follows the first one."""
        what = cfgs[0].name + (f" ×{len(cfgs)} seeds" if len(cfgs) > 1 else "")
        self._live().show_starting(what)
        self._launch(cfgs, group, what)

    def resume_run(self, run_dir: Path) -> None:
        self._live().show_starting(f"resuming {Path(run_dir).name}")
        self._resume(Path(run_dir))

    @work(thread=True, group="launch")
    def _launch(self, cfgs: list[RunConfig], group: str, what: str) -> None:
        for k, cfg in enumerate(cfgs):
            try:
                run_dir = self.launcher.launch(cfg, self.settings.runs_dir, self.settings.data_dir, group=group)
            except (LaunchError, CltuiError, OSError) as e:
                self.post_message(self.LaunchFailed(what, str(e)))
                return
            self.post_message(self.Launched(run_dir, first=k == 0))

    @work(thread=True, group="launch")
    def _resume(self, run_dir: Path) -> None:
        try:
            self.post_message(self.Launched(self.launcher.resume(run_dir, self.settings.runs_dir,
                                                                 self.settings.data_dir), first=True))
        except (LaunchError, CltuiError, OSError) as e:
            self.post_message(self.LaunchFailed(f"resume of {run_dir.name}", str(e)))

    def on_cltui_app_launched(self, msg: Launched) -> None:
        self.poll_now()
        if msg.first:
            live = self._mode_screen("live")
            if isinstance(live, LiveScreen):
                live.show_run(msg.run_dir)
        self.notify(f"started {msg.run_dir.name}")

    def on_cltui_app_launch_failed(self, msg: LaunchFailed) -> None:
        live = self._mode_screen("live")
        if isinstance(live, LiveScreen):
            live.show_launch_error(msg.what, msg.error)
        self.notify(msg.error, title=f"could not start {msg.what}", severity="error", timeout=10)

    # -- command palette -----------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for i, (mode, cls) in enumerate(SCREENS.items(), 1):
            yield SystemCommand(f"{mode.capitalize()} screen", f"({i}) {cls.__doc__}", partial(self.switch_mode, mode))
        yield SystemCommand("Help", "What each screen shows and its keys (?)", self.action_help)
        for rec in self.latest_records:
            yield SystemCommand(f"Open run {rec.run_id}", f"{rec.live_status} · {rec.benchmark} · {rec.method}",
                                partial(self.open_run, rec.run_dir), discover=False)


def create_app(store: RunStore, launcher: Launcher, settings: Settings) -> CltuiApp:
    """The app from injected parts: the real ones in run_tui(), fakes in tests."""
    return CltuiApp(store, launcher, settings)


def run_tui(runs_dir: Path | None = None, data_dir: str | None = None) -> None:
    """Bare `cltui`: the runs dir and data dir come from the environment, as for the CLI."""
    overrides: dict[str, object] = {}
    if runs_dir is not None:
        overrides["runs_dir"] = Path(runs_dir)
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = Settings.from_env(**overrides)
    create_app(RunStore(settings.runs_dir), ProcessLauncher(), settings).run()
