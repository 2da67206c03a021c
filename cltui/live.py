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
from engine.presentation import fmt, metrics_of, progress_of
from engine.store import RunRecord, read_run

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: np.ndarray, width: int = 40) -> str:
    values = values[~np.isnan(values)][-width:]
    if values.size == 0:
        return ""
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo or 1.0
    return "".join(SPARK[min(7, int((v - lo) / span * 7.999))] for v in values)


def progress_panel(rec: RunRecord) -> Table:
    p = progress_of(rec)
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


def render(rec: RunRecord) -> Group:
    parts = [header(rec), progress_panel(rec), Text(""), matrix_table(rec), Text(""),
             metrics_table(rec, metrics_of(rec))]
    parts.extend(status_lines(rec))
    return Group(*parts)


def follow(run_dir: Path, console: Console, is_alive: Callable[[], bool], interval: float = 0.3) -> RunRecord | None:
    """Redraw the run until it stops being 'running' (or its process goes away); return the last record."""
    rec: RunRecord | None = None
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            try:
                rec = read_run(run_dir)
                live.update(render(rec))
            except RunStoreError:
                pass
            if rec is not None and rec.live_status != "running":
                break
            if not is_alive():
                try:
                    rec = read_run(run_dir)
                    live.update(render(rec))
                except RunStoreError:
                    pass
                break
            time.sleep(interval)
    return rec
