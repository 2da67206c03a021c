"""From scratch: a freshly initialised network for every task (no transfer, no forgetting of its own task).

The network is re-initialised from the continuing torch RNG before each task after the first.
"During" accuracy is each fresh network on its own task; "final" is the last network on all
tasks, which is not a meaningful CL number (the reference says so too).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.methods.base import Method
from engine.registry import METHODS


@dataclass(frozen=True)
class ScratchOptions:
    """A freshly initialised network for every task; no options."""


@METHODS.register(ScratchOptions)
class Scratch(Method):
    def before_phase(self, phase: int, tasks: list[int]) -> None:
        if phase > 0:
            self.model.reset_parameters()
