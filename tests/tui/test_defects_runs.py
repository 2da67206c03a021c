"""Issue 15 defects on the Runs screen, each replayed with its key sequence: the id column first and
whole at 80 columns, Home/End/g/G, space/d acting on the focused table only, clearing marks, stopping
a run from here, and footer hints that follow the focused table and row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textual.widgets import DataTable

from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.screens.runs import RunsScreen

from .conftest import screen_text, start_run, wait_for, wait_text
from .test_runs_screen import _ids, _populate


def _cursor_id(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.screen.current_run_id())


async def test_id_column_first_and_whole_at_80_columns(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    rid = "20250101-000001-split-mnist-ewc-s0"
    start_run(runs_dir, rid).run_phases(1)
    app = make_app(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: _ids(app) == [rid])
        await pilot.pause(0.2)
        row = next(ln for ln in screen_text(app).splitlines() if rid in ln)
        assert row.index(rid) <= 4 and "running" in row and "100/500" in row


async def test_home_end_g_G_move_the_cursor(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _populate(runs_dir)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 6)
        await pilot.press("end")
        assert _cursor_id(app) == "ewc-s0"
        await pilot.press("home")
        assert _cursor_id(app) == "live"
        await pilot.press("G")
        assert _cursor_id(app) == "ewc-s0"
        await pilot.press("g")
        assert _cursor_id(app) == "live"


async def test_space_and_d_do_nothing_to_runs_while_groups_have_focus(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _populate(runs_dir)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 6)
        screen = app.screen
        groups = screen.query_one("#groups-table", DataTable)
        await wait_for(pilot, lambda: groups.row_count == 1)
        groups.focus()
        await pilot.press("space", "d")
        await pilot.pause(0.2)
        assert screen.marked == set() and isinstance(app.screen, RunsScreen)  # no mark, no delete dialog
        assert not screen.check_action("mark", ()) and not screen.check_action("delete", ())
        # The footer says what Enter does here (compare the group's runs), not "Open".
        await wait_text(pilot, "Compare group")
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CompareScreen", what="the comparison")


async def test_u_clears_marks(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _populate(runs_dir)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 6)
        await pilot.press("space", "space", "space")
        assert len(app.screen.marked) == 3
        await pilot.press("u")
        await pilot.pause(0.1)
        assert app.screen.marked == set() and "●" not in screen_text(app)


async def test_x_stops_the_run_under_the_cursor_after_asking(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = start_run(runs_dir, "stoppable", created="2025-01-01T00:00:09")
        run.run_phases(1)
        run.writer.f["pid"][()] = child.pid  # as if that process were training it
        run.writer.flush(force=True)
        from .conftest import finished_run

        finished_run(runs_dir, "done", created="2025-01-01T00:00:01")
        app = make_app(start_mode="runs")
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for(pilot, lambda: len(_ids(app)) == 2)
            screen = app.screen
            await pilot.press("G")  # the finished run: nothing to stop, and the footer does not offer it
            assert not screen.check_action("stop", ()) and screen.check_action("resume", ()) is False
            await pilot.press("g")
            assert screen.check_action("stop", ())
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            assert child.wait(timeout=10) == -15  # SIGTERM: the engine checkpoints and stops on it
        run.writer.close()
    finally:
        child.kill()


def _set_overrides(run_dir: Path, overrides: list[str]) -> None:
    import json

    import h5py

    with h5py.File(run_dir / "run.h5", "a") as f:
        env = json.loads(f["environment"][()])
        env["overrides"] = overrides
        del f["environment"]
        f.create_dataset("environment", data=json.dumps(env), dtype=h5py.string_dtype())


async def test_group_row_shows_its_overrides_and_n(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from .conftest import finished_run

    for seed in (0, 1, 2):
        _set_overrides(finished_run(runs_dir, f"lr-s{seed}", seed=seed, group="lr-x3"), ["training.lr=0.01"])
    app = make_app(start_mode="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        groups = app.screen.query_one("#groups-table", DataTable)
        await wait_for(pilot, lambda: groups.row_count == 1)
        assert str(groups.get_cell("lr-x3", "overrides")) == "training.lr=0.01"
        assert str(groups.get_cell("lr-x3", "n")) == "3"
        # The groups table is drawn a refresh after the runs list (its mean ± std loads numpy).
        await wait_text(pilot, "seed groups: mean ± sample std (n−1) over the group's n runs")


async def test_returning_to_runs_leaves_digits_to_the_screens(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _populate(runs_dir)
    app = make_app(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 6)
        await pilot.press("slash")  # into the filter; the footer says how to get out
        assert "Back to list" in screen_text(app)
        app.switch_mode("presets")  # (the palette or a launch leaves the screen with the box focused)
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert isinstance(app.screen.focused, DataTable)
        await pilot.press("1", "2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert app.screen.query_one("#runs-filter").value == "" and len(_ids(app)) == 6
