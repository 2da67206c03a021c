"""The forgetting-curves plot (textual-plotext). Its own module because importing plotext costs
~40-70 ms: the Live and Compare screens import it when they are first composed, after the first
screen is already drawn."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from cltui.tui.records import mean_seen_curve
from engine.store import RunRecord


def thin(x: np.ndarray, y: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """At most `n` evenly spaced points (always keeping the last): a braille plot is 2 dots per
    column, so more points only cost time (plotext draws every segment in Python)."""
    if x.size > n > 1:
        idx = np.unique(np.linspace(0, x.size - 1, n).round().astype(int))
        x, y = x[idx], y[idx]
    return x.tolist(), y.tolist()


class CurvesPlot(PlotextPlot):
    """Forgetting curves: accuracy of every seen task vs step, task boundaries as vertical lines.
    In comparison mode, one line per run: the mean accuracy over the tasks it has seen so far.

    The built plot is cached by (data version, size, theme): re-renders for other reasons (a
    layout pass, a neighbour's update) cost nothing, and a 20-task plot is only built when a new
    curve point arrives."""

    LEGEND_MAX: ClassVar[int] = 10  # more labels than this cover the plot

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._runs: list[RunRecord] = []
        self._compare = False
        self._version = 0
        self._cache: tuple[Any, RenderResult] | None = None

    def show(self, rec: RunRecord | None) -> None:
        self._runs, self._compare = ([rec] if rec is not None else []), False
        self._version += 1
        self.refresh()

    def show_many(self, recs: list[RunRecord]) -> None:
        self._runs, self._compare = list(recs), True
        self._version += 1
        self.refresh()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.ylim(0, 100)
        plt.yticks([0, 25, 50, 75, 100])
        plt.xlabel("step")
        points = max(2 * self.size.width, 8)
        if not self._runs:
            plt.title("forgetting curves (no run)")
            return
        if self._compare:
            plt.title("mean accuracy (%) of seen tasks vs step")
            for k, rec in enumerate(self._runs):
                x, y = mean_seen_curve(rec)
                if x.size:
                    plt.plot(*thin(x, y, points), label=f"{k + 1} {rec.method} s{rec.seed}", marker="braille")
            plt.xlim(0, max(max(r.progress[1] for r in self._runs), 1))
            return
        rec = self._runs[0]
        plt.title("seen-task accuracy (%) vs step · | = task boundary")
        for b in np.cumsum(rec.phase_steps)[:-1]:
            plt.vline(float(b), "gray")
        steps = rec.curve_steps.astype(float)
        labels = len(rec.task_names) <= self.LEGEND_MAX
        for j, name in enumerate(rec.task_names):
            col = rec.curve_acc[:, j] if rec.curve_acc.shape[0] else np.zeros(0)
            keep = ~np.isnan(col)
            if keep.any():
                plt.plot(*thin(steps[keep], col[keep], points), marker="braille", label=name if labels else None)
        plt.xlim(0, max(rec.progress[1], 1))

    def _register_theme(self, app_theme_name: str) -> None:
        # textual-plotext registers the app's colours on mount and on theme changes, then
        # refreshes; a plot cached before that would keep plotext's default colours.
        self._cache = None
        super()._register_theme(app_theme_name)

    def render(self) -> RenderResult:
        key = (self._version, self.size, self.app.theme)
        if self._cache is None or self._cache[0] != key:
            self._draw()
            self._cache = (key, super().render())
        return self._cache[1]
