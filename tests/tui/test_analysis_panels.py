"""Live screen: `a` cycles through a panel per analysis the run records (updated as rows arrive) and
`e` exports the run's figures in a worker, notifying the paths. Runs are written through the real
store with the series of the analyses' contract (tests/plot_records.py)."""

from __future__ import annotations

from pathlib import Path

from cltui.tui.screens.live import LiveScreen

from ..plot_records import AnalysisRun, write_analysis_run
from .conftest import screen_text, wait_for, wait_text


async def test_a_cycles_through_the_runs_analysis_panels_live(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    run = AnalysisRun(runs_dir, "study", analyses=("sparsity", "probes", "gradients"))
    run.phase(0)
    app = make_app(start_mode="live")
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_text(pilot, "study  running")
        # The curves first; the bar lists how many panels the run has (curves + its 3 analyses).
        await wait_text(pilot, "panel 1/4: forgetting curves")
        await wait_text(pilot, "a Panels")  # in the footer once a run with analyses is shown
        await pilot.press("a")
        text = await wait_text(pilot, "panel 2/4: sparsity")
        assert "population sparsity and dormant units per layer" in text
        assert not app.screen.query_one("#live-curves").display
        await pilot.press("a")
        text = await wait_text(pilot, "panel 3/4: probes")
        assert "probe accuracy (%) · h1" in text and "after 1: 1/2" in text and "95.0" in text
        assert "after 2: 3/4" not in text
        # The run goes on: the probe table grows by one row without a key press.
        run.phase(1)
        text = await wait_text(pilot, "after 2: 3/4")
        assert "92.0" in text  # h1's seen-class probe after task 2
        await pilot.press("a")
        text = await wait_text(pilot, "units without any gradient in the phase")
        assert "fc1_weight (120)" in text  # 15 of its units never get a gradient in the synthetic run
        row = next(line for line in text.splitlines() if "fc1_weight (120)" in line)
        assert row.split()[-2:] == ["15", "15"]
        await pilot.press("a")  # back to the curves
        await wait_text(pilot, "panel 1/4: forgetting curves")
        assert app.screen.query_one("#live-curves").display
        run.close()


async def test_a_run_without_analyses_has_no_panel_key(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    write_analysis_run(runs_dir, "plain", analyses=("none",))
    app = make_app(start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_text(pilot, "plain")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen) and app.screen.rec is not None, what="the run")
        text = await wait_text(pilot, "e Figures")
        # No bar and no `a` in the footer: the layout is the one without analyses; `e` still exports.
        assert "panel 1/" not in text and "a Panels" not in text and "e Figures" in text, text
        await pilot.pause(0.3)
        assert "a Panels" not in screen_text(app)
        await pilot.press("a")
        await pilot.pause(0.2)
        assert app.screen.query_one("#live-curves").display and "panel 1/" not in screen_text(app)


async def test_e_exports_every_figure_in_a_worker(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    run_dir = write_analysis_run(runs_dir, "study", analyses=("probes",))
    app = make_app(start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_text(pilot, "study")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen) and app.screen.rec is not None, what="the run")
        await pilot.press("e")

        def exported() -> bool:
            return any(n.title == "figures exported" for n in app._notifications)

        await wait_for(pilot, exported, timeout=120, what="the export")
        (note,) = [n for n in app._notifications if n.title == "figures exported"]
        folder = run_dir / "figures"
        assert note.message == f"wrote 3 figures to {folder}: curves.png, matrix.png, probes.png"
        for what in ("curves", "matrix", "probes"):
            assert (folder / f"study-{what}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "study  finished" in screen_text(app)  # the app stayed responsive
