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


def run_label(rec: RunRecord) -> str:
    """A run's short name in legends and column heads: its id without the date-time prefix."""
    parts = rec.run_id.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() else rec.run_id


def short_labels(recs: list[RunRecord]) -> list[str]:
    """Run labels without the part all of them share ('split-mnist-ewc-s0', 'split-mnist-ft-s0' →
    'ewc-s0', 'ft-s0'): at 80 columns three runs and their mean must fit beside a plot."""
    labels = [run_label(r) for r in recs]
    if len(labels) < 2:
        return labels
    first = labels[0]
    n = 0
    for k in range(len(first)):
        if any(len(x) <= k or x[k] != first[k] for x in labels):
            break
        n = k + 1
    cut = first.rfind("-", 0, n) + 1  # whole words only
    short = [x[cut:] or x for x in labels]
    return short if len(set(short)) == len(short) else labels


def thin(x: np.ndarray, y: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """At most `n` evenly spaced points (always keeping the last): a braille plot is 2 dots per
    column, so more points only cost time (plotext draws every segment in Python)."""
    if x.size > n > 1:
        idx = np.unique(np.linspace(0, x.size - 1, n).round().astype(int))
        x, y = x[idx], y[idx]
    return x.tolist(), y.tolist()


def task_axis(steps: np.ndarray, phase_steps: list[int]) -> np.ndarray:
    """Global steps as task index + fraction of that task's phase (step 150 of phases [100, 100] →
    1.5), so runs of different lengths line up task by task."""
    starts = np.cumsum([0, *phase_steps]).astype(float)
    if steps.size == 0 or not phase_steps:
        return steps.astype(float)
    k = np.clip(np.searchsorted(starts, steps, side="right") - 1, 0, len(phase_steps) - 1)
    # A step on a phase's last index belongs to it (the curve point at its end), not the next one.
    at_end = (steps == starts[k]) & (k > 0)
    k = np.where(at_end, k - 1, k)
    length = np.maximum(np.asarray(phase_steps, dtype=float)[k], 1.0)
    return k + (steps - starts[k]) / length


def y_range(values: list[np.ndarray]) -> tuple[float, float]:
    """The accuracy axis fitted to the data (on multiples of 5, within 0-100, at least 10 wide): five
    curves between 97 and 100 get the height of the plot, not one row of a 0-100 axis."""
    finite = [v[~np.isnan(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0, 100.0
    lo, hi = min(float(v.min()) for v in finite), max(float(v.max()) for v in finite)
    lo, hi = max(0.0, np.floor((lo - 1) / 5) * 5), min(100.0, np.ceil((hi + 1) / 5) * 5)
    if hi - lo < 10:
        lo, hi = (max(0.0, hi - 10), hi) if hi - 10 >= 0 else (0.0, 10.0)
    return float(lo), float(hi)


class CachedPlot(PlotextPlot):
    """A plotext plot built by `_draw()` and cached by (data version, size, theme): re-renders for
    other reasons (a layout pass, a neighbour's update) cost nothing. Subclasses bump `_version`
    when their data changes."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._version = 0
        self._cache: tuple[Any, RenderResult] | None = None

    def _draw(self) -> None:
        raise NotImplementedError

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


class CurvesPlot(CachedPlot):
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
        plt.xlabel("step")
        points = max(2 * self.size.width, 8)
        if not self._runs:
            plt.ylim(0, 100)
            plt.title("forgetting curves (no run)")
            return
        if self._compare:
            # x = task index + fraction: runs of different lengths are aligned task by task.
            plt.title("mean accuracy (%) of seen tasks vs task · | = task boundary")
            plt.xlabel("task")
            n_tasks = max(len(r.phase_steps) for r in self._runs)
            for b in range(1, n_tasks):
                plt.vline(float(b), "gray")
            ys = []
            for rec, name in zip(self._runs, short_labels(self._runs)):
                x, y = mean_seen_curve(rec)
                if x.size:
                    ys.append(y)
                    plt.plot(*thin(task_axis(x, list(rec.phase_steps)), y, points), label=name, marker="braille")
            self._y_axis(ys)
            plt.xlim(0, max(n_tasks, 1))
            plt.xticks(list(range(n_tasks + 1)))
            return
        rec = self._runs[0]
        plt.title("seen-task accuracy (%) vs step · | = task boundary")
        for b in np.cumsum(rec.phase_steps)[:-1]:
            plt.vline(float(b), "gray")
        steps = rec.curve_steps.astype(float)
        self._y_axis([rec.curve_acc[:, j] for j in range(rec.curve_acc.shape[1])] if rec.curve_acc.size else [])
        labels = len(rec.task_names) <= self.LEGEND_MAX
        for j, name in enumerate(rec.task_names):
            col = rec.curve_acc[:, j] if rec.curve_acc.shape[0] else np.zeros(0)
            keep = ~np.isnan(col)
            if keep.any():
                plt.plot(*thin(steps[keep], col[keep], points), marker="braille", label=name if labels else None)
        plt.xlim(0, max(rec.progress[1], 1))

    def _y_axis(self, values: list[np.ndarray]) -> None:
        lo, hi = y_range(values)
        self.plt.ylim(lo, hi)
        self.plt.yticks([round(lo + (hi - lo) * f, 1) for f in (0, 0.25, 0.5, 0.75, 1)])
