"""Permuted-MNIST: every task is all of MNIST under its own fixed pixel permutation.

Images are stored once (uint8) and permuted per batch by an index gather, so 250 tasks cost 250
permutations (784 ints each), not 250 copies of MNIST. Two ways to draw the permutations:
'sequential' (the default, unchanged): one RandomState(permutation_seed) draws task after task;
'per_task' (SupSup, §9.3): task i's is `np.random.seed(i + permutation_seed); np.random.permutation(784)`,
drawn here with RandomState(i + permutation_seed), which yields the same numbers without touching
NumPy's global RNG (tests/test_supsup.py checks the equality). `normalize` = (x - 0.1307) / 0.3081
after scaling to [0, 1] (torchvision's MNIST normalisation, which SupSup uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from engine.benchmarks.base import Batch, Benchmark, ImageTask, InputSpec, heads
from engine.benchmarks.mnist_source import mnist_arrays
from engine.registry import BENCHMARKS
from engine.schema import check_all_or_count, opt


@dataclass(frozen=True)
class PermutedMnistOptions:
    """Permuted-MNIST: all of MNIST under one fixed pixel permutation per task."""

    data: Literal["full", "embedded"] = opt("full", "'full' = the official MNIST files; 'embedded' = the subset shipped with cltui")
    scenario: Literal["task", "domain"] = opt("domain", "'domain' = one shared 10-way head; 'task' = one 10-way head per task")
    num_tasks: int = opt(10, "number of permutations")
    permute_first: bool = opt(True, "also permute task 0 (False keeps the original images for task 0)")
    permutation_seed: int = opt(0, "seed of the pixel permutations, independent of the run seed")
    train_per_task: int = opt(-1, "cap on training images per task (-1 = all)")
    permutations: Literal["sequential", "per_task"] = opt("sequential", "'sequential' = one RandomState(permutation_seed) draws every task's permutation in turn; 'per_task' = task i's comes from seed i + permutation_seed (SupSup)")
    normalize: bool = opt(False, "standardise pixels with MNIST's mean 0.1307 and std 0.3081 (SupSup); False = pixels in [0, 1]")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "benchmark." in front.
        if not 1 <= self.num_tasks <= 1000:  # a task is a permutation (784 ints) and a 10-way head
            raise ValueError(f"num_tasks = {self.num_tasks!r} must be 1 to 1000")
        if not 0 <= self.permutation_seed < 2**32:  # numpy.random.RandomState's range
            raise ValueError(f"permutation_seed = {self.permutation_seed!r} must be 0 to 2^32 - 1")
        if self.permutations == "per_task" and self.permutation_seed + self.num_tasks > 2**32:
            raise ValueError(f"permutation_seed = {self.permutation_seed!r}: with permutations = 'per_task' the last "
                             f"task's seed, permutation_seed + {self.num_tasks - 1}, must stay below 2^32")
        check_all_or_count(self, "train_per_task")


class NormalizedImageTask(ImageTask):
    """An ImageTask whose pixels are standardised with MNIST's mean and std (after scaling to [0, 1])."""

    MEAN, STD = 0.1307, 0.3081

    def get(self, split: str, idx: Tensor) -> Batch:
        b = super().get(split, idx)
        return Batch(b.x.sub_(self.MEAN).div_(self.STD), b.y, b.lengths)


@BENCHMARKS.register(PermutedMnistOptions)
def build_permuted_mnist(opts: PermutedMnistOptions, device: torch.device, data_dir: Path, seed: int) -> Benchmark:
    m, source = mnist_arrays(opts.data, data_dir)
    images = {
        "train": torch.from_numpy(m.x_train.reshape(len(m.x_train), -1).copy()).to(device),
        "test": torch.from_numpy(m.x_test.reshape(len(m.x_test), -1).copy()).to(device),
    }
    n_train = len(m.x_train) if opts.train_per_task < 0 else min(opts.train_per_task, len(m.x_train))
    index = {"train": torch.arange(n_train, device=device), "test": torch.arange(len(m.x_test), device=device)}
    labels = {"train": torch.from_numpy(m.y_train[:n_train]).to(device), "test": torch.from_numpy(m.y_test).to(device)}
    # Permutations depend only on permutation_seed, so every run seed sees the same task sequence.
    rs = np.random.RandomState(opts.permutation_seed)
    tasks: list[ImageTask] = []
    for t in range(opts.num_tasks):
        if opts.permutations == "sequential":
            perm = rs.permutation(784)
        else:
            perm = np.random.RandomState(t + opts.permutation_seed).permutation(784)
        if t == 0 and not opts.permute_first:
            perm = np.arange(784)
        task_cls = NormalizedImageTask if opts.normalize else ImageTask
        tasks.append(task_cls(f"perm{t}", images, index, labels, torch.from_numpy(perm).to(device)))
    cols, n_out = heads(opts.scenario, opts.num_tasks, 10, 10, device)
    # Every task's labels are the digits (global classes 0..9), whatever the head layout.
    class_map = torch.arange(10, device=device).repeat(opts.num_tasks, 1)
    return Benchmark(tasks, cols, InputSpec((784,), n_out), source, {"scenario": opts.scenario},
                     class_map=class_map)
