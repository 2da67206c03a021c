"""Shrink and perturb as the loss-of-plasticity reference runs it on incremental CIFAR-100 (spec §10.1).

After every optimizer step, Gaussian noise of std `noise_std` is added to every parameter of the
model. The "shrink" is the optimizer's weight decay (training.weight_decay), so this method only
perturbs. The noise is drawn on the run's device from a generator of its own, seeded from the run
seed and the name "shrink_perturb" and saved in `state_dict`, so a resumed run draws the same noise
(drawing 11 M numbers per step on the CPU and copying them over would cost more than the step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from engine.methods.base import Method, MethodContext
from engine.registry import METHODS
from engine.rng import stream_seed
from engine.schema import opt


@dataclass(frozen=True)
class ShrinkPerturbOptions:
    """Add N(0, noise_std²) noise to every parameter after each step (shrink = the optimizer's weight decay)."""

    noise_std: float = opt(1e-5, "standard deviation of the noise added to every parameter after each step")

    def __post_init__(self) -> None:
        if not self.noise_std >= 0 or self.noise_std == float("inf"):
            raise ValueError(f"noise_std = {self.noise_std!r} must be finite and >= 0")


@METHODS.register(ShrinkPerturbOptions)
class ShrinkPerturb(Method):
    def __init__(self, opts: ShrinkPerturbOptions, ctx: MethodContext) -> None:
        super().__init__(opts, ctx)
        self.gen = torch.Generator(device=ctx.device).manual_seed(stream_seed(ctx.seed, "shrink_perturb"))

    @torch.no_grad()
    def after_step(self, phase: int, tasks: list[int]) -> None:
        if self.opts.noise_std == 0:
            return
        for p in self.model.parameters():
            p.add_(torch.randn(p.shape, generator=self.gen, device=p.device, dtype=p.dtype), alpha=self.opts.noise_std)

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
