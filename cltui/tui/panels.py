"""The Live screen's analysis panels: one per analysis a run records, drawn in the terminal from the
same numbers as the exported figures (cltui.figures.data).

Curves over steps (sparsity and dormant units, class probabilities, weight updates), the histograms
of the last phase end, the last layer's latent map and the accuracy per stage are plotext plots
(`AnalysisPlot`); probes, gradients and plasticity per phase are heat tables (`panel_table`).
Imported when the Live screen is first composed (plotext costs ~50 ms, as for cltui.tui.plot).
Torch-free and matplotlib-free.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Static

from cltui.figures import data as fd
from cltui.figures.data import Heat, Lines, NoFigureData
from cltui.tui.plot import CachedPlot, thin
from cltui.tui.widgets import heat_color
from engine.presentation import fmt
from engine.store import RunRecord

PANEL_TITLES = {
    "sparsity": "population sparsity and dormant units per layer",
    "classprobs": "mean p(true class) per class",
    "updates": "relative weight update ‖ΔW‖/‖W‖ per parameter (log)",
    "probes": "linear-probe accuracy (%) per phase",
    "gradients": "Σ|∂L/∂W| per phase",
    "histograms": "parameter histograms at the last phase end",
    "latent": "latent map of the last layer at the last phase end",
    "plasticity": "plasticity metrics per phase end",
    "stages": "best test accuracy (%) within each stage",
}
"""Every analysis panel, in the order `a` cycles through them (after the forgetting curves)."""
TABLE_PANELS = ("probes", "gradients", "plasticity")
COLORS = ("cyan", "magenta", "yellow", "green", "red", "blue", "orange", "white", "gray", "violet")


def panels_of(rec: RunRecord) -> list[str]:
    """The panels a run has series declared for (rows may still be on their way)."""
    return [p for p in PANEL_TITLES if p in fd.declared_figures(rec)]


# -- tables ------------------------------------------------------------------------------------
def _heat_table(h: Heat, percent: bool) -> Group:
    """`h` as its title over a rich table; % cells on the accuracy colours, other values as numbers.
    (The title is a line of its own: a table's title wraps at the table's width.)"""
    t = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 1))
    t.add_column(h.row_label, style="bold", no_wrap=True)
    for c in h.cols:
        t.add_column(c, justify="right", no_wrap=True)
    for i, r in enumerate(h.rows):
        cells: list[RenderableType] = []
        for v in h.values[i]:
            if not math.isfinite(v):
                cells.append(Text("·", style="dim"))
            elif percent:
                cells.append(Text(f"{v:.1f}", style=Style(color="white", bgcolor=heat_color(v))))
            else:
                cells.append(Text(f"{v:.3g}"))
        t.add_row(r, *cells)
    return Group(Text(h.title, style="bold", no_wrap=True, overflow="ellipsis"), t)


def panel_table(rec: RunRecord, panel: str) -> RenderableType:
    """A table panel of `rec` (probes, gradients, plasticity), or the one line saying why it is empty."""
    try:
        if panel == "probes":
            parts: list[RenderableType] = []
            for p in fd.probes_data(rec):
                parts += [_heat_table(p.overall, percent=True), Text("")]
            return Group(*parts)
        if panel == "gradients":
            g = fd.gradients_data(rec)
            parts = [_heat_table(g.per_param, percent=False), Text("")] if g.per_param is not None else []
            if g.per_unit:  # dead units: rows of a per-unit map that got exactly no gradient in a phase
                counts = [(h.values == 0).sum(axis=0) for h in g.per_unit]
                # A live run's maps may be read between two of their writes: show the phases all have.
                phases = min(len(c) for c in counts)
                zero = np.stack([c[:phases] for c in counts])
                size = [h.values.shape[0] for h in g.per_unit]
                parts.append(_heat_table(Heat("units without any gradient in the phase", zero.astype(float),
                                              [f"{h.title} ({n})" for h, n in zip(g.per_unit, size)],
                                              g.per_unit[0].cols[:phases], row_label="weight"), percent=False))
            return Group(*parts)
        if panel == "plasticity":
            fd.plasticity_data(rec)  # NoFigureData when nothing is recorded yet
            s = rec.series["plasticity"]
            names = fd.phase_names(rec)
            rows = [names[k] for k in fd.phase_of_rows(rec, s)]
            cols = list(s.spec.columns or [f"metric {k}" for k in range(s.values.shape[1])])
            return _heat_table(Heat("plasticity per phase end", s.values.astype(float).reshape(len(rows), -1), rows,
                                    cols, row_label="phase"), percent=False)
    except NoFigureData as e:
        return Text(str(e), style="yellow")
    return Text(f"no table panel {panel!r}", style="red")


# -- plots -------------------------------------------------------------------------------------
class AnalysisPlot(CachedPlot):
    """One plotted analysis panel of a run; rebuilt only when its data version or size changes."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._rec: RunRecord | None = None
        self._panel = ""

    def show(self, rec: RunRecord | None, panel: str) -> None:
        self._rec, self._panel = rec, panel
        self._version += 1
        self.refresh()

    def _lines(self, d: Lines, prefix: str = "", color0: int = 0) -> None:
        plt = self.plt
        points = max(2 * self.size.width, 8)
        for k, label in enumerate(d.labels):
            y = d.y[:, k]
            keep = ~np.isnan(y) & ((y > 0) if d.logy else True)
            if keep.any():
                plt.plot(*thin(d.x[keep].astype(float), y[keep], points), marker="braille",
                         color=COLORS[(color0 + k) % len(COLORS)], label=f"{prefix}{label}" if len(d.labels) <= 12 else None)
        for b in d.boundaries:
            plt.vline(float(b), "gray")

    def _draw(self) -> None:
        plt, rec, panel = self.plt, self._rec, self._panel
        plt.clear_figure()
        plt.title(PANEL_TITLES.get(panel, panel))
        if rec is None:
            return
        try:
            if panel == "sparsity":
                for i, d in enumerate(fd.sparsity_data(rec)):
                    self._lines(d, prefix="sparsity " if i == 0 else "dormant ", color0=4 * i)
                plt.ylim(0, 1)
                plt.xlabel("step")
            elif panel == "classprobs":
                self._lines(fd.class_probs_data(rec))
                plt.ylim(0, 1)
                plt.xlabel("step")
            elif panel == "updates":
                self._lines(fd.updates_data(rec))
                plt.yscale("log")
                plt.xlabel("step")
            elif panel == "histograms":
                for k, h in enumerate(fd.histograms_data(rec)):
                    lo, hi = h.ranges[-1]
                    centres = lo + (np.arange(h.counts.shape[1]) + 0.5) * (hi - lo) / h.counts.shape[1]
                    plt.plot(centres.tolist(), h.counts[-1].tolist(), marker="braille",
                             color=COLORS[k % len(COLORS)], label=h.param)
                    plt.title(f"parameter histograms after {h.phases[-1]}")
                plt.xlabel("value")
            elif panel == "latent":
                m = fd.latent_data(rec)[-1]
                for k, c in enumerate(np.unique(m.labels[-1])):
                    sel = m.labels[-1] == c
                    plt.scatter(m.points[-1, sel, 0].tolist(), m.points[-1, sel, 1].tolist(), marker="dot",
                                color=COLORS[k % len(COLORS)], label=str(c))
                plt.title(f"latent map of {m.layer} after {m.phases[-1]} (colour = class)")
            elif panel == "stages":
                best = fd.stage_best(rec)
                plt.plot(list(range(1, best.shape[0] + 1)), [b if math.isfinite(b) else 0.0 for b in best],
                         marker="braille")
                plt.xlabel("stage")
                plt.title(f"best test accuracy (%) within each stage · last {fmt(float(best[-1]))}")
        except NoFigureData as e:
            plt.title(str(e))


