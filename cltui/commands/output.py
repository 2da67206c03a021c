"""The commands that write files: `cltui export` (CSV, JSON, Parquet) and `cltui plot` (matplotlib
figures, imported only when drawing)."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from cltui.commands.common import ExportFormat, RunsDir, app, console, err_console, fail, find_group, runs_root
from engine.errors import CltuiError

@app.command()
def export(
    run: Annotated[str, typer.Argument(help="run id (or unique part of it), or a group id")],
    format: Annotated[ExportFormat, typer.Option("--format", help="run: csv (accuracy matrix) or json (everything); group: csv, json or parquet (one row per run)")] = ExportFormat.json,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Export a run: its accuracy matrix as CSV, or config, matrix, metrics, curves and every recorded series as JSON.
    Export a group: one tidy row per run (group, run_id, status, seed, one column per grid axis, metrics)."""
    import numpy as np  # here, not at the top: `cltui --help` and most commands never need it

    from engine.provenance import strip_internal
    from engine.store import RunStore, read_run

    store = RunStore(runs_root(runs_dir))
    if (grp := find_group(run, runs_dir)) is not None:
        from cltui.group_views import export_rows

        try:
            text = export_rows(grp, format.value, output)
        except CltuiError as e:
            fail(str(e))
        if text is None:
            console.print(f"wrote {output}", highlight=False)
        else:
            sys.stdout.write(text)
        return
    if format is ExportFormat.parquet:
        fail("--format parquet is for groups (one row per run); export a run as csv or json")
    try:
        rec = read_run(store.find(run))
    except CltuiError as e:
        fail(str(e))

    def clean(a: np.ndarray) -> list:  # JSON has no NaN: write null
        return [[None if math.isnan(v) else v for v in row] for row in np.atleast_2d(a).tolist()]

    def plain(a: np.ndarray) -> Any:  # any shape and dtype; NaN → null
        if a.dtype.kind == "f":
            return np.where(np.isnan(a), None, a.astype(object)).tolist()
        return a.tolist()

    if format is ExportFormat.csv:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["after_phase", *rec.task_names])
        for i, row in enumerate(rec.acc):
            w.writerow([i, *["" if math.isnan(v) else f"{v:.4f}" for v in row]])
        text = buf.getvalue()
    else:
        text = json.dumps({
            "run_id": rec.run_id, "status": rec.live_status, "config": rec.config, "environment": rec.environment,
            "task_names": rec.task_names, "acc": clean(rec.acc), "acc_initial": clean(rec.acc_initial)[0],
            "metrics": {k: None if math.isnan(v) else v for k, v in rec.metrics.items()},
            "curves": {"step": rec.curve_steps.tolist(), "acc": clean(rec.curve_acc) if rec.curve_acc.size else []},
            # Every declared series of the record, with its declaration (format 2; format-1 runs map theirs).
            "series": {name: {"cadence": s.spec.cadence, "shape": list(s.spec.shape), "columns": s.spec.columns,
                              "description": strip_internal(s.spec.description), "source": s.spec.source,
                              "step": s.steps.tolist(), "value": plain(s.values)}
                       for name, s in rec.series.items()},
        }, indent=1)
    _write_out(text, output)


def _write_out(text: str, output: Path | None) -> None:
    if output:
        try:
            output.write_text(text)
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror}")
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


class PlotWhat(str, Enum):
    curves = "curves"
    matrix = "matrix"
    probes = "probes"
    sparsity = "sparsity"
    updates = "updates"
    gradients = "gradients"
    histograms = "histograms"
    latent = "latent"
    classprobs = "classprobs"
    plasticity = "plasticity"
    stages = "stages"
    all = "all"


class PlotFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


@app.command()
def plot(
    run: Annotated[str, typer.Argument(help="run id (or unique part of it), or a group id")],
    what: Annotated[list[PlotWhat], typer.Option("--what", help="figure(s) to draw (repeatable); all = every one the run has data for")] = [PlotWhat.all],  # noqa: B006
    format: Annotated[PlotFormat, typer.Option("--format", help="file format")] = PlotFormat.png,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="folder to write to (default: the run's figures/ folder)")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="stages: a run to subtract (e.g. the retrained network)")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Draw a run's figures with matplotlib (accuracy matrix, forgetting curves, and each analysis it recorded);
    a group's: mean ± sample std curves (bands) and matrices per grid point."""
    from rich.markup import escape

    from engine.store import RunStore

    whats = [w.value for w in what]
    if baseline is not None and not {"stages", "all"} & set(whats):
        fail("--baseline is only used by --what stages (or all)")
    store = RunStore(runs_root(runs_dir))
    if (grp := find_group(run, runs_dir, with_series=True)) is not None:
        from cltui.figures.group import write_group_figures

        if baseline is not None:
            fail("--baseline is for one run's stages figure, not a group")
        try:
            written, skipped = write_group_figures(grp, whats, format.value,
                                                   output or runs_root(runs_dir) / "groups" / grp.group / "figures")
        except CltuiError as e:
            fail(escape(str(e)))
    else:
        written, skipped = _plot_run(store, run, whats, format.value, output, baseline)
    for line in skipped:
        err_console.print(f"[yellow]skipped {escape(line)}[/yellow]", highlight=False, soft_wrap=True)
    for path in written:
        console.print(str(path), highlight=False, soft_wrap=True)


def _plot_run(store: Any, run: str, whats: list[str], fmt: str, output: Path | None,
              baseline: str | None) -> tuple[list[Path], list[str]]:
    from rich.markup import escape

    from cltui.figures.export import write_figures
    from engine.store import read_run

    try:
        rec = read_run(store.find(run))
        base = read_run(store.find(baseline)) if baseline is not None else None
        written, skipped = write_figures(rec, whats, fmt, output or rec.run_dir / "figures", base)
    except CltuiError as e:
        fail(escape(str(e)))  # the line names a config table, e.g. [analyses.probes]: not markup
    if not written:
        fail(f"run {rec.run_id} has no data for any figure yet")
    return written, skipped
