"""Split CIFAR-100 of SupSup's GG experiments (spec §9.2): 20 tasks of 5 classes, task-local labels.

The class order is the reference's `RandSplitCIFAR100` draw: `np.random.seed(seed);
np.random.permutation(100)`, taken here as `np.random.RandomState(seed).permutation(100)` (the same
numbers, without touching NumPy's global RNG), with `seed` = the run seed, or `class_order_seed`
when that is >= 0. Task i holds the classes order[5i : 5i + 5]; an image's label is its class's
place in that slice (0–4). Train = all of a class's official training images (capped by
`train_per_class`), test = its official test images. All tasks share the same 5 output units (the
network has `classes_per_task` outputs; SupSup tells the tasks apart by their masks and BN). A
task's name is its classes' numbers, e.g. "26/86/2/55/75"; the names are in the benchmark info.

Images stay uint8 [N, 3, 32, 32] on the device and are normalised when read with the reference's
mean (0.491, 0.482, 0.447) and std (0.247, 0.243, 0.262). Training batches are augmented by the
loop (`Benchmark.augment`, from the run's "augment" stream): torchvision's RandomCrop(32, padding=4)
with zero padding then RandomHorizontalFlip, done on the device by `augment_crop_flip`, which pads
with the normalised value of black so that the result equals padding the raw image with zeros.
The CIFAR-100 source (data root, MD5, one-line errors) is engine/data/cifar100.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from engine.benchmarks.base import Benchmark, InputSpec
from engine.benchmarks.incremental_cifar100 import CifarStage, split_per_class
from engine.data.augment import augment_crop_flip
from engine.data.cifar100 import OFFICIAL_MD5, load_cifar100
from engine.errors import ConfigError, DataError
from engine.registry import BENCHMARKS
from engine.schema import check_all_or_count, opt

MEAN = (0.491, 0.482, 0.447)
STD = (0.247, 0.243, 0.262)


@dataclass(frozen=True)
class SplitCifar100Options:
    """CIFAR-100 cut into tasks of a few classes each (a seeded class permutation), labels local to the task."""

    num_tasks: int = opt(20, "tasks; num_tasks × classes_per_task <= 100")
    classes_per_task: int = opt(5, "classes per task (also the number of output units: every task uses all of them)")
    class_order_seed: int = opt(-1, "seed of the class permutation, np.random.RandomState(seed).permutation(100); -1 = the run seed (the reference: np.random.seed(args.seed))")
    train_per_class: int = opt(-1, "cap on training images per class (-1 = all 500)")
    test_per_class: int = opt(-1, "cap on test images per class (-1 = all 100)")
    augment: bool = opt(True, "augment training batches: zero-padded random crop 32/4, then horizontal flip p=0.5")
    archive_md5: str = opt(OFFICIAL_MD5, "MD5 the archive must have: the official one, or a generated test archive's")

    def __post_init__(self) -> None:
        if self.num_tasks < 1 or self.classes_per_task < 1:
            raise ValueError("num_tasks and classes_per_task must be >= 1")
        if self.num_tasks * self.classes_per_task > 100:
            raise ValueError(f"num_tasks × classes_per_task = {self.num_tasks * self.classes_per_task} is more "
                             "than CIFAR-100's 100 classes")
        if not -1 <= self.class_order_seed < 2**32:
            raise ValueError(f"class_order_seed = {self.class_order_seed!r} must be -1 (the run seed) or 0 to 2^32 - 1")
        check_all_or_count(self, "train_per_class", "test_per_class")


def class_order(seed: int) -> np.ndarray:
    """The reference's permutation of the 100 classes for `seed` (= np.random.seed(seed); np.random.permutation(100))."""
    if not 0 <= seed < 2**32:
        raise ConfigError(f"split_cifar100 draws its class order with np.random.seed(seed), which takes 0 to 2^32 - 1; "
                          f"the run seed {seed} is outside: set benchmark.class_order_seed")
    return np.random.RandomState(seed).permutation(100)


@BENCHMARKS.register(SplitCifar100Options)
def build_split_cifar100(opts: SplitCifar100Options, device: torch.device, data_dir: Path, seed: int) -> Benchmark:
    order = class_order(seed if opts.class_order_seed < 0 else opts.class_order_seed)
    a = load_cifar100(data_dir, expected_md5=opts.archive_md5)
    k = opts.classes_per_task
    used = order[: k * opts.num_tasks]
    train_parts = split_per_class(a.y_train, used, 0, opts.train_per_class)
    test_parts = split_per_class(a.y_test, used, 0, opts.test_per_class)
    for c in used.tolist():
        if len(train_parts[c][1]) == 0 or len(test_parts[c][1]) == 0:
            raise DataError(f"CIFAR-100 class {c} has {int((a.y_train == c).sum())} training and "
                            f"{int((a.y_test == c).sum())} test images; every class of a task needs both")
    images = {"train": torch.from_numpy(a.x_train).to(device), "test": torch.from_numpy(a.x_test).to(device)}
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    tasks = []
    for t in range(opts.num_tasks):
        classes = used[k * t : k * (t + 1)].tolist()
        index, labels = {}, {}
        for split, parts in (("train", train_parts), ("test", test_parts)):
            ids = [parts[c][1] for c in classes]
            index[split] = torch.from_numpy(np.concatenate(ids)).to(device)
            labels[split] = torch.from_numpy(np.concatenate([np.full(len(i), j) for j, i in enumerate(ids)])).to(device)
        tasks.append(CifarStage("/".join(map(str, classes)), images, index, labels, mean, std))
    cols = torch.arange(k, device=device).repeat(opts.num_tasks, 1)
    class_map = torch.from_numpy(used.reshape(opts.num_tasks, k).copy()).to(device)
    black = (-torch.tensor(MEAN) / torch.tensor(STD)).to(device)  # a zero pixel after normalisation
    info = {"class_order": order.tolist(), "classes_per_task": k,
            "class_names": [a.class_names[c] for c in order.tolist()]}
    return Benchmark(tasks, cols, InputSpec((3, 32, 32), k), f"CIFAR-100 python archive in {data_dir}", info,
                     class_map=class_map, augment=partial(augment_crop_flip, fill=black) if opts.augment else None)
