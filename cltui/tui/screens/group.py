"""The group view: one sweep or seed group, read live from the run store. Its header (status, axes,
seeds), the per-grid-point table of mean ± sample std with n, its runs, and one curve per grid point
(mean accuracy over the tasks seen so far, averaged over seeds) with its ± std band drawn as two faint
lines. Pushed over any screen (command palette: "Open group ..."); escape goes back.

The numbers come from engine.groups and cltui.figures.group (the CLI's `show GROUP` lays out the same
ones); reading runs happens in a thread worker that posts them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group as RichGroup
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static
from textual_plotext import PlotextPlot

from cltui.figures.group import seen_mean_bands
from cltui.group_views import group_header, member_table, point_table
from cltui.tui.plot import y_range
from cltui.tui.widgets import KeysFooter
from engine.errors import CltuiError
from engine.groups import Group, load_group
from engine.presentation import STD_LABEL

Band = tuple[str, np.ndarray, np.ndarray, "np.ndarray | None"]
COLORS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")


class BandsPlot(PlotextPlot):
    """Mean accuracy of the seen tasks vs step, one line per grid point, ± std as two dotted lines."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.bands: list[Band] = []

    def show(self, bands: list[Band]) -> None:
        self.bands = bands
        self.refresh()

    def y_limits(self) -> tuple[float, float]:
        """The accuracy axis fitted to the bands (as the runs' plots are): curves between 97 and 100
        get the plot's height, not a sliver of a 0-100 axis."""
        return y_range([v for _, _, mean, std in self.bands
                        for v in ([mean] if std is None else [mean - np.nan_to_num(std), mean + np.nan_to_num(std)])])

    def render(self) -> Any:
        plt = self.plt
        plt.clear_figure()
        plt.ylim(*self.y_limits())
        plt.xlabel("step")
        plt.title(f"mean accuracy (%) of seen tasks · line: mean over seeds · dots: ± {STD_LABEL}")
        for k, (label, x, mean, std) in enumerate(self.bands):
            color = COLORS[k % len(COLORS)]
            keep = ~np.isnan(mean)
            plt.plot(x[keep].tolist(), mean[keep].tolist(), label=label, marker="braille", color=color)
            if std is not None:
                s = np.nan_to_num(std[keep])
                for sign in (-1, 1):
                    plt.plot(x[keep].tolist(), (mean[keep] + sign * s).tolist(), marker="dot", color=color)
        return super().render()


class GroupScreen(Screen[None]):
    """A sweep or seed group: mean ± sample std per grid point, its runs, and mean ± std curves."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    # Here rather than in app.tcss: this screen's layout travels with it (app.tcss is being reworked beside it).
    DEFAULT_CSS = """
    GroupScreen #group-tables { height: 1fr; }
    GroupScreen #group-plot { height: 1fr; min-height: 10; }
    """

    @dataclass
    class Loaded(Message):
        group: Group | None
        bands: list[Band]
        error: str = ""

    def __init__(self, runs_dir: Path, group: str, poll: float = 1.0) -> None:
        super().__init__()
        self.runs_dir, self.group_id, self.poll = Path(runs_dir), group, poll

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="group-tables"):
            yield Static("reading the group…", id="group-summary")
        yield BandsPlot(id="group-plot")
        yield KeysFooter()

    def on_mount(self) -> None:
        self._load()
        self.set_interval(self.poll, self._load)

    @work(thread=True, exclusive=True, group="group-load")
    def _load(self) -> None:
        try:
            g = load_group(self.runs_dir, self.group_id, with_series=True)  # the curves
        except CltuiError as e:
            self.post_message(self.Loaded(None, [], str(e)))
            return
        self.post_message(self.Loaded(g, seen_mean_bands(g)))

    def on_group_screen_loaded(self, msg: Loaded) -> None:
        summary = self.query_one("#group-summary", Static)
        if msg.group is None:
            summary.update(msg.error)
            return
        g = msg.group
        summary.update(RichGroup(group_header(g), point_table(g), member_table(g)))
        self.query_one("#group-plot", BandsPlot).show(msg.bands)
