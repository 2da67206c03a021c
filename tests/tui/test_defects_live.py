"""Issue 15 defects on the Live screen and around launching, each replayed: Stop/Resume only when they
apply, resume keeping the view, "interrupted at step X, r resumes from step Y (last checkpoint)", a
NaN-loss run shown as diverged (not finished), untrained tasks not coloured as forgotten, huge losses
in compact notation, a 'not comparable' warning beside the reference, and launch failures leaving a
trace on the Runs screen with advice in the TUI's syntax."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py

from cltui.tui.screens.live import LiveScreen
from cltui.tui.screens.presets import PresetsScreen
from cltui.tui.screens.runs import RunsScreen
from cltui.tui.widgets import UNTRAINED, heat_table
from engine import events as ev
from engine.presentation import fmt_compact
from engine.store import read_run

from .conftest import FakeExecutor, dead_run, finished_run, start_run, wait_for, wait_text
from .test_presets_screen import _leaves


def _footer_actions(app) -> set[str]:  # type: ignore[no-untyped-def]
    return {b.action for (_, b, enabled, _) in app.screen.active_bindings.values()
            if b.show and app.screen.check_action(b.action, ()) is not False}


async def test_stop_and_resume_only_where_they_apply(make_app, runs_dir: Path, executor: FakeExecutor) -> None:  # type: ignore[no-untyped-def]
    done = finished_run(runs_dir, "done", created="2025-01-01T00:00:01")
    killed = dead_run(runs_dir, "killed", created="2025-01-01T00:00:02")
    live = start_run(runs_dir, "going", created="2025-01-01T00:00:03")
    live.run_phases(1)
    app = make_app(start_mode="live")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, LiveScreen)
        screen.show_run(done)
        await wait_text(pilot, "done  finished")
        await wait_for(pilot, lambda: not {"stop", "resume"} & _footer_actions(app), what="no stop/resume")
        screen.show_run(live.run_dir)
        await wait_text(pilot, "going  running")
        await wait_for(pilot, lambda: "stop" in _footer_actions(app) and "resume" not in _footer_actions(app))
        screen.show_run(killed)
        text = await wait_text(pilot, "killed  interrupted")
        await wait_for(pilot, lambda: "resume" in _footer_actions(app) and "stop" not in _footer_actions(app))
        assert "interrupted at step 240, r resumes from step 200 (last checkpoint)" in text
        # Resuming keeps the run on screen (the matrix stays) and says it is resuming.
        await pilot.press("r")
        await wait_for(pilot, lambda: executor.resumed == [killed])
        text = await wait_text(pilot, "resuming killed")
        assert "killed  interrupted" in text and "accuracy %" in text and "starting" not in text
    live.writer.close()


async def test_nan_loss_run_reads_as_diverged(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    run = start_run(runs_dir, "nan")
    run.run_phases(1)
    run.writer(ev.RunDiverged(130, math.nan, 120, 0.7))
    run.writer.close()
    assert read_run(runs_dir / "nan").live_status == "diverged"
    app = make_app(start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_text(pilot, "diverged")
        await pilot.press("enter")
        text = await wait_text(pilot, "nan  diverged")
        assert "diverged at step 130" in text and "finished" not in text


def test_untrained_tasks_are_grey_and_huge_losses_compact(runs_dir: Path) -> None:
    run = start_run(runs_dir, "r", n_tasks=3)
    run.run_phases(1)
    rec = read_run(run.run_dir)
    run.writer.close()
    text = heat_table(rec)
    row = text.plain.splitlines()[2]  # after task 1: task 1 trained, tasks 2-3 not yet (chance level)
    assert row.split()[1:] and len(row.split()) == 4
    styles = [span.style for span in text.spans]
    assert styles.count(UNTRAINED) == 2  # the two untrained cells, not the heat red of forgetting
    assert fmt_compact(24030220.0) == "2.40e+07" and fmt_compact(0.123456) == "0.1235" and fmt_compact(math.nan) == "—"


async def test_not_comparable_warning_beside_the_reference(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = finished_run(runs_dir, "tuned")
    with h5py.File(path / "run.h5", "a") as f:
        env = json.loads(f["environment"][()])
        env["overrides"] = ["training.steps_per_task=10", "threads=1"]
        del f["environment"]
        f.create_dataset("environment", data=json.dumps(env), dtype=h5py.string_dtype())
    app = make_app(start_mode="live")
    async with app.run_test(size=(140, 40)) as pilot:
        app.screen.show_run(path)
        text = await wait_text(pilot, "⚠ reference not comparable")
        assert "training.steps_per_task=10" in text and "threads=1 " not in text
        assert "reference: published · Ehret" in text


async def test_launch_failure_leaves_a_trace_on_runs_in_tui_syntax(make_app, test_presets: Path,  # type: ignore[no-untyped-def]
                                                                   executor: FakeExecutor) -> None:
    executor.fail_with = "CUDA was requested but no GPU is visible to torch here; use --device cpu or --device auto."
    app = make_app(start_mode="presets")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("l")
        await wait_for(pilot, lambda: bool(app.launch_failures))
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        text = await wait_text(pilot, "could not start permuted-mnist/si")
        assert "use the override device=cpu (or device=auto)" in app.launch_failures[0][2]
        assert "use the override" in text and "--device" not in text
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
