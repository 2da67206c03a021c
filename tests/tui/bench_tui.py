"""Speed of the TUI (a benchmark, not a test: `python -m tests.tui.bench_tui`).

1. Cold start: a fresh `python` process runs bare `cltui` (its entry point, cltui.cli.main) on a
   headless driver; the time from spawning the process to its first frame, and to the first frame
   showing the runs, on an empty runs dir and on 50 and 1000 runs (or on the dirs given).
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

from engine.store_dir import RunStore

CHILD = r"""
import sys, time, resource
t_import = time.time()
from cltui.tui.app import CltuiApp
import cltui.cli
t_imported = time.time()
heavy_at_import = [m for m in ("numpy", "h5py", "torch", "plotext") if m in sys.modules]
marks = {}

def mark(name):
    ru = resource.getrusage(resource.RUSAGE_SELF)
    marks[name] = (time.time(), ru.ru_utime + ru.ru_stime, [m for m in ("numpy", "h5py", "torch") if m in sys.modules])

# Every frame the app composes goes through _display (headless: composed, not written): the first
# one, and the first one whose runs table has rows, are what a user would see.
display = CltuiApp._display
def _display(self, screen, renderable):
    display(self, screen, renderable)
    if renderable is None:
        return
    if "frame" not in marks:
        mark("frame")
        marks["want_runs"] = bool(self.store.run_ids())
    table = screen.query("#runs-table")
    if "runs" not in marks and (not marks["want_runs"] or (table and table.first().row_count > 0)):
        mark("runs")
        marks["screen"] = type(screen).__name__
        self.call_later(self.exit)
CltuiApp._display = _display
sys.argv = ["cltui"]
cltui.cli.main()  # bare `cltui`, as the console script runs it (the driver: TEXTUAL_DRIVER, headless)
(tf, cf, _), (tr, cr, loaded) = marks["frame"], marks["runs"]
print("RESULT", t_import, t_imported, tf, cf, tr, cr, marks["screen"],
      ",".join(heavy_at_import) or "-", ",".join(loaded) or "-", flush=True)
"""


def cold_start(runs_dir: str, repeats: int = 7) -> None:
    """Fresh `python` processes, each running bare `cltui` (cltui.cli.main: the real executor, settings
    from the environment) on a headless driver 120×40: the time from spawning the process to its first frame, and to the first frame that shows
    the runs (the same frame when there are none). Wall time and the process's CPU time by then."""
    env = dict(os.environ, CLTUI_RUNS_DIR=runs_dir, COLUMNS="120", LINES="40",
               TEXTUAL_DRIVER="textual.drivers.headless_driver:HeadlessDriver")
    rows = []
    for k in range(repeats + 1):  # the first start builds the run index (if missing): not counted
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
        if not line:
            raise RuntimeError(out.stderr[-3000:])
        _, ti, tid, tf, cf, tr, cr, screen, heavy, loaded = line[-1].split()
        if k:
            rows.append((float(tid) - float(ti), float(tf) - t0, float(cf), float(tr) - t0, float(cr), screen, heavy,
                         loaded))
    col = lambda i: [r[i] for r in rows]  # type: ignore[index]  # noqa: E731
    ms = lambda xs: f"min {min(xs) * 1000:.0f} / median {statistics.median(xs) * 1000:.0f} ms"  # noqa: E731
    n = len(RunStore(Path(runs_dir)).run_ids())
    print(f"cold start, {n} runs ({runs_dir}), {repeats} starts: imports (the app and cltui.cli) {ms(col(0))}; first frame: "
          f"wall {ms(col(1))}, CPU {ms(col(2))}; first frame showing the runs: wall {ms(col(3))}, CPU {ms(col(4))}; "
          f"first screen {rows[0][5]}; loaded at import: {rows[0][6]}; loaded by the runs frame: {rows[0][7]}")


def many_runs(root: Path, n: int) -> Path:
    """`n` finished runs (synthetic, tiny) in `root`, some in seed groups, and their run index."""
    from tests.tui.conftest import finished_run

    for i in range(n):
        finished_run(root, f"run-{i:04d}", seed=i % 5, group=f"g{i // 5:03d}" if i % 4 == 0 else "",
                     created=f"2025-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}")
    RunStore(root).summaries()
    return root


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
    """`python -m tests.tui.bench_tui [RUNS_DIR ...]`: cold starts on each RUNS_DIR given, else on an empty
    one, 50 and 1000 synthetic runs; then the Live screen's frames."""
    if sys.argv[1:]:
        for d in sys.argv[1:]:
            cold_start(d)
        return
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty"
        empty.mkdir()
        cold_start(str(empty))
        for n in (50, 1000):
            cold_start(str(many_runs(Path(tmp) / f"runs{n}", n)))
        big = Path(tmp) / "big"
        big.mkdir()
        run_dir = build_big_run(big)
        cold_start(str(big))
        for size in ((120, 40), (200, 60)):
            asyncio.run(frame_times(run_dir, size))


if __name__ == "__main__":
    main()
