"""Learning-rate schedules: pure functions of (phase, step in phase, phase length), restarting every phase.

Resuming therefore needs only the loop's counters (nanoGPT's habit). `make_schedule` builds the
run's schedule from its TrainingConfig; the building blocks below are plain functions with no state.
Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from engine.config import TrainingConfig

Schedule = Callable[[int, int, int], float]
"""(phase, step in phase counted from 0, phase length in steps) → the learning rate of that step."""


def step_decay_lr(lr: float, gamma: float, step: int, boundaries: Sequence[int]) -> float:
    """lr × γ^(number of boundaries at or before `step`): a step that reaches a milestone runs decayed."""
    return lr * gamma ** sum(1 for b in boundaries if step >= b)


def cosine_lr(lr: float, lr_min: float, step: int, length: int) -> float:
    """Half a cosine from lr (step 0) to lr_min (step = length); held at lr_min past the end."""
    t = min(step, length) / max(length, 1)
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * t))


def cosine_epochs_lr(lr: float, lr_min: float, step: int, length: int, steps_per_epoch: int) -> float:
    """The cosine held constant within each epoch: epoch e = step // steps_per_epoch of E = the
    phase's epochs (length / steps_per_epoch, rounded up) runs at lr_min + (lr - lr_min)·(1 + cos(π·e/E))/2,
    what torch's CosineAnnealingLR(T_max=E) stepped once per epoch gives (SupSup's GG schedule)."""
    spe = max(steps_per_epoch, 1)
    return cosine_lr(lr, lr_min, step // spe, -(-length // spe))


def milestone_steps(length: int, fractions: Sequence[float], epochs: Sequence[int], steps_per_epoch: int) -> list[int]:
    """Milestones in steps of a phase: round(f × length) per fraction, e × steps_per_epoch per epoch."""
    return sorted([round(f * length) for f in fractions] + [e * steps_per_epoch for e in epochs])


def make_schedule(tr: TrainingConfig, steps_per_epoch: Sequence[int]) -> Schedule:
    """The run's schedule; `steps_per_epoch[phase]` converts epoch milestones of that phase into steps."""
    if tr.lr_schedule == "constant":
        return lambda phase, step, length: tr.lr
    if tr.lr_schedule == "cosine":
        return lambda phase, step, length: cosine_lr(tr.lr, tr.lr_min, step, length)
    if tr.lr_schedule == "cosine_epochs":
        return lambda phase, step, length: cosine_epochs_lr(tr.lr, tr.lr_min, step, length, steps_per_epoch[phase])

    def step_decay(phase: int, step: int, length: int) -> float:
        bounds = milestone_steps(length, tr.lr_milestones, tr.lr_milestone_epochs, steps_per_epoch[phase])
        return step_decay_lr(tr.lr, tr.lr_gamma, step, bounds)

    return step_decay
