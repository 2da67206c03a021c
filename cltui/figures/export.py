"""Which figures exist, and writing a run's figures to files (used by `cltui plot` and the TUI's export key).

`FIGURES` names every figure (`--what`), with the loader of cltui.figures.data and the drawing
function of cltui.figures.draw it joins. `write_figures` saves the ones asked for as
`<out_dir>/<run id>-<what>.<format>`; a figure the run has no data for raises NoFigureData (one line
naming the analysis to turn on), or, for `all`, is skipped with that line. Matplotlib is imported
when a figure is drawn, never at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cltui.figures import data as fd
from cltui.figures import draw
from cltui.figures.data import NoFigureData
from engine.errors import CltuiError
from engine.store_read import RunRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")
DPI = 200
"""PNG resolution (SVG and PDF are vector)."""


@dataclass(frozen=True)
class FigureKind:
    """One figure: what it shows, and how it is made from a run (and an optional baseline run)."""

    what: str
    help: str
    make: Callable[[RunRecord, RunRecord | None], Figure]


def _title(rec: RunRecord, what: str) -> str:
    return f"{what}\n{rec.run_id} ({rec.benchmark} · {rec.method})"  # two lines: a narrow figure cuts one long one


FIGURES: dict[str, FigureKind] = {k.what: k for k in (
    FigureKind("curves", "forgetting curves per task, task boundaries dashed",
               lambda r, b: draw.draw_curves(fd.curves_data(r))),
    FigureKind("matrix", "accuracy matrix heat map (after phase i, task j)",
               lambda r, b: draw.draw_matrix(fd.matrix_data(r))),
    FigureKind("probes", "linear-probe accuracy per phase on seen/all/unseen classes, and per class",
               lambda r, b: draw.draw_probes(fd.probes_data(r), _title(r, "linear probes"))),
    FigureKind("sparsity", "population sparsity and dormant units per layer vs step",
               lambda r, b: draw.draw_lines(fd.sparsity_data(r), _title(r, "sparsity"))),
    FigureKind("updates", "relative weight update per parameter vs step (log)",
               lambda r, b: draw.draw_lines([fd.updates_data(r)], _title(r, "weight updates"))),
    FigureKind("gradients", "Σ|grad| per phase: per parameter and per unit of each weight matrix",
               lambda r, b: draw.draw_gradients(fd.gradients_data(r), _title(r, "gradients"))),
    FigureKind("histograms", "weight and bias histograms per parameter at the phase ends",
               lambda r, b: draw.draw_histograms(fd.histograms_data(r), _title(r, "parameter histograms"))),
    FigureKind("latent", "2-D maps of hidden layers at the phase ends, coloured by class",
               lambda r, b: draw.draw_latent(fd.latent_data(r), _title(r, "latent maps"))),
    FigureKind("classprobs", "mean predicted probability of the true class per class vs step",
               lambda r, b: draw.draw_lines([fd.class_probs_data(r)], _title(r, "class probabilities"))),
    FigureKind("plasticity", "dormant units, stable rank, effective rank, mean |weight| per phase",
               lambda r, b: draw.draw_lines(fd.plasticity_data(r), _title(r, "plasticity"))),
    FigureKind("stages", "best test accuracy within each stage (minus --baseline's when given)",
               lambda r, b: draw.draw_stages(fd.stages_data(r, b), _title(r, "accuracy per stage"))),
)}


class FigureWriteError(CltuiError):
    """A figure file could not be written (output folder not writable, disk full)."""


def figure_path(out_dir: Path, rec: RunRecord, what: str, fmt: str) -> Path:
    return Path(out_dir) / f"{rec.run_id}-{what}.{fmt}"


def write_figure(rec: RunRecord, what: str, fmt: str, out_dir: Path, baseline: RunRecord | None = None) -> Path:
    """Draw one figure of `rec` and save it; NoFigureData when the run has no data for it."""
    if what not in FIGURES:
        raise CltuiError(f"unknown figure {what!r}; one of: {', '.join(FIGURES)}, all")
    if fmt not in FORMATS:
        raise CltuiError(f"unknown figure format {fmt!r}; one of: {', '.join(FORMATS)}")
    fig = FIGURES[what].make(rec, baseline)
    path = figure_path(out_dir, rec, what, fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with draw.style():
            fig.savefig(path, format=fmt, dpi=DPI, metadata=_metadata(rec, fmt))
    except OSError as e:
        raise FigureWriteError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def _metadata(rec: RunRecord, fmt: str) -> dict[str, str]:
    """The run id in the file's own metadata, so a figure can be traced back to its record."""
    key = {"png": "Description", "svg": "Description", "pdf": "Subject"}[fmt]
    return {key: f"cltui run {rec.run_id}"}


def write_figures(rec: RunRecord, whats: list[str], fmt: str, out_dir: Path,
                  baseline: RunRecord | None = None) -> tuple[list[Path], list[str]]:
    """Write each figure in `whats` ('all' = every figure); returns (paths written, lines on skipped ones).

    Asked by name, a figure without data raises NoFigureData; within 'all' it is skipped instead."""
    every = "all" in whats
    names = list(FIGURES) if every else list(dict.fromkeys(whats))
    written, skipped = [], []
    for what in names:
        try:
            written.append(write_figure(rec, what, fmt, out_dir, baseline))
        except NoFigureData as e:
            if not every:
                raise
            skipped.append(f"{what}: {str(e).removeprefix(f'run {rec.run_id} has ')}")
    return written, skipped


def available(rec: RunRecord) -> list[str]:
    """The figures `rec` has data for (cheap: loads the data, draws nothing)."""
    loaders: dict[str, Callable[[RunRecord], object]] = {
        "curves": fd.curves_data, "matrix": fd.matrix_data, "probes": fd.probes_data,
        "sparsity": fd.sparsity_data, "updates": fd.updates_data, "gradients": fd.gradients_data,
        "histograms": fd.histograms_data, "latent": fd.latent_data, "classprobs": fd.class_probs_data,
        "plasticity": fd.plasticity_data, "stages": fd.stage_best}
    out = []
    for what, load in loaders.items():
        try:
            load(rec)
        except NoFigureData:
            continue
        out.append(what)
    return out
