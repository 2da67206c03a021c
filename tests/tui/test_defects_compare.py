"""Issue 15 defects on the Compare screen: x = task index + fraction (runs of different length
aligned), task boundaries, columns named by run, each run's own reference with a 'not comparable'
mark, mean ± sample std over the runs, and `o` opening the selected run (not always the first)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from cltui.tui.plot import task_axis, y_range
from cltui.tui.screens.live import LiveScreen
from engine.store import read_run

from .conftest import finished_run, wait_for, wait_text


def test_task_axis_aligns_runs_of_different_lengths() -> None:
    short = task_axis(np.array([50, 100, 150, 200]), [100, 100])
    long = task_axis(np.array([500, 1000, 1500, 2000]), [1000, 1000])
    assert short.tolist() == long.tolist() == [0.5, 1.0, 1.5, 2.0]


def test_y_axis_fits_the_data() -> None:
    assert y_range([np.array([97.5, 99.9, np.nan])]) == (90.0, 100.0)  # not 0-100: five curves on one row
    assert y_range([np.array([48.0, 99.0])]) == (45.0, 100.0)
    assert y_range([]) == (0.0, 100.0)


async def test_columns_by_run_references_per_run_and_o_opens_the_selected(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a = finished_run(runs_dir, "20250101-000001-split-mnist-ewc-s0", method="ewc", forget=4.0)
    b = finished_run(runs_dir, "20250101-000002-split-mnist-ft-s0", method="finetune", forget=20.0)
    c = finished_run(runs_dir, "20250101-000003-split-mnist-ewc-s1", seed=1, forget=4.0, steps=50)
    with h5py.File(c / "run.h5", "a") as f:  # as if started with an override that changes the protocol
        env = json.loads(f["environment"][()])
        env["overrides"] = ["training.lr=0.1", "device=cpu"]
        del f["environment"]
        f.create_dataset("environment", data=json.dumps(env), dtype=h5py.string_dtype())
    app = make_app(start_mode="compare")
    async with app.run_test(size=(160, 40)) as pilot:
        app.compare_runs([a, b, c])
        text = await wait_text(pilot, "mean ± sd n=3")
        # Columns named by run: the ids without their date and the part all three share.
        head = next(ln for ln in text.splitlines() if "mean ± sd n=3" in ln)
        assert [c.strip() for c in head.split("┃")[1:4]] == ["ewc-s0", "ft-s0", "ewc-s1"], head
        finals = [read_run(p).metrics["final"] for p in (a, b, c)]
        mean, std = float(np.mean(finals)), float(np.std(finals, ddof=1))
        assert f"{mean:.2f} ± {std:.2f}" in text
        assert "ref final" in text and "sd: sample std (n−1)" in text
        assert "vs task" in text  # the plot's x-axis is the task, not the step
        assert "not comparable" in text and "not comparable: training.lr=0.1 changes" in text
        await pilot.press("right")  # select the second run
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen))
        await wait_text(pilot, "20250101-000002-split-mnist-ft-s0  finished")
