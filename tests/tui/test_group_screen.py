"""The group view (cltui/tui/screens/group.py) over a recorded sweep: opened from the command palette's
action, it shows the per-point mean ± sample std with n, the runs, and one band per grid point."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.groups import create_group, group_dir, member_key, write_member
from tests.tui.conftest import finished_run, wait_for, wait_text

GROUP = "20250101-000000-split-mnist-ewc-sweep2x2-abcd"


def _sweep(runs_dir: Path) -> None:
    slots = []
    for lam in ("1", "10"):
        for seed in (0, 1):
            slots.append({"key": member_key([f"method.lambda={lam}"], seed), "point": {"method.lambda": lam},
                          "seed": seed, "seed_group": ""})
    create_group(runs_dir, GROUP, "split-mnist/ewc", [], {"method.lambda": ["1", "10"]}, [0, 1], slots, "local")
    for k, slot in enumerate(slots):
        run_id = f"20250101-00000{k}-ewc-s{slot['seed']}"
        finished_run(runs_dir, run_id, seed=slot["seed"], n_tasks=3, forget=4.0 + 4 * k)
        write_member(group_dir(runs_dir, GROUP) / "members" / f"{slot['key']}.json", run_id)


async def test_group_view_shows_stats_runs_and_bands(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from cltui.tui.screens.group import BandsPlot, GroupScreen

    _sweep(runs_dir)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_group("sweep2x2")  # any unique part of the id, as on the command line
        await wait_for(pilot, lambda: isinstance(app.screen, GroupScreen), what="the group screen")
        text = await wait_text(pilot, "4 finished")
        assert GROUP in text and "[finished]" in text and "mean ± sample std (n−1) over seeds" in text
        plot = app.screen.query_one("#group-plot", BandsPlot)
        await wait_for(pilot, lambda: len(plot.bands) == 2, what="two bands")
        assert all(std is not None and "n=2" in label for label, _, _, std in plot.bands)
        lo, hi = plot.y_limits()  # fitted to the bands, not a fixed 0-100
        values = [v for _, _, m, sd in plot.bands for v in (m - sd, m + sd)]
        assert lo <= min(float(v[~np.isnan(v)].min()) for v in values) and (lo, hi) != (0.0, 100.0)
        assert hi >= max(float(v[~np.isnan(v)].max()) for v in values)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, GroupScreen), what="back")


async def test_sweep_launcher_plans_grid_times_seeds_and_opens_the_group(make_app, runs_dir: Path, executor) -> None:  # type: ignore[no-untyped-def]
    from cltui.tui.screens.group import GroupScreen
    from cltui.tui.screens.sweep import SweepScreen
    from engine.groups import group_ids, load_group

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.ask_sweep()
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen) and bool(app.screen.query("#sweep-grid")),
                       what="the sweep launcher")
        app.screen.query_one("#sweep-preset").value = "split-mnist/ewc"
        app.screen.query_one("#sweep-grid").value = "method.ewc_lambda=1,10"
        app.screen.query_one("#sweep-seeds").value = "2"
        app.screen.query_one("#sweep-parallel").value = "2"
        app.screen.query_one("#sweep-grid").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GroupScreen), what="the group view")
        await wait_for(pilot, lambda: len(executor.submitted) == 4, what="4 runs submitted")
        assert sorted((r.config.method.options.ewc_lambda, r.config.seed) for r in executor.submitted) == \
            [(1.0, 0), (1.0, 1), (10.0, 0), (10.0, 1)]
        (gid,) = group_ids(runs_dir)
        await wait_for(pilot, lambda: len(load_group(runs_dir, gid).records) == 4, what="4 members recorded")
