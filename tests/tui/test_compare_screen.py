"""Compare screen: two runs side by side (metrics table, one plot, both matrices)."""

from __future__ import annotations

from pathlib import Path

from cltui.tui.screens.compare import CompareScreen
from cltui.tui.screens.live import LiveScreen
from engine.store import read_run

from .conftest import finished_run, screen_text, start_run, wait_for, wait_text


async def test_compare_two_runs(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a = finished_run(runs_dir, "ewc-run", method="ewc", forget=4.0)
    b = finished_run(runs_dir, "ft-run", method="finetune", forget=20.0)
    app = make_app(start_mode="compare")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_text(pilot, "mark runs on the Runs screen")
        app.compare_runs([a, b])
        text = await wait_text(pilot, "ewc-run  ")
        assert "ft-run" in text
        fa, fb = read_run(a).metrics["final"], read_run(b).metrics["final"]
        assert f"{fa:.2f}" in text and f"{fb:.2f}" in text
        assert "mean accuracy (%) of seen tasks vs task" in text
        # Both matrices (mounted just after the table: on a busy machine a frame may show only the table).
        await wait_for(pilot, lambda: screen_text(app).count("T5") >= 2, what="both matrices")
        screen = app.screen
        assert isinstance(screen, CompareScreen) and len(screen.recs) == 2
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen))
        await wait_text(pilot, "ewc-run  finished")


async def test_compare_follows_a_running_run(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a = finished_run(runs_dir, "done")
    run = start_run(runs_dir, "going")
    app = make_app(start_mode="compare")
    async with app.run_test(size=(120, 40)) as pilot:
        app.compare_runs([a, run.run_dir])
        await wait_text(pilot, "running")
        run.run_phases(5)
        run.finish()
        await wait_for(pilot, lambda: [r.live_status for r in app.screen.recs] == ["finished", "finished"])
