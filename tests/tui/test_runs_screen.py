"""Runs screen: statuses (incl. dead processes), seed groups as mean ± std, filter, sort, open,
resume, and delete only after confirmation, removing only that run's directory."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from cltui.tui.screens.compare import CompareScreen
from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.screens.live import LiveScreen
from cltui.tui.screens.runs import RunsScreen
from engine.store import read_run

from .conftest import FakeExecutor, dead_run, failed_run, finished_run, start_run, wait_for, wait_text


def _ids(app) -> list[str]:  # type: ignore[no-untyped-def]
    table = app.screen.query_one("#runs-table", DataTable)
    return [str(k.value) for k in table.rows]


def _populate(runs_dir: Path):  # type: ignore[no-untyped-def]
    finished_run(runs_dir, "ewc-s0", seed=0, group="grp", created="2025-01-01T00:00:01")
    finished_run(runs_dir, "ewc-s1", seed=1, group="grp", created="2025-01-01T00:00:02")
    finished_run(runs_dir, "ft-s0", method="finetune", forget=20.0, created="2025-01-01T00:00:03")
    dead_run(runs_dir, "killed", created="2025-01-01T00:00:04")
    failed_run(runs_dir, "crashed", "RuntimeError: CUDA out of memory", created="2025-01-01T00:00:05")
    live = start_run(runs_dir, "live", created="2025-01-01T00:00:06")
    live.run_phases(1)
    return live


async def test_runs_list_statuses_and_group_mean_std(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    live = _populate(runs_dir)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        assert isinstance(app.screen, RunsScreen)  # runs exist: start on the list
        await wait_for(pilot, lambda: len(_ids(app)) == 6, what="six runs")
        assert _ids(app) == ["live", "crashed", "killed", "ft-s0", "ewc-s1", "ewc-s0"]  # newest first
        table = app.screen.query_one("#runs-table", DataTable)
        status = {rid: str(table.get_cell(rid, "status")) for rid in _ids(app)}
        assert status == {"live": "running", "crashed": "failed", "killed": "interrupted", "ft-s0": "finished",
                          "ewc-s1": "finished", "ewc-s0": "finished"}
        finals = [read_run(runs_dir / r).metrics["final"] for r in ("ewc-s0", "ewc-s1")]
        mean, std = sum(finals) / 2, abs(finals[0] - finals[1]) / 2 ** 0.5  # sample std (n-1) of two runs
        text = await wait_text(pilot, f"{mean:.2f} ± {std:.2f}")
        assert "seed groups: mean ± sample std (n−1)" in text and "2 finished" in text
        # A run that finishes elsewhere shows up as finished within a poll.
        live.run_phases(4)
        live.finish()
        await wait_for(pilot, lambda: str(table.get_cell("live", "status")) == "finished", what="live finished")


async def test_filter_and_sort(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _populate(runs_dir)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 6)
        await pilot.press("slash", *"finished grp", "enter")
        await wait_for(pilot, lambda: _ids(app) == ["ewc-s1", "ewc-s0"], what="filtered")
        await pilot.press("slash", "ctrl+u", "escape")
        await wait_for(pilot, lambda: len(_ids(app)) == 6, what="filter cleared")
        screen = app.screen
        while screen.sort_key != "final":
            await pilot.press("s")
        await wait_for(pilot, lambda: _ids(app)[:3] == ["ewc-s0", "ewc-s1", "ft-s0"], what="sorted by final")
        assert "sorted by final ↓" in str(screen.query_one("#runs-hint").render())


async def test_delete_asks_and_removes_only_that_run(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _populate(runs_dir)
    (runs_dir / "not-a-run").mkdir()  # never touched
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 6)
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=_ids(app).index("ft-s0"))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("n")  # cancel: nothing removed
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert (runs_dir / "ft-s0").is_dir()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: "ft-s0" not in _ids(app), what="row gone")
        assert not (runs_dir / "ft-s0").exists()
        left = sorted(p.name for p in runs_dir.iterdir() if p.name != ".run-index.pkl")  # the run index stays
        assert left == ["crashed", "ewc-s0", "ewc-s1", "killed", "live", "not-a-run"]


async def test_running_run_is_not_deleted(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _populate(runs_dir)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 6)
        app.screen.query_one("#runs-table", DataTable).move_cursor(row=0)  # 'live'
        await pilot.press("d")
        await pilot.pause(0.2)
        assert isinstance(app.screen, RunsScreen) and (runs_dir / "live").is_dir()


async def test_resume_interrupted_run_via_the_executor(make_app, runs_dir: Path, executor: FakeExecutor) -> None:  # type: ignore[no-untyped-def]
    _populate(runs_dir)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 6)
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=_ids(app).index("ewc-s0"))
        await pilot.press("r")  # finished: refused
        await pilot.pause(0.2)
        assert executor.resumed == []
        table.move_cursor(row=_ids(app).index("killed"))
        await pilot.press("r")
        await wait_for(pilot, lambda: executor.resumed == [runs_dir / "killed"], what="resume")
        assert isinstance(app.screen, LiveScreen)
        await wait_text(pilot, "killed  interrupted")


async def test_open_and_compare_marked_and_group(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _populate(runs_dir)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_ids(app)) == 6)
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=_ids(app).index("ft-s0"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen))
        await wait_text(pilot, "ft-s0  finished")
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("c")  # nothing marked: a hint, no switch
        await pilot.pause(0.1)
        assert isinstance(app.screen, RunsScreen)
        table.move_cursor(row=_ids(app).index("ft-s0"))
        await pilot.press("space", "space")  # marks ft-s0 and the next row (ewc-s1)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert [p.name for p in app.screen.run_dirs] == ["ewc-s1", "ft-s0"]
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        groups = app.screen.query_one("#groups-table", DataTable)
        groups.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen)
                       and [p.name for p in app.screen.run_dirs] == ["ewc-s0", "ewc-s1"], what="group compare")
