"""Forgetting curves: every seen task's accuracy on a fixed test subset, at a regular step cadence.

Series `curves` ([T] per row, %; NaN for tasks not trained yet), written every `every` steps and
at each phase's last step (before the method's end-of-phase consolidation).
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
    samples: int = opt(500, "size of the fixed per-task test subset")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "analyses.curves." in front.
        for n in ("every", "samples"):
            if getattr(self, n) < 1:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 1 (turn curves off with enabled = false)")


@ANALYSES.register(CurvesOptions)
class Curves(Observer):
    def __init__(self, opts: CurvesOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        self.every = opts.every
        # The subset is the same for every seed, so the curves of a seed group are measured on the
        # same images: drawn from a generator seeded by the task index (as since the first release),
        # not from this analysis's per-run stream `self.gen`.
        self.idx = []
        for i, t in enumerate(ctx.benchmark.tasks):
            n = t.size("test")
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(4242 + i))
            self.idx.append(perm[: min(n, opts.samples)].to(ctx.device))

    def declare_series(self) -> list[SeriesSpec]:
        names = tuple(t.name for t in self.ctx.benchmark.tasks)
        return [SeriesSpec(CURVES, (len(names),), cadence="curve", columns=names,
                           description=f"accuracy (%) of every seen task on a fixed subset of "
                                       f"{self.opts.samples} test samples (NaN = not trained yet)")]

    def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
        seen = set(self.ctx.seen_tasks(phase))
        row = [self.ctx.evaluate(t, self.idx[t]) if t in seen else math.nan
               for t in range(len(self.ctx.benchmark.tasks))]
        return {CURVES: row}
