"""Divergence: the first non-finite training loss, found without a host sync per step.

The loop hands every step's loss (task loss + penalty, a 0-d tensor on the device) to
`DivergenceWatch.add`, which only keeps a reference: no `.item()`, no comparison on the host. The
loop reads the window back (`check`) where it syncs anyway: at log steps (`training.log_every`),
at each phase's last step and before any checkpoint, so a diverged state is never checkpointed.
One `torch.cat` of at most log_every scalars then gives the exact first non-finite step, its loss,
and the last finite loss before it. Per step this costs one detached reference (the sum with the
penalty is already computed), cheaper than updating on-device flags with `torch.where` (4-6 tiny
kernels a step).

The last finite loss carries over from window to window and is part of the loop's checkpoint
state, so a resumed run reports the same values as an uninterrupted one.

Imports torch; the store and the UIs see only the `RunDiverged` event (engine/events.py).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from engine.events import RunDiverged

FOLD = 1024
"""Window length at which the kept losses are joined into one tensor."""


class DivergenceWatch:
    """The losses since the last check, and the last finite loss before them."""

    def __init__(self) -> None:
        self._first = 0  # global step of the first loss in the window
        self._window: list[Tensor] = []
        self.last_finite_step = 0  # 0 = no finite loss seen yet (steps are 1-based)
        self.last_finite_loss = math.nan

    def add(self, step: int, loss: Tensor) -> None:
        """Remember step `step`'s loss (a 0-d tensor; steps arrive consecutively)."""
        if not self._window:
            self._first = step
        self._window.append(loss.detach().reshape(1))  # a view: no copy, no sync
        if len(self._window) >= FOLD:  # a huge log_every: keep one tensor, not thousands (still no sync)
            self._window = [torch.cat(self._window)]

    def check(self) -> RunDiverged | None:
        """Read the window back (one host sync): the first non-finite loss in it, else None."""
        if not self._window:
            return None
        losses = torch.cat(self._window).double().cpu()
        self._window = []
        finite = torch.isfinite(losses)
        bad = (~finite).nonzero()
        n = int(bad[0, 0]) if bad.numel() else len(losses)  # losses before the first bad one are finite
        if n > 0:
            self.last_finite_step, self.last_finite_loss = self._first + n - 1, float(losses[n - 1])
        if not bad.numel():
            return None
        return RunDiverged(self._first + n, float(losses[n]), self.last_finite_step, self.last_finite_loss)

    def state_dict(self) -> dict[str, Any]:
        """Call after `check()` (the loop checks before every checkpoint), so the window is empty."""
        return {"last_finite_step": self.last_finite_step, "last_finite_loss": self.last_finite_loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._window = []
        self.last_finite_step = int(state["last_finite_step"])
        self.last_finite_loss = float(state["last_finite_loss"])
