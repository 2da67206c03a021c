"""Live screen: follows a run while the test writes it (as the engine would, through RunWriter),
shows a dead process as interrupted, and shows a failed run's error with the app still responsive."""

from __future__ import annotations

from pathlib import Path

from cltui.tui.screens.live import LiveScreen
from cltui.tui.screens.presets import PresetsScreen
from cltui.tui.screens.runs import RunsScreen

from .conftest import FakeExecutor, dead_run, failed_run, screen_text, start_run, wait_for, wait_text


async def test_live_view_fills_in_as_the_run_is_written(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    run = start_run(runs_dir, "growing")
    app = make_app(start_mode="live")
    async with app.run_test(size=(120, 40)) as pilot:
        # With no run chosen, the Live screen follows the newest running one.
        text = await wait_text(pilot, "growing  running")
        assert "0/500" in text and "no steps logged yet" in text
        run.step_events(0, upto=50)
        run.writer.flush(force=True)
        # Progress, the rate and the task label come from separate reads of the record: wait for the rate.
        text = await wait_text(pilot, "250 it/s")
        assert "50/500" in text and "T1 · step 50 of 100" in text and "250 it/s" in text and "loss" in text
        live = app.screen
        assert isinstance(live, LiveScreen)
        assert live.rec is not None and live.rec.curve_steps.size == 2
        assert "99.0" not in text  # the matrix is still empty
        run.step_events(0, upto=100)
        run.finish_phase(0)
        run.writer.flush(force=True)
        # Progress and the matrix row are separate writes: wait for the row itself.
        text = await wait_text(pilot, " 99.0 ")
        assert "during" in text and "99.66" in text  # ours beside the reference
        run.step_events(1)
        run.finish_phase(1)
        run.writer.flush(force=True)
        text = await wait_text(pilot, " 98.5 ")
        assert " 91.0 " in text  # row 2: T1 forgot, T2 learned
        run.phase = 2
        run.run_phases(3)
        run.finish()
        await wait_text(pilot, "growing  finished")
        text = await wait_text(pilot, "-20.00")
        assert "500/500" in text and "ETA" not in text
        assert "BWT" in text and "-20.00" in text  # mean over j<4 of acc[4, j] - acc[j, j] = -8 * (4 - j)


async def test_dead_process_reads_as_interrupted(make_app, runs_dir: Path, executor: FakeExecutor) -> None:  # type: ignore[no-untyped-def]
    dead_run(runs_dir, "killed")
    app = make_app(start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_text(pilot, "interrupted")
        await pilot.press("enter")
        text = await wait_text(pilot, "killed  interrupted")
        # Killed at step 240; the last checkpoint (end of task 2) is at step 200.
        assert "interrupted at step 240, r resumes from step 200 (last checkpoint)" in text
        await pilot.press("r")
        await wait_for(pilot, lambda: executor.resumed == [runs_dir / "killed"])


async def test_failed_run_shows_error_and_app_stays_responsive(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    failed_run(runs_dir, "crashed", "RuntimeError: CUDA error: out of memory\nTraceback (most recent call last):\n"
                                    "  File \"engine/loop.py\", line 120, in run")
    app = make_app(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_text(pilot, "failed")
        await pilot.press("enter")
        text = await wait_text(pilot, "crashed  failed")
        assert "failed: RuntimeError: CUDA error: out of memory" in text  # visible at 80x24 without scrolling
        # Still responsive: switch screens, open help, come back.
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        await pilot.press("question_mark")
        await wait_text(pilot, "continual-learning runs in the terminal")
        await pilot.press("escape")
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen))
        assert "failed: RuntimeError" in screen_text(app)


async def test_diverged_run_shows_where(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from engine import events as ev

    run = start_run(runs_dir, "blewup")
    run.run_phases(1)
    run.writer(ev.RunDiverged(107, float("nan"), 106, 2.25))
    run.writer.close()
    app = make_app(start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_text(pilot, "diverged")
        await pilot.press("enter")
        text = await wait_text(pilot, "blewup  diverged")
        assert "diverged at step 107: loss = nan; last finite loss 2.25 at step 106" in text


async def test_run_deleted_while_shown(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    dead_run(runs_dir, "gone")
    app = make_app(start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_text(pilot, "interrupted")
        await pilot.press("enter")
        await wait_text(pilot, "gone  interrupted")
        shutil.rmtree(runs_dir / "gone")
        await wait_text(pilot, "cannot read run")


async def test_stop_asks_then_sends_sigterm_to_the_run_process(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from cltui.tui.screens.confirm import ConfirmScreen

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = start_run(runs_dir, "stoppable")
        run.run_phases(1)
        run.writer.f["pid"][()] = child.pid  # as if that process were training it
        run.writer.flush(force=True)
        app = make_app(start_mode="live")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_text(pilot, "stoppable  running")
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")
            await pilot.pause(0.2)
            assert child.poll() is None
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            assert child.wait(timeout=10) == -15  # SIGTERM: the engine checkpoints and stops on it
        run.writer.close()
    finally:
        child.kill()
        child.wait()


async def test_running_plot_is_redrawn_at_most_once_a_second(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from cltui.tui.plot import CurvesPlot

    run = start_run(runs_dir, "fast")
    app = make_app(start_mode="live")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_text(pilot, "fast  running")
        plot = app.screen.query_one("#live-curves", CurvesPlot)
        run.step_events(0, upto=20)
        run.writer.flush(force=True)
        await wait_for(pilot, lambda: plot._runs and plot._runs[0].curve_steps.size == 1, what="first point")
        import time

        version, drawn_at = plot._version, time.monotonic()
        run.step_events(0, upto=100)  # five more curve points right away (steps 20..100 again)
        run.writer.flush(force=True)
        await wait_text(pilot, "100/500")
        if time.monotonic() - drawn_at < 0.8:  # (a very busy machine may already be past the second)
            assert plot._version == version  # not redrawn yet (throttled)...
        await wait_for(pilot, lambda: plot._runs[0].curve_steps.size == 6, timeout=3, what="throttled redraw")
        assert plot._version == version + 1  # ...then once, with every point
        run.writer.close()
