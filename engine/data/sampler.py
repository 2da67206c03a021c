"""Batch sampling by index: each task's training set is swept in a shuffled order, reshuffled every epoch.

No DataLoader and no per-sample Python: a batch is a slice of a permutation, used to index the
tensors already on the device. The indices stay on the host (pinned memory when the run is on CUDA)
and each task copies them to the device without blocking: a task can then read host-side facts of a
batch (SSMNIST's longest sequence) with no device sync, and a pinned copy costs the GPU nothing. The permutation and cursor are part of checkpoints; the generator is
the run's named stream "sampler/<task>", which the loop's `Streams` saves with every other stream.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class EpochSampler:
    """Without replacement inside an epoch; a batch crossing the epoch end continues in a new order."""

    def __init__(self, n: int, gen: torch.Generator, device: torch.device) -> None:
        self.n = n
        self.device = device
        self.gen = gen
        self.perm = self._pinned(torch.randperm(n, generator=self.gen))
        self.cursor = 0

    def _pinned(self, perm: Tensor) -> Tensor:
        # Pinned host memory lets the task's .to(device, non_blocking=True) overlap with the GPU.
        return perm.pin_memory() if self.device.type == "cuda" else perm

    def next(self, batch_size: int) -> Tensor:
        parts, need = [], batch_size
        while need > 0:
            if self.cursor >= self.n:
                self.perm = self._pinned(torch.randperm(self.n, generator=self.gen))
                self.cursor = 0
            take = min(need, self.n - self.cursor)
            parts.append(self.perm[self.cursor : self.cursor + take])
            self.cursor += take
            need -= take
        # Host indices (see the module doc); every Task.get moves them to its device itself.
        return parts[0] if len(parts) == 1 else self._pinned(torch.cat(parts))

    def reshuffle(self) -> None:
        """Start a fresh epoch now (EWC's Fisher and coresets read 'a freshly shuffled order')."""
        self.perm = self._pinned(torch.randperm(self.n, generator=self.gen))
        self.cursor = 0

    def state_dict(self) -> dict[str, Any]:
        return {"perm": self.perm.clone(), "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.perm = self._pinned(state["perm"].clone())
        self.cursor = int(state["cursor"])
