"""Rich renderables of stored runs: accuracy matrix, metrics beside the reference, run tables.

Used by the CLI (`cltui show`, the live view of `cltui run` / `cltui watch`). What they show (labels,
numbers, group statistics) comes from engine.presentation; this module only lays it out and colours
it. Torch-free, and numpy/h5py-free at import (`cltui runs` and the TUI's runs list use it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cltui.listing import Cell, Justify, fast_table
from engine.presentation import (
    STD_LABEL,
    divergence_text,
    error_summary,
    fmt,
    has_reference,
    metric_rows,
    metrics_of,
    phase_label,
    reference_of,
    resume_of,
)
from engine.provenance import comparability_note, source_words, strip_internal

if TYPE_CHECKING:
    from engine.run_index import RunSummary
    from engine.store_read import RunRecord


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
        t.add_row(phase_label(rec.task_names, rec.phase_tasks[i]), *[Text(fmt(v, 1), style=acc_style(v)) for v in row])
    return t


def metrics_table(rec: RunRecord, metrics: dict[str, float] | None = None, spread: dict[str, float] | None = None) -> Table:
    """Our metrics (± the group's spread) beside the preset's published result (when it has one)."""
    ref = reference_of(rec)
    t = Table(show_edge=False, pad_edge=False)
    t.add_column("metric")
    t.add_column("cltui" if spread is None else f"cltui (mean ± {STD_LABEL})", justify="right")
    with_ref = has_reference(ref)
    if with_ref:
        t.add_column("reference", justify="right")
    for row in metric_rows(metrics if metrics is not None else rec.metrics, ref, spread):
        t.add_row(row.label, row.cell, *([row.reference_cell] if with_ref else []))
    return t


def header(rec: RunRecord) -> Text:
    env = rec.environment
    lines = Text()
    lines.append(f"{rec.run_id}", style="bold")
    lines.append(f"  [{rec.live_status}]\n", style=status_style(rec.live_status))
    lines.append(f"preset {rec.preset} · {rec.benchmark} · {rec.method} · {rec.model} · seed {rec.seed} · "
                 f"device {env.get('device', '?')} ({env.get('device_name', '')})\n")
    lines.append(f"data: {env.get('data_source', '?')}\n", style="dim")
    for line in reference_lines(rec):
        lines.append_text(line)
        lines.append("\n")
    return lines


def reference_lines(rec: RunRecord) -> list[Text]:
    """Under a run's metrics: a 'not comparable' warning when its overrides change the protocol, where
    the reference comes from (in words; unverified in yellow) and the preset's notes."""
    ref = reference_of(rec)
    has_number = ref.get("during") is not None or ref.get("final") is not None
    out = []
    note = comparability_note(rec.environment) if has_number else ""
    if note:  # beside the reference column: the number is not this run's target
        out.append(Text(f"⚠ reference {note}", style="bold yellow"))
    if ref.get("source"):
        words = source_words(str(ref["source"]), str(ref.get("notes", "")), has_number)
        out.append(Text(f"reference: {words.label}", style="dim" if words.verified else "yellow"))
    if ref.get("notes"):
        out.append(Text(f"note: {strip_internal(str(ref['notes']))}", style="dim"))
    return out


def status_style(status: str) -> str:
    return {"running": "bold cyan", "finished": "bold green", "interrupted": "bold yellow", "failed": "bold red",
            "diverged": "bold magenta"}.get(status, "")


def inference_table(rec: RunRecord) -> Table | None:
    """Task inference (evaluation.task_inference h/g) at each of its points, or None when the run has none."""
    from engine.inference_view import inference_points  # numpy

    points = inference_points(rec)
    if not points:
        return None
    t = Table(title="task inference · mean % over the tasks learned", title_justify="left", show_edge=False,
              pad_edge=False)
    for col in ("tasks", "step", "task inferred", "acc (inferred)", "acc (given)"):
        t.add_column(col, justify="right")
    for p in points:
        t.add_row(str(p.learned), str(p.step), Text(fmt(p.task_acc, 1), style=acc_style(p.task_acc)),
                  Text(fmt(p.inferred_acc, 1), style=acc_style(p.inferred_acc)),
                  Text(fmt(p.given_acc, 1), style=acc_style(p.given_acc)))
    return t


def run_summary(rec: RunRecord) -> Group:
    parts: list[Any] = [header(rec), matrix_table(rec), Text(""), metrics_table(rec, metrics_of(rec))]
    inference = inference_table(rec)
    if inference is not None:
        parts += [Text(""), inference]
    parts.extend(status_lines(rec))
    return Group(*parts)


def status_lines(rec: RunRecord) -> list[Text]:
    """Why a run ended badly, under its summary: a failure's error or where it diverged."""
    if rec.status == "failed" and rec.error:
        return [Text("error: " + error_summary(rec.error), style="red")]
    if rec.status == "diverged" and rec.divergence:
        return [Text(divergence_text(rec.divergence), style="magenta")]
    return []


def runs_table(records: list[RunSummary], width: int | None = None) -> Table | Text:
    """One row per run. The id is never wrapped or cut (it is what `show`/`resume` take); when the
    terminal is too narrow for every column, benchmark, method and seed go first (the id names the
    preset and seed). Drawn by cltui.listing.fast_table (1000 runs: ~30 ms instead of rich's ~0.6 s,
    same look) unless even that is too wide, when rich's Table shrinks the columns."""
    wide = width is None or width >= 120
    cols: list[tuple[str, Justify]] = [
        ("run", "left"), ("status", "left"),
        *([("benchmark", "left"), ("method", "left"), ("seed", "right")] if wide else []),  # type: ignore[list-item]
        ("steps", "right"), ("during", "right"), ("final", "right")]
    rows: list[list[Cell]] = []
    for r in records:
        m = metrics_of(r)
        st = r.live_status
        extra = [r.benchmark, r.method, str(r.seed)] if wide else []
        rows.append([r.run_id, (st, status_style(st)), *extra, f"{r.progress[0]}/{r.progress[1]}",
                     fmt(m.get("during", math.nan)), fmt(m.get("final", math.nan))])
    fast = fast_table(cols, rows, width)
    if fast is not None:
        return fast
    t = Table(show_edge=False, pad_edge=False)
    for col, just in cols:
        t.add_column(col, justify=just, no_wrap=True)
    for row in rows:
        t.add_row(*(c if isinstance(c, str) else Text(c[0], style=c[1]) for c in row))
    return t


def status_alert(rec: RunRecord) -> tuple[Text | str, Group | str]:
    """The always-visible alert line of a run that ended badly or was interrupted, and the full error
    text shown under the metrics ('' for none)."""
    st = rec.live_status
    if st == "failed":
        lines = rec.error.strip().splitlines() or ["(no error text)"]
        res = resume_of(rec)
        hint = f"r {res.text}" if res.possible else res.text
        return (Text(f"failed: {error_summary(rec.error)}  ({hint}; full error below)", style="bold red"),
                Group(Text("\nerror:", style="bold red"), Text("\n".join(lines), style="red")))
    if st == "diverged":
        return Text(divergence_text(rec.divergence) if rec.divergence else "diverged", style="bold magenta"), ""
    if st == "interrupted":
        res = resume_of(rec)
        return Text(f"interrupted at step {rec.progress[0]}, " + (f"r {res.text}" if res.possible else res.text),
                    style="bold yellow"), ""
    return "", ""
