"""Runs screen beside foreign files: an empty, a text, another program's HDF5 and a damaged file named run.h5 in the
runs directory never hide the valid runs, and are never touched (issue 10, item 7)."""

from __future__ import annotations

from pathlib import Path

import h5py
from textual.widgets import DataTable

from cltui.tui.screens.runs import RunsScreen

from .conftest import finished_run, wait_for


async def test_runs_screen_lists_valid_runs_beside_foreign_files(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    finished_run(runs_dir, "good-s0", seed=0, created="2025-01-01T00:00:01")
    finished_run(runs_dir, "good-s1", seed=1, created="2025-01-01T00:00:02")
    for name in ("empty", "text", "foreign", "damaged"):
        (runs_dir / name).mkdir()
    (runs_dir / "empty" / "run.h5").write_bytes(b"")
    (runs_dir / "text" / "run.h5").write_text("not a run\n")
    with h5py.File(runs_dir / "foreign" / "run.h5", "w") as f:
        f["data"] = [1, 2, 3]
        f.attrs["group"] = "g"
    with h5py.File(runs_dir / "damaged" / "run.h5", "w") as f:  # our version attribute, garbage layout
        f.attrs["format_version"] = 2
        f.attrs["task_names"] = "{not json"
    before = {p: p.read_bytes() for p in runs_dir.glob("*/run.h5") if not p.parent.name.startswith("good")}
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        assert isinstance(app.screen, RunsScreen)
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_for(pilot, lambda: len(table.rows) == 2, what="the two valid runs")
        assert sorted(str(k.value) for k in table.rows) == ["good-s0", "good-s1"]
    assert {p: p.read_bytes() for p in before} == before
