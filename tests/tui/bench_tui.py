"""Speed of the TUI (a benchmark, not a test: `python -m tests.tui.bench_tui`).

1. Cold start: a fresh `python` process builds the app (real LocalExecutor, env settings) and
   runs it headless; the time from spawning the process to the first screen's first refresh.
2. One frame of the Live screen for a run with a 20×20 accuracy matrix and 20 forgetting curves
   (10 000 steps: 500 curve points × 20 tasks, 1 000 scalar rows), built synthetically with
   RunWriter: the store read (in the worker), the redraw handler, and a full render of the screen,
   for a frame where everything changed (new matrix row and curve point: the plot is rebuilt) and
   for the typical frame where only progress and loss changed.
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

CHILD = r"""
import sys, time
t_import = time.time()
from pathlib import Path
from cltui.tui.app import create_app
from cltui.tui.services import Settings
from engine.executor import LocalExecutor
from engine.store import RunStore
t_imported = time.time()
s = Settings.from_env()
app = create_app(RunStore(s.runs_dir), LocalExecutor(s.runs_dir, detach=True), s)

def first_frame():
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{ru.ru_utime + ru.ru_stime} {t_import} {t_imported} {time.time()} {type(app.screen).__name__} "
          f"{'torch' in sys.modules}", flush=True)
    app.exit()

app.call_after_refresh(lambda: app.screen.call_after_refresh(first_frame))
app.run(headless=True, size=(120, 40))
"""


def cold_start(runs_dir: str, repeats: int = 7) -> None:
    env = dict(os.environ, CLTUI_RUNS_DIR=runs_dir)
    totals, imports, cpus, screens = [], [], [], set()
    for _ in range(repeats):
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=60)
        cpu, t_import, t_imported, t_frame, screen, torch = out.stdout.split()[-6:]
        cpus.append(float(cpu))
        totals.append(float(t_frame) - t0)
        imports.append(float(t_imported) - float(t_import))
        screens.add((screen, torch))
    print(f"cold start to first frame ({runs_dir}): median {statistics.median(totals) * 1000:.0f} ms, "
          f"min {min(totals) * 1000:.0f} ms over {repeats} (of which importing the app: median "
          f"{statistics.median(imports) * 1000:.0f} ms); CPU time of the process by then: median "
          f"{statistics.median(cpus) * 1000:.0f} ms (wall time includes waiting for the CPU on a busy machine); "
          f"first screen, torch loaded: {screens}")


def build_big_run(root: Path) -> Path:
    from tests.tui.conftest import start_run

    run = start_run(root, "big-20x20", n_tasks=20, steps=500)
    run.run_phases(19)
    run.step_events(19, upto=250)
    run.writer.flush(force=True)
    run.writer.close()
    return run.run_dir


async def frame_times(run_dir: Path, size: tuple[int, int], n: int = 20) -> None:
    from rich.console import Console

    from cltui.tui.app import create_app
    from cltui.tui.screens.live import LiveScreen
    from cltui.tui.services import Settings
    from engine.store import RunStore, read_run
    from tests.tui.conftest import FakeExecutor

    t = time.perf_counter()
    reads = []
    for _ in range(n):
        t = time.perf_counter()
        rec = read_run(run_dir)
        reads.append(time.perf_counter() - t)
    assert rec.acc.shape == (20, 20) and rec.curve_acc.shape[1] == 20
    # Worst case: every frame has a new matrix row and a new curve point (all parts rebuilt).
    # Typical case (4 times a second between curve points): only progress and loss change.
    rec_b = replace(rec, acc=rec.acc.copy(), curve_steps=rec.curve_steps[:-1], curve_acc=rec.curve_acc[:-1])
    rec_b.acc[19] = rec_b.acc[18]
    rec_c = replace(rec, progress=(rec.progress[0] + 10, rec.progress[1]))

    import cltui.tui.screens.live as live_screen

    live_screen.PLOT_EVERY = 0.0  # measure every redraw (the app draws a running run's plot at most 1/s)
    settings = Settings(runs_dir=run_dir.parent, runs_poll=3600, live_poll=3600, start_mode="live")
    app = create_app(RunStore(run_dir.parent), FakeExecutor(run_dir.parent), settings)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        assert isinstance(screen, LiveScreen)
        results = {}
        for case, other in (("new matrix row + curve point (everything redrawn)", rec_b),
                            ("progress-only update (typical)", rec_c)):
            handler, full = [], []
            for i in range(n):
                r = rec if i % 2 else other
                t0 = time.perf_counter()
                screen.update_from(r)  # the message handler: new renderables into the widgets
                t1 = time.perf_counter()
                # A full frame: lay out and render every widget to strips, encode for the terminal.
                screen._refresh_layout(size=app.size, scroll=False)
                console = Console(width=size[0], height=size[1], file=io.StringIO(), force_terminal=True,
                                  color_system="truecolor", legacy_windows=False)
                console.print(screen._compositor.render_update(full=True))
                t2 = time.perf_counter()
                handler.append(t1 - t0)
                full.append(t2 - t0)
                await pilot.pause()
            results[case] = (handler, full)
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.1f} ms (min {min(xs) * 1000:.1f})"  # noqa: E731
    print(f"live frame {size[0]}x{size[1]}, 20x20 matrix, 20 curves x {rec.curve_steps.size} points:\n"
          f"  read_run (poll worker, off the UI thread): {ms(reads)}")
    for case, (handler, full) in results.items():
        print(f"  {case}: handler {ms(handler)}; handler + layout + full render + terminal encoding {ms(full)}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty"
        empty.mkdir()
        cold_start(str(empty))
        big = Path(tmp) / "big"
        big.mkdir()
        run_dir = build_big_run(big)
        cold_start(str(big))
        for size in ((120, 40), (200, 60)):
            asyncio.run(frame_times(run_dir, size))


if __name__ == "__main__":
    main()
