"""Forgetting curves: every seen task's accuracy on a fixed test subset, at a regular step cadence.

Series `curves` ([T] per row, %; NaN for tasks not trained yet), written every `every` steps and
at each phase's last step (before the method's end-of-phase consolidation).

Cost: a curve point runs `samples` test forwards per seen task; the `every` training steps between
two points cost about every × batch_size × 3 forwards (forward + backward). `samples = 0` (the
default) sizes the subset so that, with every task seen, curves cost at most `budget` of that:
samples = budget · every · batch_size · 3 / T, kept within [100, 500] (100: a curve resolves 1 %).
Split-MNIST (T = 5, batch 128): 153; SSMNIST (batch 64): 100; demo (every 20, batch 64): 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from engine.analyses.base import Observer, ObserverContext
from engine.registry import ANALYSES
from engine.schema import opt
from engine.series import CURVES, SeriesSpec


@dataclass(frozen=True)
class CurvesOptions:
    """Forgetting curves on a fixed per-task test subset."""

    enabled: bool = opt(True, "record forgetting curves")
    every: int = opt(100, "evaluate all seen tasks on the fixed subset every N steps (and at each phase's last step)")
    samples: int = opt(0, "size of the fixed per-task test subset; 0 = sized for `budget` (100 to 500)")
    budget: float = opt(0.02, "samples = 0: the share of training compute curves may cost with every task seen")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "analyses.curves." in front.
        if self.every < 1:
            raise ValueError(f"every = {self.every!r} must be >= 1 (turn curves off with enabled = false)")
        if self.samples < 0:
            raise ValueError(f"samples = {self.samples!r} must be >= 1, or 0 (sized for the budget)")
        if not 0 < self.budget <= 1:
            raise ValueError(f"budget = {self.budget!r} must be in (0, 1]")


def subset_size(opts: CurvesOptions, batch_size: int, num_tasks: int) -> int:
    """Samples per task of the curves' fixed subset (the module doc gives the rule)."""
    if opts.samples > 0:
        return opts.samples
    return max(100, min(500, int(opts.budget * opts.every * batch_size * 3 / max(1, num_tasks))))


@ANALYSES.register(CurvesOptions)
class Curves(Observer):
    def __init__(self, opts: CurvesOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        self.every = opts.every
        self.samples = subset_size(opts, ctx.method.ctx.training.batch_size, len(ctx.benchmark.tasks))
        # The subset is the same for every seed, so the curves of a seed group are measured on the
        # same images: drawn from a generator seeded by the task index (as since the first release),
        # not from this analysis's per-run stream `self.gen`.
        self.idx = []
        for i, t in enumerate(ctx.benchmark.tasks):
            n = t.size("test")
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(4242 + i))
            self.idx.append(perm[: min(n, self.samples)].to(ctx.device))

    def declare_series(self) -> list[SeriesSpec]:
        names = tuple(t.name for t in self.ctx.benchmark.tasks)
        return [SeriesSpec(CURVES, (len(names),), cadence="curve", columns=names,
                           description=f"accuracy (%) of every seen task on a fixed subset of "
                                       f"{self.samples} test samples (NaN = not trained yet)")]

    def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
        seen = set(self.ctx.seen_tasks(phase))
        row = [self.ctx.evaluate(t, self.idx[t]) if t in seen else math.nan
               for t in range(len(self.ctx.benchmark.tasks))]
        return {CURVES: row}
