"""Incremental CIFAR-100 of the loss-of-plasticity reference (spec §10.1): classes arrive 5 at a time.

Stage k (a task of the loop, one per phase) trains on every class seen so far: the first
`classes_per_stage × (k + 1)` classes of a seeded permutation of the 100 classes (`class_order`,
stored in the run record's benchmark info). Its head is those classes' output units in that order
(the network keeps all 100 outputs from the start; the logits are sliced), and its labels are each
image's class's place in `class_order`, i.e. indices within the active set. Heads are ragged
(`Benchmark.head_sizes`).

Per class, the first `val_per_class` (50) training images in file order are the validation split
and the rest (450) are trained on; test = the official test images of the active classes. A run
turns validation on with any nonzero `training.val_per_task` (the split is this one, not a random
hold-out: `Benchmark.own_val`). Images stay uint8 [N, 3, 32, 32] on the device; a batch is
normalised (mean/std of the reference) when read, and training batches are augmented by the loop
through `Benchmark.augment` (engine/data/augment.py) from the run's "augment" stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from engine.benchmarks.base import Batch, Benchmark, InputSpec
from engine.data.augment import augment_cifar
from engine.data.cifar100 import OFFICIAL_MD5, load_cifar100
from engine.errors import DataError
from engine.registry import BENCHMARKS
from engine.rng import stream_seed
from engine.schema import check_all_or_count, opt

MEAN = (0.5071, 0.4865, 0.4409)
STD = (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class IncrementalCifar100Options:
    """CIFAR-100 with classes added a few at a time; every stage trains on all classes seen so far."""

    classes_per_stage: int = opt(5, "classes added at each stage (the first stage has this many too)")
    num_stages: int = opt(20, "stages (tasks); classes_per_stage × num_stages <= 100")
    val_per_class: int = opt(50, "the first N training images of each class are validation, the rest are trained on")
    train_per_class: int = opt(-1, "cap on training images per class after the validation ones (-1 = all)")
    test_per_class: int = opt(-1, "cap on test images per class (-1 = all)")
    augment: bool = opt(True, "augment training batches: flip p=0.5, reflect-padded random crop 32/4, rotation 0-15°")
    archive_md5: str = opt(OFFICIAL_MD5, "MD5 the archive must have: the official one, or a generated test archive's")

    def __post_init__(self) -> None:
        if self.classes_per_stage < 1 or self.num_stages < 1:
            raise ValueError("classes_per_stage and num_stages must be >= 1")
        if self.classes_per_stage * self.num_stages > 100:
            raise ValueError(f"classes_per_stage × num_stages = {self.classes_per_stage * self.num_stages} "
                             "is more than CIFAR-100's 100 classes")
        if self.val_per_class < 0:
            raise ValueError(f"val_per_class = {self.val_per_class!r} must be >= 0")
        check_all_or_count(self, "train_per_class", "test_per_class")


class CifarStage:
    """One stage: index sets into the shared uint8 images, labels = place in the class order."""

    def __init__(self, name: str, images: dict[str, Tensor], index: dict[str, Tensor], labels: dict[str, Tensor],
                 mean: Tensor, std: Tensor) -> None:
        self.name = name
        self._images, self._index, self._labels = images, index, labels
        self._mean, self._std = mean, std

    def size(self, split: str) -> int:
        return int(self._index[split].shape[0])

    def get(self, split: str, idx: Tensor) -> Batch:
        src = "test" if split == "test" else "train"  # validation images are training-file images
        x = self._images[src][self._index[split][idx]].float().div_(255.0)
        return Batch(x.sub_(self._mean).div_(self._std), self._labels[split][idx])


def class_order(seed: int) -> np.ndarray:
    """The seeded permutation of the 100 classes (its own stream: nothing else shifts it)."""
    return np.random.default_rng(stream_seed(seed, "benchmark/class_order")).permutation(100)


def split_per_class(labels: np.ndarray, classes: np.ndarray, first: int, cap: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """class → (its first `first` image indices in file order, the next `cap` ones (-1 = all))."""
    out = {}
    for c in classes.tolist():
        ids = np.flatnonzero(labels == c)
        rest = ids[first:] if cap < 0 else ids[first : first + cap]
        out[c] = (ids[:first], rest)
    return out


@BENCHMARKS.register(IncrementalCifar100Options)
def build_incremental_cifar100(opts: IncrementalCifar100Options, device: torch.device, data_dir: Path,
                               seed: int) -> Benchmark:
    a = load_cifar100(data_dir, expected_md5=opts.archive_md5)
    order = class_order(seed)
    used = order[: opts.classes_per_stage * opts.num_stages]
    train_parts = split_per_class(a.y_train, used, opts.val_per_class, opts.train_per_class)
    test_parts = split_per_class(a.y_test, used, 0, opts.test_per_class)
    for c in used.tolist():
        if len(train_parts[c][1]) == 0 or (opts.val_per_class > 0 and len(train_parts[c][0]) < opts.val_per_class):
            raise DataError(f"CIFAR-100 class {c} has {int((a.y_train == c).sum())} training images: too few for "
                            f"val_per_class = {opts.val_per_class} plus training images")
    images = {"train": torch.from_numpy(a.x_train).to(device), "test": torch.from_numpy(a.x_test).to(device)}
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    tasks, sizes = [], []
    for k in range(opts.num_stages):
        active = used[: opts.classes_per_stage * (k + 1)].tolist()
        index, labels = {}, {}
        for split, parts, which in (("train", train_parts, 1), ("val", train_parts, 0), ("test", test_parts, 1)):
            ids = [parts[c][which] for c in active]
            index[split] = torch.from_numpy(np.concatenate(ids)).to(device)
            labels[split] = torch.from_numpy(np.concatenate([np.full(len(i), j) for j, i in enumerate(ids)])).to(device)
        tasks.append(CifarStage(f"{len(active)} classes", images, index, labels, mean, std))
        sizes.append(len(active))
    # Row k: the output units of stage k's classes, padded to the last stage's width (head_sizes cuts).
    width = sizes[-1]
    cols = torch.tensor([used[:width].tolist()] * opts.num_stages, device=device)
    info = {"class_order": order.tolist(), "classes_per_stage": opts.classes_per_stage,
            "class_names": [a.class_names[c] for c in order.tolist()]}
    return Benchmark(tasks, cols, InputSpec((3, 32, 32), 100), f"CIFAR-100 python archive in {data_dir}", info,
                     head_sizes=sizes, own_val=True, cumulative=True, augment=augment_cifar if opts.augment else None)