# -- the panel area of the Live screen ----------------------------------------------------------
class PanelArea(Vertical):
    """The Live screen's right side: the forgetting curves (`#live-curves`, drawn by the screen) or one
    analysis panel, chosen with `a`; a one-line bar names the panel when the run has analyses.

    A panel is redrawn when its rows change, at most once per `every` seconds while the run trains
    (a timer draws the last rows when nothing else arrives)."""

    def __init__(self, *, id: str | None = None, every: float = 1.0) -> None:  # noqa: A002
        super().__init__(id=id)
        self.panel = "curves"
        self.rec: RunRecord | None = None
        self.every = every
        self._key: tuple[Any, ...] | None = None
        self._drawn_at = 0.0
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        from cltui.tui.plot import CurvesPlot

        yield Static("", id="live-panel-bar")
        yield CurvesPlot(id="live-curves")
        yield AnalysisPlot(id="live-analysis")
        with VerticalScroll(id="live-table-box"):
            yield Static("", id="live-table")

    def panels(self) -> list[str]:
        return ["curves", *(panels_of(self.rec) if self.rec is not None else [])]

    def reset(self) -> None:
        """Back to the forgetting curves (another run is shown)."""
        self.panel, self._key = "curves", None
        self._layout()

    def cycle(self) -> str:
        """Show the next panel of the run (after the last, the curves again); returns its name."""
        names = self.panels()
        self.panel = names[(names.index(self.panel) + 1) % len(names)] if self.panel in names else "curves"
        self._key = None
        self._layout()
        self.show(self.rec)
        return self.panel

    def _layout(self) -> None:
        table = self.panel in TABLE_PANELS
        self.query_one("#live-curves").display = self.panel == "curves"
        self.query_one("#live-analysis").display = self.panel != "curves" and not table
        self.query_one("#live-table-box").display = table

    def show(self, rec: RunRecord | None) -> None:
        """A new record of the shown run: update the bar, and the panel when its rows changed."""
        self.rec = rec
        names = self.panels()
        bar = self.query_one("#live-panel-bar", Static)
        bar.display = len(names) > 1
        if len(names) > 1:
            k = names.index(self.panel) if self.panel in names else 0
            title = "forgetting curves" if self.panel == "curves" else self.panel
            bar.update(Text.assemble((f"panel {k + 1}/{len(names)}: {title}", "bold"),
                                     ("  ·  a: next panel  ·  e: export figures", "dim"), no_wrap=True))
        if rec is None or self.panel == "curves":
            return
        # Rows of everything but the training scalars: a new analysis row changes the key.
        key = (self.panel, rec.run_dir, tuple(s.steps.shape[0] for s in rec.series.values() if s.spec.cadence != "log"))
        if key == self._key:
            return
        wait = self._drawn_at + self.every - time.monotonic()
        if rec.live_status == "running" and wait > 0 and self._key is not None and self._key[:2] == key[:2]:
            if self._timer is None:
                self._timer = self.set_timer(wait, self._pending)
            return
        self._key, self._drawn_at = key, time.monotonic()
        if self.panel in TABLE_PANELS:
            self.query_one("#live-table", Static).update(panel_table(rec, self.panel))
        else:
            self.query_one("#live-analysis", AnalysisPlot).show(rec, self.panel)

    def _pending(self) -> None:
        self._timer = None
        self.show(self.rec)
