"""Hyperparameter dataclasses of every benchmark, registered by benchmark name.

Torch-free, so the UI can validate presets without loading torch; the implementations in this
package take these as their options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.registry import Registry
from engine.schema import opt

BENCHMARK_OPTIONS: Registry[type] = Registry("benchmark")

Scenario = Literal["task", "domain", "class"]


@BENCHMARK_OPTIONS.register("split_mnist")
@dataclass(frozen=True)
class SplitMnistOptions:
    data: Literal["full", "embedded"] = opt("full", "'full' = the official MNIST files; 'embedded' = the subset shipped with cltui")
    scenario: Scenario = opt("task", "'task' = one 2-unit head per task; 'domain' = one shared 2-unit head; 'class' = one 10-way head over all digits")
    num_tasks: int = opt(5, "number of digit pairs, (0,1), (2,3), ... (1 to 5)")
    train_per_task: int = opt(-1, "cap on training images per task (-1 = all)")

    def __post_init__(self) -> None:
        if not 1 <= self.num_tasks <= 5:
            raise ValueError("num_tasks must be between 1 and 5")


@BENCHMARK_OPTIONS.register("permuted_mnist")
@dataclass(frozen=True)
class PermutedMnistOptions:
    data: Literal["full", "embedded"] = opt("full", "'full' = the official MNIST files; 'embedded' = the subset shipped with cltui")
    scenario: Literal["task", "domain"] = opt("domain", "'domain' = one shared 10-way head; 'task' = one 10-way head per task")
    num_tasks: int = opt(10, "number of permutations")
    permute_first: bool = opt(True, "also permute task 0 (False keeps the original images for task 0)")
    permutation_seed: int = opt(0, "seed of the pixel permutations, independent of the run seed")
    train_per_task: int = opt(-1, "cap on training images per task (-1 = all)")

    def __post_init__(self) -> None:
        if self.num_tasks < 1:
            raise ValueError("num_tasks must be at least 1")
