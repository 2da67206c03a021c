"""Head resetting (loss-of-plasticity reference, spec §10.1): re-initialise the read-out at every new stage.

Before each phase after the first, the model's read-out Linear (`model.readout`) gets the
reference's init: Kaiming-normal weights with linear gain, zero bias, drawn from the run's stream
"head_reset/<phase>" (so a resumed run draws the same). Everything else keeps training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.methods.base import Method
from engine.registry import METHODS
from engine.rng import global_rng_from_stream


@dataclass(frozen=True)
class HeadResetOptions:
    """Re-initialise the read-out layer at the start of every phase after the first; no options."""


def reset_head(model: nn.Module, readout: str) -> None:
    head = model.get_submodule(readout)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"read-out {readout!r} is a {type(head).__name__}, not a Linear")
    with torch.no_grad():
        nn.init.kaiming_normal_(head.weight, nonlinearity="linear")
        nn.init.zeros_(head.bias)


@METHODS.register(HeadResetOptions)
class HeadReset(Method):
    def before_phase(self, phase: int, tasks: list[int]) -> None:
        if phase > 0:
            with global_rng_from_stream(self.ctx.seed, f"head_reset/{phase}", self.ctx.device):
                reset_head(self.model, self.model.readout)
