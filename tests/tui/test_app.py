"""App-wide: numbered tabs by key and mouse, help, command palette entries, start screen, quit."""

from __future__ import annotations

from pathlib import Path

from textual.app import SystemCommand

from cltui.tui.screens.compare import CompareScreen
from cltui.tui.screens.help import HelpScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.screens.presets import PresetsScreen
from cltui.tui.screens.runs import RunsScreen
from cltui.tui.services import Settings
from cltui.tui.widgets import NavBar

from .conftest import FakeExecutor, finished_run, wait_for


async def test_starts_on_presets_without_runs_and_tabs_switch(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, PresetsScreen)
        for key, cls in (("2", RunsScreen), ("3", LiveScreen), ("4", CompareScreen), ("1", PresetsScreen)):
            await pilot.press(key)
            await wait_for(pilot, lambda cls=cls: isinstance(app.screen, cls), what=cls.__name__)
        # Mouse: click "4 Compare" in the tab bar (offsets from the bar's text).
        bar = app.screen.query_one(NavBar)
        text = str(bar.render())
        await pilot.click(NavBar, offset=(text.index("4 Compare") + 2, 0))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="clicked tab")
        await pilot.click(NavBar, offset=(text.index("2 Runs") + 2, 0))
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="clicked tab")


async def test_starts_on_runs_when_runs_exist(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    finished_run(runs_dir, "one")
    app = make_app()
    async with app.run_test(size=(80, 24)):
        assert isinstance(app.screen, RunsScreen)


async def test_help_and_palette_commands(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    finished_run(runs_dir, "one")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.latest_records) == 1)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        titles = [c.title for c in app.get_system_commands(app.screen) if isinstance(c, SystemCommand)]
        for t in ("Presets screen", "Runs screen", "Live screen", "Compare screen", "Help", "Open run one"):
            assert t in titles
        cmd = next(c for c in app.get_system_commands(app.screen) if c.title == "Open run one")
        cmd.callback()
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen))
        # ctrl+p opens Textual's palette; typing filters it and enter runs the command.
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Compare screen")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="palette command")


async def test_quit_leaves_runs_alone(make_app, runs_dir: Path, executor: FakeExecutor) -> None:  # type: ignore[no-untyped-def]
    finished_run(runs_dir, "one")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause(0.1)
    assert (runs_dir / "one" / "run.h5").is_file()
    assert executor.submitted == [] and executor.resumed == []


def test_settings_from_env(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CLTUI_RUNS_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("CLTUI_DATA_DIR", "/data/x")
    s = Settings.from_env()
    assert s.runs_dir == tmp_path / "r" and s.data_dir == "/data/x"
    monkeypatch.delenv("CLTUI_RUNS_DIR")
    monkeypatch.delenv("CLTUI_DATA_DIR")
    s = Settings.from_env()
    assert s.runs_dir == Path("runs") and s.data_dir is None
