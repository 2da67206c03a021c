"""Batch sampling by index: each task's training set is swept in a shuffled order, reshuffled every epoch.

No DataLoader and no per-sample Python: a batch is a slice of a permutation, used to index the
tensors already on the device. The state (permutation, cursor, generator) is part of checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class EpochSampler:
    """Without replacement inside an epoch; a batch crossing the epoch end continues in a new order."""

    def __init__(self, n: int, seed: int, device: torch.device) -> None:
        self.n = n
        self.device = device
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.gen)
        self.cursor = 0

    def next(self, batch_size: int) -> Tensor:
        parts, need = [], batch_size
        while need > 0:
            if self.cursor >= self.n:
                self.perm = torch.randperm(self.n, generator=self.gen)
                self.cursor = 0
            take = min(need, self.n - self.cursor)
            parts.append(self.perm[self.cursor : self.cursor + take])
            self.cursor += take
            need -= take
        idx = parts[0] if len(parts) == 1 else torch.cat(parts)
        return idx.to(self.device, non_blocking=True)

    def reshuffle(self) -> None:
        """Start a fresh epoch now (EWC's Fisher and coresets read 'a freshly shuffled order')."""
        self.perm = torch.randperm(self.n, generator=self.gen)
        self.cursor = 0

    def state_dict(self) -> dict[str, Any]:
        return {"perm": self.perm.clone(), "cursor": self.cursor, "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.perm = state["perm"].clone()
        self.cursor = int(state["cursor"])
        self.gen.set_state(state["gen"])
