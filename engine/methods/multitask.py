"""Multitask: one phase of joint training on every task (an upper bound), steps_per_task × T steps.

Each batch slot draws its task uniformly at random (the loop's mixed-batch sampling); the run has
a single accuracy-matrix row and therefore no "during" accuracy.
"""

from __future__ import annotations

from engine.methods.base import METHODS, Method


@METHODS.register("multitask")
class Multitask(Method):
    def schedule(self, num_tasks: int, steps_per_task: int) -> list[tuple[list[int], int]]:
        return [(list(range(num_tasks)), steps_per_task * num_tasks)]
