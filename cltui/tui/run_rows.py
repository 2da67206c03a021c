"""The Runs screen's rows as plain values: one row per run, one per seed group, and the hint line.

Pure functions of the runs (engine.run_index.RunSummary) and the screen's marks and sort order, so the
screen (cltui/tui/screens/runs.py) only puts them in its tables. No textual here; rich's Text only
for the status colour. Torch-, numpy- and h5py-free at import (the first screen drawn).
"""

from __future__ import annotations

import math

from rich.text import Text

from cltui.tui.records import group_overrides
from cltui.views import status_style
from engine.presentation import GroupStats, fmt, metric_cell, metrics_of
from engine.run_index import RunSummary

# The id first and whole (it is what every command takes, and it names preset and seed): at 80
# columns id, status, progress and the metrics fit; the rest scrolls sideways.
RUN_COLUMNS = (("mark", " "), ("run", "run"), ("status", "status"), ("steps", "steps"), ("during", "during"),
               ("final", "final"), ("bwt", "BWT"), ("seed", "seed"), ("preset", "preset"), ("method", "method"),
               ("benchmark", "benchmark"), ("started", "started"), ("group", "group"))
GROUP_COLUMNS = ("group", "overrides", "n", "status", "during", "final", "BWT", "forgetting", "method", "benchmark")
SORT_OF_COLUMN = {"run": "created", "started": "created", "status": "status", "benchmark": "benchmark",
                  "method": "method", "seed": "seed", "during": "during", "final": "final", "bwt": "bwt"}
"""The sort order a click on a column header picks (columns not listed do not sort)."""


def run_row(r: RunSummary, marked: bool) -> tuple:
    """(row key, cells...) of one run in RUN_COLUMNS order."""
    m = metrics_of(r)
    st = r.live_status
    started = r.created[5:16].replace("T", " ")  # 2025-01-31T12:00:00 → 01-31 12:00
    return (r.run_id, "●" if marked else " ", r.run_id, Text(st, style=status_style(st)),
            f"{r.progress[0]}/{r.progress[1]}", fmt(m.get("during", math.nan)), fmt(m.get("final", math.nan)),
            fmt(m.get("bwt", math.nan)), str(r.seed), r.preset, r.method, r.benchmark, started, r.group or "")


def group_records(g: GroupStats, records: list[RunSummary]) -> list[RunSummary]:
    """The runs of a seed group, in the order of `records`."""
    ids = set(g.runs)
    return [r for r in records if r.run_id in ids]


def group_row(g: GroupStats, records: list[RunSummary]) -> tuple:
    """The cells of one seed group in GROUP_COLUMNS order (its id first, also the row key)."""
    return (g.group, group_overrides(group_records(g, records)), str(len(g.runs)), g.status_text,
            *(metric_cell(g.mean[k], g.std[k]) for k in ("during", "final", "bwt", "forgetting")),
            g.method, g.benchmark)


def runs_hint(shown: int, records: list[RunSummary], sort_key: str, sort_reverse: bool, marked: int) -> str:
    """The line under the tables: how many runs are shown and running, the sort order, the marks."""
    if not records:
        return "no runs yet: launch a preset on screen 1, or run `cltui run demo` in another terminal"
    n_running = sum(r.live_status == "running" for r in records)
    # Metrics sort best first unless reversed; the other keys ascend unless reversed.
    descending = sort_reverse != (sort_key in ("during", "final", "bwt"))
    arrow = "↓" if descending else "↑"
    return (f"{shown}/{len(records)} runs · {n_running} running · sorted by {sort_key} {arrow}"
            + (f" · {marked} marked (c compares)" if marked else ""))
