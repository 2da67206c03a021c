"""The terminal live view of a run (used by `cltui run`, `cltui resume` and `cltui watch`).

It follows the run store, not the engine process, so it works the same for a run started here or
in another terminal. Torch-free.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cltui.views import header, matrix_table, metrics_table, status_lines
from engine.errors import RunStoreError
from engine.presentation import fmt, fmt_compact, metrics_of, progress, progress_of
from engine.store import RunRecord, read_run

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: np.ndarray, width: int = 40) -> str:
    values = values[~np.isnan(values)][-width:]
    if values.size == 0:
        return ""
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo or 1.0
    return "".join(SPARK[min(7, int((v - lo) / span * 7.999))] for v in values)


def progress_panel(rec: RunRecord, watching: bool = True) -> Table:
    """Run and task progress; without an ETA once nobody watches (a frame left on screen after Ctrl-C
    must not show an ETA that is no longer updated)."""
    p = progress_of(rec)
    if not watching:
        rates = rec.scalar("steps_per_sec") if rec.scalars.shape[0] else np.zeros(0)
        p = progress(rec.progress[0], rec.progress[1], rec.phase_steps, rec.phase_tasks, rec.task_names, rates, False)
    t = Table.grid(padding=(0, 1))
    t.add_column(justify="right", style="bold")
    t.add_column()
    t.add_column()
    t.add_row("run", ProgressBar(total=max(p.total, 1), completed=p.done, width=40), p.run_line(" steps"))
    t.add_row(p.title, ProgressBar(total=max(p.phase_total, 1), completed=p.in_phase, width=40), p.phase_line)
    if rec.scalars.shape[0]:
        loss = rec.scalar("loss")
        t.add_row("loss", Text(sparkline(loss), style="cyan"), f"{fmt_compact(float(loss[-1]))} · train acc "
                  f"{fmt(float(rec.scalar('train_acc')[-1]), 1)}%")
    if rec.curve_acc.shape[0]:
        last = rec.curve_acc[-1]
        seen = [f"{n} {v:.0f}" for n, v in zip(rec.task_names, last) if not math.isnan(v)]
        t.add_row("seen tasks", Text(" · ".join(seen), style="magenta"), f"(step {int(rec.curve_steps[-1])})")
    return t


def render(rec: RunRecord, watching: bool = True) -> Group:
    """The live view of `rec`; `watching=False` is the frame left behind when the view stops (Ctrl-C):
    its status says it is no longer followed and it shows no ETA."""
    head = header(rec)
    if not watching and rec.live_status == "running":
        head = Text.assemble(Text(f"{rec.run_id}", style="bold"),
                             Text("  [still running · this view stopped following it]\n", style="dim"),
                             *head.split("\n", include_separator=True)[1:])
    parts = [head, progress_panel(rec, watching), Text(""), matrix_table(rec), Text(""),
             metrics_table(rec, metrics_of(rec))]
    parts.extend(status_lines(rec))
    return Group(*parts)


def follow(run_dir: Path, console: Console, is_alive: Callable[[], bool], interval: float = 0.3) -> RunRecord | None:
    """Redraw the run until it stops being 'running' (or its process goes away); return the last record."""
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        try:
            return _follow_loop(run_dir, live, is_alive, interval)
        except KeyboardInterrupt:
            # The last frame stays on screen: redraw it as stopped (no "[running]" as if live, no ETA).
            try:
                live.update(render(read_run(run_dir), watching=False))
            except RunStoreError:
                live.update(Text(""))
            raise


def _follow_loop(run_dir: Path, live: Live, is_alive: Callable[[], bool], interval: float) -> RunRecord | None:
    rec: RunRecord | None = None
    while True:
        try:
            rec = read_run(run_dir)
            live.update(render(rec))
        except RunStoreError:
            pass
        if rec is not None and rec.live_status != "running":
            return rec
        if not is_alive():
            try:
                rec = read_run(run_dir)
                live.update(render(rec))
            except RunStoreError:
                pass
            return rec
        time.sleep(interval)
