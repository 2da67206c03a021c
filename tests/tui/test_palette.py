"""The command palette (ctrl+p) reaches every action: screens, launch, compare, and per run open,
stop, resume, export and delete, each through the same screen action (and confirmation) as its key."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette

from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.screens.runs import RunsScreen

from .conftest import FakeExecutor, dead_run, finished_run, wait_for
from .test_runs_screen import _ids


async def _run_command(pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), what="palette")
    await pilot.press(*text)
    await pilot.pause(0.5)  # the palette searches its providers asynchronously
    await pilot.press("enter")


async def test_palette_delete_asks_then_deletes(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    finished_run(runs_dir, "done", created="2025-01-01T00:00:01")
    finished_run(runs_dir, "other", created="2025-01-01T00:00:02")
    app = make_app(start_mode="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 2)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for verb in ("Open run done", "Export figures of run done", "Delete run done", "Launch the selected preset",
                     "Compare marked runs"):
            assert verb in titles
        await _run_command(pilot, "Delete run done")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: _ids(app) == ["other"], what="deleted")
        assert not (runs_dir / "done").exists() and (runs_dir / "other").is_dir()


async def test_palette_resume(make_app, runs_dir: Path, executor: FakeExecutor) -> None:  # type: ignore[no-untyped-def]
    dead_run(runs_dir, "killed")
    app = make_app(start_mode="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 1)
        assert isinstance(app.screen, RunsScreen)
        await _run_command(pilot, "Resume run killed")
        await wait_for(pilot, lambda: executor.resumed == [runs_dir / "killed"], what="resumed")
