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


@BENCHMARK_OPTIONS.register("ssmnist")
@dataclass(frozen=True)
class SsmnistOptions:
    """Split Sequential Stroke-MNIST (Ehret et al. 2021; spec §1): m pen-stroke digits per sequence."""

    m: int = opt(1, "digits per sequence (--ssmnist_seq_len); sequences are up to ~117·m steps")
    two_classes: bool = opt(True, "label = 'pattern in the task's random half' (2 classes); False = the 2^m patterns")
    num_tasks: int = opt(5, "digit-pair tasks: (0,1), (2,3), ... up to 5; more shuffle the 45 pairs (the reference default is 45)")
    data_random_seed: int = opt(42, "seed of the task family (pairs, partitions, samples), independent of the run seed")
    source: Literal["derived", "official"] = opt("derived", "'official' = de Jong's stroke archive; 'derived' = strokes traced here from MNIST images")
    source_path: str = opt("", "official only: path of sequences.tar.gz or sequences/ ('' = look in <data root>/stroke_mnist, else download)")
    n_train: int = opt(12000, "training sequences per task")
    n_test: int = opt(2000, "test sequences per task")
    n_val: int = opt(1000, "validation sequences per task (drawn last, so they never change train/test)")
    input_task_identity: bool = opt(False, "append the one-hot task id to every step's input (4 → 4+T features)")
    heads: Literal["multi", "single"] = opt("multi", "'multi' = one head per task; 'single' = one head shared by all tasks (from-scratch runs)")

    def __post_init__(self) -> None:
        if not 1 <= self.m <= 10:
            raise ValueError("m must be between 1 and 10")
        if not 1 <= self.num_tasks <= 45:
            raise ValueError("num_tasks must be between 1 and 45")
        if self.n_train < 1 or self.n_test < 1 or self.n_val < 0:
            raise ValueError("n_train and n_test must be positive and n_val >= 0")
