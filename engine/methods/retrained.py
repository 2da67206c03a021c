"""Retrained network (loss-of-plasticity reference, spec §10.1): a fresh network at every stage.

The baseline of "relative accuracy": before each phase after the first, the whole model is
re-initialised (`model.reset_parameters()`, drawing from the run's stream "retrained/<phase>", so
a resumed run draws the same) and, since a fresh network trained
from scratch has no past, the optimizer's state (SGD momentum) is cleared too. Unlike `scratch`
(which keeps the optimizer's state when training.reset_optimizer is false), nothing of the
previous stage survives. The reference re-creates its optimizer here as far as the spec records;
`clear_optimizer = false` keeps the momentum instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.methods.base import Method
from engine.registry import METHODS
from engine.rng import global_rng_from_stream
from engine.schema import opt


@dataclass(frozen=True)
class RetrainedOptions:
    """Re-initialise the whole network (and clear the optimizer's state) at every phase after the first."""

    clear_optimizer: bool = opt(True, "also drop the optimizer's state (momentum) at each re-initialisation")


@METHODS.register(RetrainedOptions)
class Retrained(Method):
    def before_phase(self, phase: int, tasks: list[int]) -> None:
        if phase == 0:
            return
        with global_rng_from_stream(self.ctx.seed, f"retrained/{phase}", self.ctx.device):
            self.model.reset_parameters()
        if self.opts.clear_optimizer and self.optimizer is not None:
            self.optimizer.state.clear()  # momentum buffers are re-created lazily at the next step
