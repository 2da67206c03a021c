"""One matplotlib function per figure, drawing the dataclasses of cltui.figures.data.

Each `draw_*` returns a `matplotlib.figure.Figure` built without pyplot (no global figure manager,
so the TUI can draw in a worker thread); `cltui.figures.export` saves it. Matplotlib is imported
inside the functions only. A `std` on a Lines/Heat/Stages is drawn as a band (lines) or as "± s"
in the annotation (heat maps), for seed-group figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from cltui.figures.data import Gradients, Heat, Histograms, Latent, Lines, Probes, Stages

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STYLE: dict[Any, Any] = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 7, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "figure.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "lines.linewidth": 1.2, "svg.fonttype": "none", "pdf.fonttype": 42,
}
"""Journal-sized fonts; text stays text in SVG and PDF (TrueType), so figures can be edited."""
MAX_POINTS = 3000
"""Points per line drawn: a 1 M-step curve is thinned evenly (its last point kept); more cannot be seen."""
ANNOTATE_MAX = 14
"""Heat maps with more rows or columns than this are not annotated with their values."""
ZERO_COLOR = "#22c4d8"
"""Gradient cells that are exactly zero (dead units): cyan, outside the magma colour map."""
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def style() -> Iterator[None]:
    """The figure style, for drawing and saving (fonts are read when text is created)."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def _styled(fn: F) -> F:
    @wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        with style():
            return fn(*args, **kwargs)

    return inner  # type: ignore[return-value]


def _figure(w: float, h: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def _colors(k: int) -> list[Any]:
    """Distinct colours for k lines: the categorical tab10 up to 10, else a sequential map (tasks in order)."""
    import matplotlib

    if k <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(k)]
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / max(k - 1, 1)) for i in range(k)]


def _thin(n: int) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, MAX_POINTS).round().astype(int))


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


# -- building blocks -----------------------------------------------------------------------------
def lines_on(ax: Axes, d: Lines, legend: bool = True) -> None:
    """Draw `d` on `ax`: one line per column, a band where `std` is given, task boundaries dashed."""
    idx = _thin(d.x.shape[0])
    x = d.x[idx]
    for b in d.boundaries:
        ax.axvline(b, color="0.55", lw=0.8, ls="--", zorder=0)
    colors = _colors(len(d.labels))
    for k, label in enumerate(d.labels):
        y = d.y[idx, k]
        keep = ~np.isnan(y)
        if not keep.any():
            continue
        ax.plot(x[keep], y[keep], color=colors[k], label=label, marker="o" if d.markers else None, ms=3)
        if d.std is not None:
            s = d.std[idx, k][keep]
            ax.fill_between(x[keep], y[keep] - s, y[keep] + s, color=colors[k], alpha=0.2, lw=0)
    if d.logy:
        ax.set_yscale("log")
    if d.ylim is not None:
        ax.set_ylim(*d.ylim)
    ax.set_xlabel("step")
    ax.set_ylabel(d.ylabel)
    ax.set_title(d.title)
    if legend and 1 < len(d.labels) <= 12:
        ax.legend(loc="best", ncols=1 if len(d.labels) <= 6 else 2, frameon=False)


