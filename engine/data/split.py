"""A validation split held out of each task's training set, so no benchmark needs to know about it.

`hold_out_validation` wraps every task in a `HeldOutTask`: its "train" split is what remains after
removing the held-out indices, its "val" split is the held-out part (read from the underlying
"train" data), "test" is unchanged. Every consumer of "train" (the samplers, EWC's Fisher, coreset
selection) therefore sees only the remaining part: validation samples are never trained on.
The held-out indices are the first k of a permutation drawn from the "split/val" stream, task by
task in order; both parts are kept sorted so a task's train order is decided by its sampler alone.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor

from engine.benchmarks.base import Batch, Benchmark, Task
from engine.errors import ConfigError


def val_count(n_train: int, fraction: float, per_task: int) -> int:
    """How many of a task's `n_train` training samples go to validation (fraction rounds up)."""
    k = per_task if per_task > 0 else math.ceil(n_train * fraction)
    if k >= n_train:
        raise ConfigError(f"training.val_fraction/val_per_task: holding out {k} samples leaves no training data "
                          f"in a task of {n_train}; choose a smaller validation split")
    return k


class HeldOutTask:
    """A task whose training set is split into "train" (what remains) and "val" (held out)."""

    def __init__(self, inner: Task, train_idx: Tensor, val_idx: Tensor) -> None:
        self.inner = inner
        self.name = inner.name
        self._parts = {"train": train_idx, "val": val_idx}
        # Host copies: host batch indices (the samplers') map to host indices, so the inner task
        # still sees host indices and needs no device sync (engine/data/sampler.py).
        self._host = {k: v.cpu() for k, v in self._parts.items()}

    def size(self, split: str) -> int:
        part = self._parts.get(split)
        return self.inner.size(split) if part is None else int(part.numel())

    def get(self, split: str, idx: Tensor) -> Batch:
        part = self._parts.get(split)
        if part is None:
            return self.inner.get(split, idx)
        if idx.device.type == "cpu":
            return self.inner.get("train", self._host[split][idx])
        return self.inner.get("train", part[idx.to(part.device)])


def hold_out_validation(bench: Benchmark, fraction: float, per_task: int, gen: torch.Generator,
                        device: torch.device) -> Benchmark:
    """`bench` with every task split into train/val; the same benchmark when neither option is set
    or when its tasks bring their own "val" split (`Benchmark.own_val`)."""
    if (fraction <= 0 and per_task <= 0) or bench.own_val:
        return bench
    tasks: list[Task] = []
    for task in bench.tasks:
        n = task.size("train")
        perm = torch.randperm(n, generator=gen)
        k = val_count(n, fraction, per_task)
        val, train = perm[:k].sort().values, perm[k:].sort().values
        tasks.append(HeldOutTask(task, train.to(device), val.to(device)))
    return replace(bench, tasks=tasks)
