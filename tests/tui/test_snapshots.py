"""SVG snapshots of the main screens at fixed sizes, with a plain-text twin for readable diffs.

Regenerate after an intended change with:  CLTUI_UPDATE_SNAPSHOTS=1 pytest tests/tui/test_snapshots.py
The run files are synthetic with fixed ids, times and metrics, so nothing in them depends on the
clock or a pid (a 'running' run is owned by the test process, which is alive).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from .conftest import dead_run, failed_run, finished_run, screen_text, start_run, wait_for, wait_text

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("CLTUI_UPDATE_SNAPSHOTS") == "1"


def check_snapshot(app, name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    svg = app.export_screenshot(title="cltui").replace(str(tmp_path), "<tmp>")
    text = screen_text(app).replace(str(tmp_path), "<tmp>")
    svg_path, txt_path = SNAPSHOTS / f"{name}.svg", SNAPSHOTS / f"{name}.txt"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        svg_path.write_text(svg)
        txt_path.write_text(text)
        return
    if not svg_path.exists():
        pytest.fail(f"no snapshot {svg_path.name}; create it with CLTUI_UPDATE_SNAPSHOTS=1")
    want_text = txt_path.read_text()
    if text != want_text:
        diff = "\n".join(difflib.unified_diff(want_text.splitlines(), text.splitlines(), "stored", "now", lineterm=""))
        (tmp_path / f"{name}.svg").write_text(svg)
        pytest.fail(f"screen {name} changed (new SVG in {tmp_path}):\n{diff}")
    if svg != svg_path.read_text():
        (tmp_path / f"{name}.svg").write_text(svg)
        pytest.fail(f"screen {name}: same text, different colours/styles; new SVG in {tmp_path / (name + '.svg')}")


def _runs(runs_dir: Path):  # type: ignore[no-untyped-def]
    finished_run(runs_dir, "20250101-000001-split-mnist-ewc-s0", seed=0, group="ewc-x2", created="2025-01-01T00:00:01")
    finished_run(runs_dir, "20250101-000002-split-mnist-ewc-s1", seed=1, group="ewc-x2", created="2025-01-01T00:00:02")
    finished_run(runs_dir, "20250101-000003-split-mnist-finetune-s0", method="finetune", forget=20.0,
                 preset="split-mnist/finetune", created="2025-01-01T00:00:03")
    dead_run(runs_dir, "20250101-000004-split-mnist-ewc-s2", seed=2, created="2025-01-01T00:00:04")
    failed_run(runs_dir, "20250101-000005-split-mnist-ewc-s3", "RuntimeError: CUDA error: out of memory", seed=3,
               created="2025-01-01T00:00:05")
    live = start_run(runs_dir, "20250101-000006-split-mnist-ewc-s4", seed=4, created="2025-01-01T00:00:06")
    live.run_phases(2)
    live.step_events(2, upto=60)
    live.writer.flush(force=True)
    return live


async def test_snapshot_presets(make_app, test_presets: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(start_mode="presets")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("slash", *"ewc", "enter")
        await wait_text(pilot, "Test et al. 2020")
        await pilot.pause(0.3)
        check_snapshot(app, "presets_100x30", tmp_path)


async def test_snapshot_runs(make_app, runs_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    live = _runs(runs_dir)
    app = make_app(start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_text(pilot, "± ")
        await pilot.pause(0.3)
        check_snapshot(app, "runs_100x30", tmp_path)
    live.writer.close()


async def test_snapshot_live_running(make_app, runs_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    live = _runs(runs_dir)
    app = make_app(start_mode="live")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_text(pilot, "s4  running")
        await wait_text(pilot, "260/500")
        await pilot.pause(0.3)
        check_snapshot(app, "live_running_100x30", tmp_path)
    live.writer.close()


async def test_snapshot_live_failed_80x24(make_app, runs_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _runs(runs_dir).writer.close()
    app = make_app(start_mode="live")
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run(runs_dir / "20250101-000005-split-mnist-ewc-s3")
        await wait_text(pilot, "failed: RuntimeError")
        await pilot.pause(0.3)
        check_snapshot(app, "live_failed_80x24", tmp_path)


async def test_snapshot_compare(make_app, runs_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _runs(runs_dir).writer.close()
    app = make_app(start_mode="compare")
    async with app.run_test(size=(100, 30)) as pilot:
        app.compare_runs([runs_dir / "20250101-000001-split-mnist-ewc-s0",
                          runs_dir / "20250101-000003-split-mnist-finetune-s0"])
        await wait_text(pilot, "split-mnist-finetune-s0")
        await pilot.pause(0.3)
        check_snapshot(app, "compare_100x30", tmp_path)


# The reworked screens at the two sizes people use most: a default terminal and a roomy one.
SIZES = ((80, 24), (120, 40))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_snapshot_presets_sizes(make_app, test_presets: Path, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    app = make_app(start_mode="presets")
    async with app.run_test(size=size) as pilot:
        await wait_text(pilot, "reference  ")
        await pilot.press("slash", *"ewc", "enter")
        await wait_text(pilot, "Test et al. 2020")
        await pilot.pause(0.3)
        check_snapshot(app, f"presets_{size[0]}x{size[1]}", tmp_path)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_snapshot_runs_sizes(make_app, runs_dir: Path, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    live = _runs(runs_dir)
    app = make_app(start_mode="runs")
    async with app.run_test(size=size) as pilot:
        await wait_text(pilot, "± ")
        await pilot.pause(0.3)
        check_snapshot(app, f"runs_{size[0]}x{size[1]}", tmp_path)
    live.writer.close()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_snapshot_compare_sizes(make_app, runs_dir: Path, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    _runs(runs_dir).writer.close()
    app = make_app(start_mode="compare")
    async with app.run_test(size=size) as pilot:
        app.compare_runs([runs_dir / "20250101-000001-split-mnist-ewc-s0",
                          runs_dir / "20250101-000002-split-mnist-ewc-s1",
                          runs_dir / "20250101-000003-split-mnist-finetune-s0"])
        await wait_text(pilot, "finetune-s0")
        await wait_for(pilot, lambda: len(app.screen.query(".compare-matrix")) == 3)
        await pilot.pause(0.3)
        check_snapshot(app, f"compare_{size[0]}x{size[1]}", tmp_path)
