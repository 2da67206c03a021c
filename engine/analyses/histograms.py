"""Histograms of every parameter's values at each phase's end.

Series (phase cadence), per parameter of `model.named_parameters()` ('.' → '_' in the name):

    hist_<param>         (bins,) i8: how many entries fall in each of `bins` equal-width bins over
                         [lo, hi]; entry x goes to bin floor((x − lo)/(hi − lo) · bins), the value hi
                         (and, with a fixed range, anything outside it) to the nearest end bin, so
                         the counts always sum to the parameter's size
    hist_<param>_range   (2,) columns ("lo", "hi"): that row's range

The range is the parameter's own [min, max] at that phase end (option `range` = [] , the default),
so each row spans its values; or one fixed [lo, hi] for every parameter and phase (`range` = [lo, hi],
rows comparable across phases). A constant parameter (min = max) gets [v − 0.5, v + 0.5].
Measured after the phase's consolidation, on the weights the phase's evaluation used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from engine.analyses.base import Observer, ObserverContext
from engine.analyses.common import named_params
from engine.registry import ANALYSES
from engine.schema import opt
from engine.series import SeriesSpec


@dataclass(frozen=True)
class HistogramsOptions:
    """Per-parameter value histograms at each phase end."""

    enabled: bool = opt(False, "record a histogram of every parameter's values at each phase end")
    bins: int = opt(50, "number of equal-width bins")
    range: list[float] = opt([], "[] = each row spans its parameter's [min, max]; [lo, hi] = one fixed range for all")  # noqa: RUF009 (opt copies lists per instance)

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "analyses.histograms." in front.
        if self.bins < 1:
            raise ValueError(f"bins = {self.bins!r} must be >= 1")
        if self.range and (len(self.range) != 2 or not self.range[0] < self.range[1]):
            raise ValueError(f"range = {self.range!r} must be [] or [lo, hi] with lo < hi")


def histogram(values: Tensor, bins: int, lo: float | None = None, hi: float | None = None
              ) -> tuple[Tensor, float, float]:
    """(counts [bins] int64 on the values' device, lo, hi): equal-width bins, end bins catching the rest.

    lo/hi default to the values' min/max (a host sync); a constant tensor gets [v − 0.5, v + 0.5].
    bincount adds integers, so the counts are the same bits on any device and thread count.
    """
    x = values.detach().flatten().double()
    if lo is None or hi is None:
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
    idx = ((x - lo) * (bins / (hi - lo))).floor().clamp_(0, bins - 1).long()
    return torch.bincount(idx, minlength=bins), lo, hi


@ANALYSES.register(HistogramsOptions)
class Histograms(Observer):
    def __init__(self, opts: HistogramsOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        self.params = named_params(ctx.model)

    def declare_series(self) -> list[SeriesSpec]:
        specs = []
        fixed = f"fixed range {self.opts.range}" if self.opts.range else "the parameter's [min, max]"
        for n, _ in self.params:
            specs.append(SeriesSpec(f"hist_{n}", (self.opts.bins,), dtype="i8", cadence="phase",
                                    description=f"counts of {n}'s values in {self.opts.bins} equal-width bins "
                                                f"over {fixed} (hist_{n}_range)"))
            specs.append(SeriesSpec(f"hist_{n}_range", (2,), cadence="phase", columns=("lo", "hi"),
                                    description=f"the range [lo, hi] of that row of hist_{n}"))
        return specs

    def on_phase_end(self, step: int, phase: int) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        lo, hi = self.opts.range if self.opts.range else (None, None)
        for n, p in self.params:
            counts, a, b = histogram(p, self.opts.bins, lo, hi)
            rows[f"hist_{n}"] = counts.cpu().numpy()
            rows[f"hist_{n}_range"] = [a, b]
        return rows