def heat_on(fig: Figure, ax: Axes, h: Heat, cmap: str = "RdYlGn", log: bool = False, annotate: bool = True,
            bad: str = "0.92") -> None:
    """Draw `h` on `ax` as a heat map with a colour bar; values written in the cells when it is small.
    Cells without a value (NaN; on a log scale also exact zeros) get the colour `bad`."""
    import matplotlib

    from matplotlib.colors import LogNorm, Normalize

    v = np.ma.masked_invalid(h.values)
    cm = matplotlib.colormaps[cmap].with_extremes(bad=bad)
    if log:
        pos = h.values[np.isfinite(h.values) & (h.values > 0)]
        v = np.ma.masked_where(~(np.isfinite(h.values) & (h.values > 0)), h.values)
        norm: Normalize = LogNorm(float(pos.min()), float(pos.max())) if pos.size else Normalize(0, 1)
    else:
        norm = Normalize(h.vmin if h.vmin is not None else float(np.nanmin(h.values)) if v.count() else 0.0,
                         h.vmax if h.vmax is not None else float(np.nanmax(h.values)) if v.count() else 1.0)
    im = ax.imshow(v, cmap=cm, norm=norm, aspect="auto", interpolation="nearest")
    r, c = h.values.shape
    ax.grid(False)
    ax.set_title(h.title)
    ax.set_xlabel(h.col_label)
    ax.set_ylabel(h.row_label)
    step_c, step_r = max(1, math.ceil(c / 30)), max(1, math.ceil(r / 30))  # at most ~30 tick labels per axis
    shown = [h.cols[j] for j in range(0, c, step_c)]
    crowded = len(shown) * max((len(x) for x in shown), default=0) > 48  # labels would touch: slant them
    ax.set_xticks(range(0, c, step_c), shown, rotation=45 if crowded else 0, ha="right" if crowded else "center")
    ax.set_yticks(range(0, r, step_r), [h.rows[i] for i in range(0, r, step_r)])
    if annotate and r <= ANNOTATE_MAX and c <= ANNOTATE_MAX:
        for i in range(r):
            for j in range(c):
                val = h.values[i, j]
                if not np.isfinite(val):
                    continue
                # Narrow cells (many columns) get whole numbers: "100.0" would spill over its neighbours.
                text = (f"{val:.0f}" if c > 6 else f"{val:.1f}") if abs(val) < 1000 else f"{val:.2g}"
                if h.std is not None and np.isfinite(h.std[i, j]):
                    text += f"\n±{h.std[i, j]:.1f}"
                rgba = cm(norm(val))
                dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=h.unit, shrink=0.9)


# -- one function per figure ---------------------------------------------------------------------
@_styled
def draw_matrix(h: Heat) -> Figure:
    """The accuracy matrix as an annotated heat map (rows: after each phase; cols: the task tested)."""
    r, c = h.values.shape
    fig = _figure(max(4.5, 1.2 + 0.55 * c), max(3.2, 1.0 + 0.4 * r))
    heat_on(fig, fig.add_subplot(), h)
    return fig


