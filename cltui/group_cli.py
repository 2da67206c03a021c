"""`cltui export` and `cltui watch` on a seed-group id (what `cltui show` already accepts): the group's
runs as one table of rows (CSV or JSON), and a live table of its runs until none is running.

Torch-free; reads the run store only. The group's mean ± std lives in engine.presentation.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from cltui.views import metrics_table, runs_table
from engine.presentation import METRIC_LABELS, STD_LABEL, group_stats, metrics_of
from engine.provenance import overrides_of
from engine.store import RunRecord, read_run


def group_rows(recs: list[RunRecord]) -> list[dict[str, object]]:
    """One row per run: id, seed, status, its overrides and every metric (None where missing)."""
    rows: list[dict[str, object]] = []
    for r in recs:
        m = metrics_of(r)
        row: dict[str, object] = {"run_id": r.run_id, "group": r.group, "preset": r.preset, "seed": r.seed,
                                  "status": r.live_status, "overrides": " ".join(overrides_of(r.environment))}
        for key in METRIC_LABELS:
            v = m.get(key, math.nan)
            row[key] = None if math.isnan(v) else v
        rows.append(row)
    return rows


def export_group(group: str, members: list[Path], fmt: str) -> str:
    """The group's runs as CSV (one row per run) or JSON (rows plus mean ± sample std with n)."""
    recs = [read_run(p, with_series=False) for p in members]
    rows = group_rows(recs)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows:
            w.writerow({k: "" if v is None else v for k, v in row.items()})
        return buf.getvalue()
    (g,) = group_stats(recs)
    clean = {k: (None if math.isnan(v) else v) for k, v in g.mean.items()}
    spread = {k: (None if math.isnan(v) else v) for k, v in g.std.items()}
    return json.dumps({"group": group, "n": len(recs), "std": STD_LABEL, "mean": clean, "sd": spread,
                       "runs": rows}, indent=1)


def _frame(group: str, members: list[Path], watching: bool) -> tuple[Group, bool]:
    recs = []
    for p in members:
        try:
            recs.append(read_run(p, with_series=False))
        except Exception:  # a member being created or deleted: show the rest
            continue
    running = any(r.live_status == "running" for r in recs)
    title = Text(f"seed group {group} ({len(recs)} runs)", style="bold")
    if not watching:
        title.append("  (this view stopped following it)", style="dim")
    parts: list[object] = [title, runs_table(recs)]
    if recs:
        (g,) = group_stats(recs)
        parts.append(metrics_table(recs[0], g.mean, g.std))
    return Group(*parts), running  # type: ignore[arg-type]


def watch_group(group: str, members: Callable[[], list[Path]], console: Console, interval: float = 0.5) -> None:
    """Redraw the group's runs until none is running (members are re-listed: seeds may start late)."""
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        try:
            while True:
                frame, running = _frame(group, members(), True)
                live.update(frame)
                if not running:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            live.update(_frame(group, members(), False)[0])
            raise
