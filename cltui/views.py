"""Rich renderables of stored runs: accuracy matrix, metrics beside the reference, run tables.

Used by the CLI (`cltui show`, the live view of `cltui run` / `cltui watch`). Torch-free; reads
engine.store records only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from engine.store import RunRecord

METRIC_LABELS = {"during": "during", "final": "final", "average": "average", "bwt": "BWT", "fwt": "FWT",
                 "forgetting": "forgetting"}


def fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def acc_style(v: float) -> str:
    if math.isnan(v):
        return "dim"
    if v >= 95:
        return "bold green"
    if v >= 80:
        return "green"
    if v >= 65:
        return "yellow"
    return "red"


def matrix_table(rec: RunRecord, title: str = "accuracy % · row: after, column: task") -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    t.add_column("after", style="bold")
    for name in rec.task_names:
        t.add_column(name, justify="right")
    for i, row in enumerate(rec.acc):
        label = "+".join(rec.task_names[j] for j in rec.phase_tasks[i]) if len(rec.phase_tasks[i]) < 3 else "all"
        t.add_row(label, *[Text(fmt(v, 1), style=acc_style(v)) for v in row])
    return t


def reference(rec: RunRecord) -> dict[str, Any]:
    return rec.config.get("reference", {}) or {}


def metrics_table(rec: RunRecord, metrics: dict[str, float] | None = None, spread: dict[str, float] | None = None) -> Table:
    """Our metrics beside the preset's published result (when it has one)."""
    metrics = metrics if metrics is not None else rec.metrics
    ref = reference(rec)
    t = Table(show_edge=False, pad_edge=False)
    t.add_column("metric")
    t.add_column("cltui", justify="right")
    has_ref = ref.get("during") is not None or ref.get("final") is not None
    if has_ref:
        t.add_column("reference", justify="right")
    for key, label in METRIC_LABELS.items():
        v = metrics.get(key, math.nan)
        cell = fmt(v) + (f" ± {fmt(spread[key])}" if spread and key in spread and not math.isnan(spread[key]) else "")
        if key == "final" and not ref.get("final_meaningful", True):
            label = "final (not meaningful)"  # e.g. from-scratch: the last network on every task
        row = [label, cell]
        if has_ref:
            r = ref.get(key) if key in ("during", "final") else None
            rcell = fmt(r) if r is not None else ""
            row.append(rcell)
        t.add_row(*row)
    return t


def live_metrics(rec: RunRecord) -> dict[str, float]:
    """Metrics so far from the matrix (the stored ones are only written at the end)."""
    from engine.metrics import summary

    done = ~np.all(np.isnan(rec.acc), axis=1)
    if not done.any():
        return {}
    init = None if np.all(np.isnan(rec.acc_initial)) else rec.acc_initial
    return summary(rec.acc, init)


def header(rec: RunRecord) -> Text:
    env = rec.environment
    ref = reference(rec)
    lines = Text()
    lines.append(f"{rec.run_id}", style="bold")
    lines.append(f"  [{rec.live_status}]\n", style=status_style(rec.live_status))
    lines.append(f"preset {rec.preset} · {rec.benchmark} · {rec.method} · {rec.model} · seed {rec.seed} · "
                 f"device {env.get('device', '?')} ({env.get('device_name', '')})\n")
    lines.append(f"data: {env.get('data_source', '?')}\n", style="dim")
    if ref.get("source"):
        lines.append(f"reference: {ref['source']}\n", style="dim")
    if ref.get("notes"):
        lines.append(f"note: {ref['notes']}\n", style="dim")
    return lines


def status_style(status: str) -> str:
    return {"running": "bold cyan", "finished": "bold green", "interrupted": "bold yellow", "failed": "bold red"}.get(status, "")


def run_summary(rec: RunRecord) -> Group:
    parts: list[Any] = [header(rec), matrix_table(rec), Text(""), metrics_table(rec, live_metrics(rec) or rec.metrics)]
    if rec.status == "failed" and rec.error:
        parts.append(Text("error: " + rec.error.splitlines()[0], style="red"))
    return Group(*parts)


def runs_table(records: list[RunRecord]) -> Table:
    t = Table(show_edge=False, pad_edge=False)
    for col, just in (("run", "left"), ("status", "left"), ("benchmark", "left"), ("method", "left"),
                      ("seed", "right"), ("steps", "right"), ("during", "right"), ("final", "right")):
        # The run id wraps rather than being cut: it is what `show`/`resume` need.
        t.add_column(col, justify=just, no_wrap=col != "run", overflow="fold")  # type: ignore[arg-type]
    for r in records:
        m = live_metrics(r) or r.metrics
        st = r.live_status
        t.add_row(r.run_id, Text(st, style=status_style(st)), r.benchmark, r.method, str(r.seed),
                  f"{r.progress[0]}/{r.progress[1]}", fmt(m.get("during", math.nan)), fmt(m.get("final", math.nan)))
    return t