@_styled
def draw_curves(d: Lines) -> Figure:
    """Forgetting curves: one line per task, task boundaries as dashed vertical lines."""
    fig = _figure(7.0, 3.8)
    ax = fig.add_subplot()
    lines_on(ax, d, legend=False)
    if len(d.labels) <= 12:
        ax.legend(title="task", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


@_styled
def draw_lines(panels: list[Lines], title: str) -> Figure:
    """Several line panels side by side (sparsity and dormant, updates, class probabilities, plasticity)."""
    rows, cols = _grid(len(panels), 2)
    fig = _figure(5.5 * cols, 3.4 * rows) if len(panels) > 1 else _figure(7.0, 3.8)
    if len(panels) > 1:  # one panel's own title already names the run
        fig.suptitle(title)
    for k, d in enumerate(panels):
        lines_on(fig.add_subplot(rows, cols, k + 1), d)
    return fig


@_styled
def draw_probes(layers: list[Probes], title: str) -> Figure:
    """Per layer: the probe table (phases × seen/all/unseen) and the per-class tables of each set."""
    cols = 1 + max((len(p.per_class) for p in layers), default=0)
    n_cls = max((p.per_class[0].values.shape[1] for p in layers if p.per_class), default=0)
    n_ph = max(p.overall.values.shape[0] for p in layers)
    fig = _figure(3.6 + (cols - 1) * max(3.6, 0.45 * n_cls), len(layers) * max(2.8, 0.9 + 0.38 * n_ph))
    fig.suptitle(title)
    for i, p in enumerate(layers):
        heat_on(fig, fig.add_subplot(len(layers), cols, i * cols + 1), p.overall)
        for j, h in enumerate(p.per_class):
            ax = fig.add_subplot(len(layers), cols, i * cols + 2 + j)
            heat_on(fig, ax, Heat(f"{p.layer}: {h.title}", h.values, h.rows, h.cols, h.row_label, h.col_label,
                                  h.vmin, h.vmax, h.unit, h.std), annotate=n_cls <= 10 and n_ph <= 6)
            if j:
                ax.set_ylabel("")
                ax.set_yticks([])
    return fig


@_styled
def draw_gradients(g: Gradients, title: str) -> Figure:
    """Σ|∂L/∂W| per phase: per parameter (log colour), and per output unit of each weight matrix
    (units × phases, log colour; ZERO_COLOR = exactly zero: a unit that got no gradient in that phase)."""
    panels: list[Heat] = ([g.per_param] if g.per_param is not None else []) + g.per_unit
    rows, cols = _grid(len(panels), 4)
    tall = max((h.values.shape[0] for h in g.per_unit), default=10)
    fig = _figure(3.4 * cols, rows * min(7.0, max(3.0, 0.03 * tall + 1.5)))
    fig.suptitle(f"{title}\n(cyan cells: exactly 0, no gradient reached that unit in that phase)")
    for k, h in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        heat_on(fig, ax, h, cmap="magma", log=True, annotate=False, bad=ZERO_COLOR)
        if h.row_label == "unit" and h.values.shape[0] > 30:
            ticks = np.linspace(0, h.values.shape[0] - 1, 6).round().astype(int)
            ax.set_yticks(ticks, [str(t) for t in ticks])
    return fig


@_styled
def draw_histograms(hs: list[Histograms], title: str) -> Figure:
    """Each parameter's histogram at the phase ends, one outline per phase (later = lighter)."""
    import matplotlib

    rows, cols = _grid(len(hs), 3)
    fig = _figure(4.0 * cols, 2.8 * rows)
    fig.suptitle(title)
    cmap = matplotlib.colormaps["viridis"]
    for k, h in enumerate(hs):
        ax = fig.add_subplot(rows, cols, k + 1)
        for s in range(h.counts.shape[0]):
            lo, hi = h.ranges[s]
            edges = np.linspace(lo, hi, h.counts.shape[1] + 1)
            ax.stairs(h.counts[s], edges, color=cmap(s / max(h.counts.shape[0] - 1, 1)), label=f"after {h.phases[s]}")
        ax.set_title(h.param)
        ax.set_xlabel("value")
        ax.set_ylabel("count")
        if k == 0:
            ax.legend(frameon=False)
    return fig


@_styled
def draw_latent(ls: list[Latent], title: str) -> Figure:
    """2-D maps of each layer (rows) at the phase ends (columns), points coloured by class."""
    import matplotlib

    cols = max(m.points.shape[0] for m in ls)
    fig = _figure(2.6 * cols + 1.0, 2.6 * len(ls))
    fig.suptitle(title)
    classes = sorted({int(c) for m in ls for c in np.unique(m.labels)})
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    color_of = {c: cmap(i % cmap.N) for i, c in enumerate(classes)}
    for i, m in enumerate(ls):
        for s in range(m.points.shape[0]):
            ax = fig.add_subplot(len(ls), cols, i * cols + s + 1)
            for c in classes:
                sel = m.labels[s] == c
                if sel.any():
                    ax.scatter(m.points[s, sel, 0], m.points[s, sel, 1], s=3, color=color_of[c], label=str(c),
                               linewidths=0, rasterized=m.points.shape[1] > 2000)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(f"after {m.phases[s]}", fontsize=8)
            if s == 0:
                ax.set_ylabel(m.layer)
    if classes and len(classes) <= 20:
        handles = [matplotlib.lines.Line2D([], [], marker="o", ls="", color=color_of[c], label=str(c)) for c in classes]
        fig.legend(handles=handles, title="class", loc="outside right center", frameon=False)
    return fig


@_styled
def draw_stages(st: Stages, title: str) -> Figure:
    """Best test accuracy within each stage; with a baseline, both and their difference (relative accuracy)."""
    two = st.baseline is not None
    fig = _figure(6.0, 5.4 if two else 3.4)
    fig.suptitle(title)
    ax = fig.add_subplot(2 if two else 1, 1, 1)
    ax.plot(st.stage, st.best, marker="o", ms=3, label=st.run_id or "run")
    if st.best_std is not None:
        ax.fill_between(st.stage, st.best - st.best_std, st.best + st.best_std, alpha=0.2, lw=0)
    if two:
        assert st.baseline is not None
        ax.plot(st.stage, st.baseline, marker="s", ms=3, color="0.4", label=f"baseline {st.baseline_id}")
        ax.legend(frameon=False)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("stage")
    ax.set_ylabel("max test accuracy in stage (%)")
    if two:
        assert st.baseline is not None
        ax2 = fig.add_subplot(2, 1, 2, sharex=ax)
        ax2.axhline(0, color="0.5", lw=0.8)
        ax2.plot(st.stage, st.best - st.baseline, marker="o", ms=3, color="C3")
        ax2.set_xlabel("stage")
        ax2.set_ylabel("relative accuracy (pp)")
        ax2.set_title("run − baseline")
    return fig
