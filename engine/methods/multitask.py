"""Multitask: one phase of joint training on every task (an upper bound), steps_per_task × T steps.

Each batch slot draws its task uniformly at random (the loop's mixed-batch sampling); the run has
a single accuracy-matrix row and therefore no "during" accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.methods.base import Method
from engine.registry import METHODS


@dataclass(frozen=True)
class MultitaskOptions:
    """Joint training on all tasks for steps_per_task × num_tasks steps; no options."""


@METHODS.register(MultitaskOptions)
class Multitask(Method):
    def schedule(self, num_tasks: int, steps_per_task: int) -> list[tuple[list[int], int]]:
        return [(list(range(num_tasks)), steps_per_task * num_tasks)]
