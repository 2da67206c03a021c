"""Figures of a group (sweep or seed group): per grid point, the mean ± sample std over its seeds of the
forgetting curves (bands, task boundaries dashed) and of the accuracy matrix ("± s" in each cell).

The data are the single-run loaders of cltui.figures.data averaged over the point's runs, drawn by
cltui.figures.draw (whose Lines/Heat carry the `std`). Runs of one point share their config but the seed,
so their curves have the same steps; a run still going is cut to the rows every run has. Torch-free;
matplotlib only when drawing.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from cltui.figures import data as fd
from cltui.figures import draw
from cltui.figures.data import Heat, Lines, NoFigureData
from cltui.figures.export import FORMATS, DPI, FigureWriteError
from engine.groups import Group, Member
from engine.presentation import STD_LABEL
from engine.store_read import RunRecord

T = TypeVar("T")
GROUP_FIGURES = {"curves": "mean ± std forgetting curves per grid point, task boundaries dashed",
                 "matrix": "mean accuracy matrix per grid point, ± std in each cell"}


def _points(g: Group) -> list[tuple[str, list[RunRecord]]]:
    """(label, runs with a record) per grid point, in plan order; points without any run are left out."""
    order: dict[str, list[Member]] = {}
    for m in g.members:
        order.setdefault(json.dumps(m.point, sort_keys=True), []).append(m)
    out = []
    for members in order.values():
        recs = [m.record for m in members if m.record is not None]
        point = members[0].point
        label = ", ".join(f"{k.rpartition('.')[2]}={json.dumps(v) if not isinstance(v, str) else v}"
                          for k, v in point.items()) or g.group
        if recs:
            out.append((label, recs))
    return out


def mean_and_std(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean and sample std (ddof 1) over axis 0, ignoring NaN; std None for one run (no spread)."""
    with warnings.catch_warnings():  # an all-NaN cell (a task not evaluated yet) stays NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(stack, axis=0)
        std = np.nanstd(stack, axis=0, ddof=1) if stack.shape[0] > 1 else None
    return mean, std


def _n_label(n: int) -> str:
    return f"n={n}, ± {STD_LABEL}" if n > 1 else "n=1, no spread"


def _each(recs: list[RunRecord], figure: Callable[[RunRecord], T]) -> list[T]:
    """`figure` of each run that has its data (runs without it, e.g. not yet evaluated, are left out)."""
    out = []
    for r in recs:
        try:
            out.append(figure(r))
        except NoFigureData:
            continue
    return out


def group_curves_data(g: Group) -> list[Lines]:
    """One panel per grid point: each task's accuracy curve as mean ± sample std over the point's seeds."""
    panels = []
    for label, recs in _points(g):
        lines = _each(recs, fd.curves_data)
        if not lines:
            continue
        n = min(d.x.shape[0] for d in lines)
        mean, std = mean_and_std(np.stack([d.y[:n] for d in lines]))
        panels.append(Lines(f"{label} ({_n_label(len(lines))})", "test accuracy (%)", lines[0].x[:n], mean,
                            lines[0].labels, fd.boundaries(recs[0]), ylim=(0.0, 100.0), std=std))
    if not panels:
        raise NoFigureData(f"group {g.group} has no forgetting curves yet ([analyses.curves] enabled = true)")
    return panels


def group_matrix_data(g: Group) -> list[Heat]:
    """One heat map per grid point: acc[i, j] as mean over the point's seeds, ± sample std in each cell."""
    out = []
    for label, recs in _points(g):
        mats = _each(recs, fd.matrix_data)
        if not mats:
            continue
        mean, std = mean_and_std(np.stack([h.values for h in mats]))
        h = mats[0]
        out.append(Heat(f"accuracy (%) · {label} ({_n_label(len(mats))})", mean, h.rows, h.cols, h.row_label,
                        h.col_label, h.vmin, h.vmax, h.unit, std))
    if not out:
        raise NoFigureData(f"group {g.group} has no accuracy matrix yet: no phase has finished")
    return out


def write_group_figures(g: Group, whats: list[str], fmt: str, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Write the group's figures ('all' = both); (paths written, lines on figures skipped for want of data).
    Curves: one file with a panel per grid point; matrices: one file per grid point."""
    if fmt not in FORMATS:
        raise FigureWriteError(f"unknown figure format {fmt!r}; one of: {', '.join(FORMATS)}")
    names = list(GROUP_FIGURES) if "all" in whats else [w for w in dict.fromkeys(whats)]
    unknown = [w for w in names if w not in GROUP_FIGURES]
    if unknown:
        raise NoFigureData(f"a group draws {' and '.join(GROUP_FIGURES)} only, not {', '.join(unknown)}")
    written: list[Path] = []
    skipped: list[str] = []
    figs = []
    for what in names:
        try:
            if what == "curves":
                figs.append((f"{g.group}-curves", draw.draw_lines(group_curves_data(g), f"forgetting curves\n{g.group}")))
            else:
                figs += [(f"{g.group}-matrix-{k + 1}", draw.draw_matrix(h)) for k, h in enumerate(group_matrix_data(g))]
        except NoFigureData as e:
            if "all" not in whats:
                raise
            skipped.append(f"{what}: {e}")
    for stem, fig in figs:
        path = Path(out_dir) / f"{stem}.{fmt}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with draw.style():
                fig.savefig(path, format=fmt, dpi=DPI)
        except OSError as e:
            raise FigureWriteError(f"cannot write {path}: {e.strerror or e}") from None
        written.append(path)
    return written, skipped


def seen_mean_bands(g: Group) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """Per grid point: (label, steps, mean, std) of the mean accuracy over the tasks seen so far, averaged
    over the point's seeds (std None for one run): one line with a band per point, for the TUI's group view."""
    out = []
    for label, recs in _points(g):
        curves = []
        for r in recs:
            if r.curve_acc.shape[0] == 0:
                continue
            with warnings.catch_warnings():  # a point before any task is evaluated has no seen task
                warnings.simplefilter("ignore", RuntimeWarning)
                curves.append((r.curve_steps.astype(float), np.nanmean(r.curve_acc.astype(float), axis=1)))
        if not curves:
            continue
        n = min(x.shape[0] for x, _ in curves)
        mean, std = mean_and_std(np.stack([y[:n] for _, y in curves]))
        out.append((f"{label} (n={len(curves)})", curves[0][0][:n], mean, std))
    return out
