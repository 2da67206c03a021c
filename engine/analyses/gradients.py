"""Gradient magnitude accumulated over each phase, per parameter and per output unit.

Series (phase cadence, written at each phase's end):

    grad_layer             (P,) columns the parameter names ('.' → '_'): Σ over the phase's steps of
                           Σ |∂L/∂W| over the parameter's entries
    grad_units_<param>     one per weight matrix (a parameter with ≥ 2 dimensions), (out_units,):
                           Σ over the phase's steps of Σ over each output unit's incoming weights
                           (row of a Linear, in-channels × kernel of a Conv) of |∂L/∂W|; a unit
                           that never updates (a dead ReLU) shows as 0

The gradient is each step's `.grad` as the optimizer receives it (engine/analyses/base.py
`on_gradients`, before `optimizer.step()`): task loss plus the method's penalty, after clipping and
after any projection a method applies in its hooks; a decoupled weight decay is not in it. A
parameter without a gradient in a step (frozen, or a hypernetwork's target) adds 0. Cost per step:
one |·| and one row sum per parameter, accumulated on the device (no host sync): about 0.2 ms of CPU
time for the 784-400-400-10 MLP, whose step takes about 7 ms. The sums are in the checkpoint, so a
resumed phase continues them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from engine.analyses.base import Observer, ObserverContext
from engine.analyses.common import named_params
from engine.registry import ANALYSES
from engine.schema import opt
from engine.series import SeriesSpec


@dataclass(frozen=True)
class GradientsOptions:
    """Σ|∂L/∂W| over each phase, per parameter and per output unit."""

    enabled: bool = opt(False, "record the gradient magnitude accumulated over each phase, per parameter and per unit")


@ANALYSES.register(GradientsOptions)
class Gradients(Observer):
    def __init__(self, opts: GradientsOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        self.params = named_params(ctx.model)
        # One accumulator per parameter: per output unit for a matrix (its total is their sum), a
        # 1-element total for a vector. float64: thousands of steps of small sums lose no digits.
        self.sums = [torch.zeros(p.shape[0] if p.dim() >= 2 else 1, dtype=torch.float64, device=p.device)
                     for _, p in self.params]

    def declare_series(self) -> list[SeriesSpec]:
        cols = tuple(n for n, _ in self.params)
        specs = [SeriesSpec("grad_layer", (len(cols),), cadence="phase", columns=cols,
                            description="Σ over the phase's steps of Σ|∂L/∂W| per parameter")]
        for n, p in self.params:
            if p.dim() >= 2:
                specs.append(SeriesSpec(f"grad_units_{n}", (p.shape[0],), cadence="phase",
                                        description=f"Σ over the phase's steps of Σ|∂L/∂W| over each output "
                                                    f"unit's incoming weights of {n}"))
        return specs

    def on_gradients(self, step: int, phase: int, curve_point: bool) -> None:
        for acc, (_, p) in zip(self.sums, self.params):
            if p.grad is None:
                continue
            g = p.grad.detach().abs()
            # A step's row sums in the gradient's dtype (half the time of summing in float64), the
            # running sums across steps in float64.
            acc += g.flatten(1).sum(1) if g.dim() >= 2 else g.sum()

    def on_phase_end(self, step: int, phase: int) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        sums = [s.cpu() for s in self.sums]  # one host sync per phase
        rows["grad_layer"] = [float(s.sum()) for s in sums]
        for s, (n, p) in zip(sums, self.params):
            if p.dim() >= 2:
                rows[f"grad_units_{n}"] = s.tolist()
        for s in self.sums:
            s.zero_()
        return rows

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "sums": [s.clone() for s in self.sums]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for s, saved in zip(self.sums, state["sums"]):
            s.copy_(saved)

