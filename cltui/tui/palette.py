"""The TUI's command palette (ctrl+p): every screen, help, sweeps, groups, and each action on each run.

Each run action goes through the Runs screen's own action, so the palette asks the same confirmations
as the keys do. Never imports torch (the app's import rule).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from cltui.tui.screens import SCREENS, screen_class
from engine.run_index import RunSummary

if TYPE_CHECKING:
    from cltui.tui.app import CltuiApp


def palette_commands(app: CltuiApp) -> Iterable[SystemCommand]:
    """The app's own commands after Textual's: screens, help, sweep, groups, and every action on each run."""
    for i, mode in enumerate(SCREENS, 1):
        yield SystemCommand(f"{mode.capitalize()} screen", f"({i}) {screen_class(mode).__doc__}",
                            partial(app.switch_mode, mode))
    yield SystemCommand("Help", "What each screen shows and its keys (?)", app.action_help)
    yield SystemCommand("Sweep…", "Run a preset over a grid × seeds as one group (as `cltui sweep`)", app.ask_sweep)
    from engine.groups import group_ids

    seed_groups = {r.group for r in app.latest_records if r.group}
    for gid in [*reversed(group_ids(app.settings.runs_dir)), *sorted(seed_groups)]:
        yield SystemCommand(f"Open group {gid}", "mean ± sample std per grid point, its runs, curves with bands",
                            partial(app.open_group, gid), discover=False)
    yield SystemCommand("Launch the selected preset", "With its overrides and seeds (l on Presets)",
                        partial(_launch, app))
    yield SystemCommand("Compare marked runs", "The runs marked with space on Runs (c)", partial(_compare, app))
    # Every action on a run, by name: type part of the id to find it (hidden until typed).
    for rec in app.latest_records:
        what = f"{rec.live_status} · {rec.benchmark} · {rec.method}"
        yield SystemCommand(f"Open run {rec.run_id}", what, partial(app.open_run, rec.run_dir), discover=False)
        if rec.live_status == "running":
            yield SystemCommand(f"Stop run {rec.run_id}", "It checkpoints, then stops (x)",
                                partial(_on_run, app, rec, "stop"), discover=False)
        elif rec.live_status in ("interrupted", "failed"):
            yield SystemCommand(f"Resume run {rec.run_id}", "From its last checkpoint (r)",
                                partial(_on_run, app, rec, "resume"), discover=False)
        yield SystemCommand(f"Export figures of run {rec.run_id}", "Every figure, as `cltui plot` draws them (e)",
                            partial(_export, app, rec), discover=False)
        if rec.live_status != "running":
            yield SystemCommand(f"Delete run {rec.run_id}", "After asking (d)",
                                partial(_on_run, app, rec, "delete"), discover=False)


def _launch(app: CltuiApp) -> None:
    """Launch the Presets screen's selected preset (its own launch dialog)."""
    from cltui.tui.screens.presets import PresetsScreen

    app.switch_mode("presets")
    screen = app.mode_screen("presets")
    if isinstance(screen, PresetsScreen):
        screen.action_launch()


def _compare(app: CltuiApp) -> None:
    """Compare the runs marked on the Runs screen."""
    app.switch_mode("runs")
    screen = app.runs_screen()
    if screen is not None:
        screen.action_compare()


def _on_run(app: CltuiApp, rec: RunSummary, action: str) -> None:
    """A run action from the palette goes through the Runs screen's own (and its confirmations)."""
    app.switch_mode("runs")
    screen = app.runs_screen()
    if screen is not None and screen.select_run(rec.run_id):
        getattr(screen, f"action_{action}")()


def _export(app: CltuiApp, rec: RunSummary) -> None:
    """Show the run live and export its figures, as `e` does there."""
    live = app.show_live()
    live.show_run(rec.run_dir)
    live.export_run(rec.run_dir)
