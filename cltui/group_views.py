"""Groups (sweeps and seed groups) in the terminal: the per-point table of mean ± sample std, the member
table, the live group view of `cltui watch GROUP`, and `cltui export GROUP` (tidy rows as CSV, JSON or
Parquet).

The numbers come from engine.groups (point_stats, tidy_rows); this module lays them out. Torch-free;
pyarrow is imported only for Parquet, and its absence is one line (ParquetMissing).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, Group as RichGroup
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cltui.views import status_style
from engine.errors import CltuiError
from engine.groups import Group, load_group, point_stats, tidy_rows
from engine.presentation import METRIC_LABELS, STD_LABEL, fmt, metric_cell, metrics_of

SHOWN = ("during", "final", "bwt", "forgetting")
"""The metrics of the per-point table (all of METRIC_LABELS are in the export)."""


class ParquetMissing(CltuiError):
    """Parquet export asked without pyarrow installed."""


def _value(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, str) else v


def group_header(g: Group) -> Text:
    t = Text()
    t.append(f"{'sweep' if g.kind == 'sweep' else 'seed group'} {g.group} ({len(g.members)} runs)", style="bold")
    t.append(f"  [{g.status}]\n", style=status_style(g.status) or "bold yellow")
    axes = " × ".join(f"{k} ∈ {{{', '.join(_value(v) for v in vs)}}}" for k, vs in g.axes.items())
    seeds = sorted({m.seed for m in g.members})
    t.append(f"preset {g.preset} · " + (f"{axes} × " if axes else "")
             + f"seeds {', '.join(map(str, seeds))}" + (f" · executor {g.executor}" if g.executor else "") + "\n")
    if g.overrides:
        t.append("overrides: " + " ".join(g.overrides) + "\n", style="dim")
    t.append(g.status_text, style="dim")
    return t


def point_table(g: Group) -> Table:
    """One row per grid point: its axes, n (runs with a value), each metric as mean ± sample std."""
    t = Table(title=f"per grid point · mean ± {STD_LABEL} over seeds", title_justify="left", show_edge=False,
              pad_edge=False)
    for k in g.axes:
        t.add_column(k.rpartition(".")[2] or k, no_wrap=True)
    t.add_column("n", justify="right")
    for k in SHOWN:
        t.add_column(METRIC_LABELS[k], justify="right", no_wrap=True)
    for p in point_stats(g):
        t.add_row(*[_value(p.point.get(k)) for k in g.axes], str(p.n["during"]),
                  *[metric_cell(p.mean[k], p.std[k]) for k in SHOWN])
    return t


def member_table(g: Group) -> Table:
    t = Table(show_edge=False, pad_edge=False)
    t.add_column("run", overflow="fold")
    for k in g.axes:
        t.add_column(k.rpartition(".")[2] or k, no_wrap=True)
    for col in ("seed", "status", "steps", "during", "final"):
        t.add_column(col, justify="right" if col != "status" else "left", no_wrap=True)
    for m in g.members:
        r = m.record
        met = metrics_of(r) if r is not None else {}
        st = m.status + (f" (attempt {m.attempts})" if m.attempts > 1 else "")
        t.add_row(m.run_id or "—", *[_value(m.point.get(k)) for k in g.axes], str(m.seed),
                  Text(st, style=status_style(m.status)),
                  f"{r.progress[0]}/{r.progress[1]}" if r is not None else "—",
                  fmt(met.get("during", float("nan"))), fmt(met.get("final", float("nan"))))
    return t


def groups_table(runs_dir: Path) -> Table | None:
    """The sweeps recorded under `runs_dir` (newest first): id, status, runs, axes; None when there are none."""
    from engine.groups import group_ids

    ids = group_ids(runs_dir)
    if not ids:
        return None
    t = Table(title="sweeps (cltui show|export|plot|watch GROUP)", title_justify="left", show_edge=False,
              pad_edge=False)
    for col in ("group", "status", "runs", "axes"):
        t.add_column(col, overflow="fold")
    for gid in reversed(ids):
        try:
            g = load_group(runs_dir, gid)
        except (CltuiError, OSError, ValueError, KeyError):  # a damaged record never hides the others
            t.add_row(gid, "unreadable", "", "")
            continue
        t.add_row(gid, Text(g.status, style=status_style(g.status)), g.status_text,
                  " × ".join(f"{k}: {len(v)}" for k, v in g.axes.items()))
    return t


def group_view(g: Group) -> RichGroup:
    return RichGroup(group_header(g), Text(""), point_table(g), Text(""), member_table(g))


def watch_group(runs_dir: Path, ref: str, console: Console, interval: float = 1.0,
                keep_going: Callable[[], bool] = lambda: True) -> Group:
    """Redraw the group view until nothing in it runs (or `keep_going()` turns false); the last read."""
    g = load_group(runs_dir, ref)
    with Live(group_view(g), console=console, auto_refresh=False) as live:
        while g.status == "running" and keep_going():
            time.sleep(interval)
            g = load_group(runs_dir, ref)
            live.update(group_view(g), refresh=True)
    return g


# -- export -----------------------------------------------------------------------------------------
def export_rows(g: Group, fmt_: str, output: Path | None) -> str | None:
    """The group's tidy rows as `fmt_` (csv, json: a list of row objects; parquet: only to a file). The text
    for stdout, or None when written to `output`."""
    rows = tidy_rows(g)
    if fmt_ == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ParquetMissing("parquet export needs pyarrow: pip install pyarrow (or use --format csv|json)") from None
        if output is None:
            raise CltuiError("parquet is binary: give a file with --output, e.g. -o group.parquet")
        pq.write_table(pa.Table.from_pylist(rows), str(output))
        return None
    if fmt_ == "csv":
        buf = io.StringIO()
        cols = list(rows[0]) if rows else ["group", "run_id", "status", "seed", *METRIC_LABELS, "steps"]
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if v is None else (json.dumps(v) if isinstance(v, (list, dict)) else v)
                        for k, v in r.items()})
        text = buf.getvalue()
    else:
        text = json.dumps(rows, indent=1)
    if output is not None:
        try:
            output.write_text(text)
        except OSError as e:
            raise CltuiError(f"cannot write {output}: {e.strerror}") from None
        return None
    return text
