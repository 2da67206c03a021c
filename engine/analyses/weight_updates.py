"""Relative weight update of every parameter for the step just taken, at curve points.

Series `weight_update` (curve cadence, one value per parameter of `model.named_parameters()`,
columns the names with '.' → '_'): ‖W_t − W_{t−1}‖ / ‖W_{t−1}‖ (Frobenius norms) over optimizer
step t, i.e. everything the step changed (optimizer update, then the method's `after_step`). NaN
where ‖W_{t−1}‖ = 0 (e.g. a BatchNorm bias before its first step), and a whole NaN row at a point
whose step was not snapshotted (see on_curve_point; no stop rule of today's loop leads there).

What it copies: the weights only before the steps it measures. `on_gradients` (just before
`optimizer.step()`) snapshots them when the coming step is a curve point (every `every` steps) or
may end the phase (an epoch's or the plan's last step, where a stop rule can end it): one copy of the
parameters per measured step, none on the other steps. The snapshot is taken and used within one
step, so there is nothing to checkpoint: checkpoints fall between steps.
"""

from __future__ import annotations

import math
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
class WeightUpdatesOptions:
    """Relative update ‖ΔW‖/‖W‖ of each parameter for the step just taken."""

    enabled: bool = opt(False, "record each parameter's relative update ‖ΔW‖/‖W‖ of the step just taken")
    every: int = opt(100, "measure the update of every N-th step (and of each phase's last step)")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "analyses.weight_updates." in front.
        if self.every < 1:
            raise ValueError(f"every = {self.every!r} must be >= 1")


def relative_updates(before: list[Tensor], after: list[Tensor]) -> list[float]:
    """‖a − b‖ / ‖b‖ per pair (float64 norms; NaN where ‖b‖ = 0); one host sync for all of them."""
    rows = []
    for b, a in zip(before, after):
        b64 = b.double()
        rows.append(torch.stack([(a.double() - b64).norm(), b64.norm()]))
    if not rows:
        return []
    out = []
    for diff, norm in torch.stack(rows).cpu().tolist():
        out.append(diff / norm if norm > 0 else math.nan)
    return out


@ANALYSES.register(WeightUpdatesOptions)
class WeightUpdates(Observer):
    def __init__(self, opts: WeightUpdatesOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        self.every = opts.every
        self.params = named_params(ctx.model)
        self.before: tuple[int, list[Tensor]] | None = None
        """(step, weights just before that step), set by on_gradients and used by on_curve_point."""

    def declare_series(self) -> list[SeriesSpec]:
        cols = tuple(n for n, _ in self.params)
        return [SeriesSpec("weight_update", (len(cols),), cadence="curve", columns=cols,
                           description="‖W_t − W_{t−1}‖/‖W_{t−1}‖ of each parameter over the step just taken")]

    def on_gradients(self, step: int, phase: int, curve_point: bool) -> None:
        # Another step's snapshot is never reused: it is replaced or dropped here.
        self.before = (step, [p.detach().clone() for _, p in self.params]) if curve_point else None

    def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
        before, self.before = self.before, None
        if before is None or before[0] != step:
            # Only if a phase ended at a step the loop did not announce as a possible end (today's
            # stop rules all end a phase at an epoch's or the plan's last step): a NaN row says "not
            # measured" rather than failing a long run over one point.
            return {"weight_update": [math.nan] * len(self.params)}
        return {"weight_update": relative_updates(before[1], [p.detach() for _, p in self.params])}
