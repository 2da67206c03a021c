"""Masking (reference §4.4): a fixed random binary mask of hidden units per task; all weights shared.

For every task and every unit layer of the model (`model.unit_layers`, in forward order), the unit
indices are shuffled with the global NumPy RNG (already seeded by the run seed) and the first
⌊units·p⌋ are switched off (p = `mask_fraction`, the fraction OFF). Masks are drawn once, when
the method is built right after the model, task by task and layer by layer, and never learned.
The forward runs the model inside `model.gated({layer: mask})` (the per-layer unit gates of
engine/models/base.py), which makes a masked unit output exactly 0 (at every time step for a
recurrent model). Without a regulariser, forgetting happens wherever
the active sets of tasks overlap; `masking_si` adds SI on top.

`Masking` is written as a cooperative mixin (it calls super() in every hook), so `masking_si`
combines it with SI by inheritance instead of copying either. Imports torch and NumPy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.methods.base import Method, MethodContext
from engine.registry import METHODS
from engine.schema import opt


def draw_masks(mask_sizes: list[int], num_tasks: int, fraction_off: float, device: torch.device,
               dtype: torch.dtype) -> list[list[Tensor]]:
    """masks[t][layer]: 0/1 per unit; ⌊units·fraction_off⌋ zeros, placed by np.random.permutation."""
    masks = []
    for _ in range(num_tasks):
        layers = []
        for units in mask_sizes:
            # The global NumPy RNG, not a named stream, on purpose: cl_in_rnns draws its masks from it right
            # after building the model, so the same seed gives the reference's masks (STYLE §13's exception).
            off = np.random.permutation(units)[: math.floor(units * fraction_off)]
            m = np.ones(units, dtype=np.float32)
            m[off] = 0.0
            layers.append(torch.from_numpy(m).to(device=device, dtype=dtype))
        masks.append(layers)
    return masks


@dataclass(frozen=True)
class MaskingOptions:
    """Fixed random binary unit masks per task (spec §4.4); all weights shared."""

    mask_fraction: float = opt(0.8, "fraction of each masked layer's units switched OFF per task, ⌊units·p⌋ (0.8 leaves 20% active)")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "method." in front.
        if not 0.0 <= self.mask_fraction < 1.0:
            raise ValueError(f"mask_fraction = {self.mask_fraction!r} must be in [0, 1)")


@METHODS.register(MaskingOptions)
class Masking(Method):
    def __init__(self, opts: MaskingOptions, ctx: MethodContext) -> None:
        super().__init__(opts, ctx)
        dtype = next(ctx.model.parameters()).dtype
        self.layers = list(ctx.model.unit_layers)
        # masks[task][k] belongs to unit layer self.layers[k] (a list, as the checkpoint stores it).
        self.masks = draw_masks(list(ctx.model.unit_layers.values()), ctx.benchmark.num_tasks,
                                opts.mask_fraction, ctx.device, dtype)

    def forward(self, x: Tensor, lengths: Tensor | None, task: int) -> Tensor:
        with self.model.gated(dict(zip(self.layers, self.masks[task]))):
            return self.model(x, lengths)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["masks"] = [[m.clone() for m in layers] for layers in self.masks]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.masks = [[m.to(self.ctx.device) for m in layers] for layers in state["masks"]]

    def describe(self) -> dict[str, Any]:
        active = [int(m.sum().item()) for m in self.masks[0]] if self.masks else []
        return {**super().describe(), "mask_active_units_per_layer": active}
