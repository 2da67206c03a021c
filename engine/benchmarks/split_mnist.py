"""Split-MNIST: 5 tasks of 2 digits, (0,1), (2,3), ..., task-, domain- or class-incremental."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from engine.benchmarks.base import Benchmark, ImageTask, InputSpec, heads
from engine.benchmarks.mnist_source import mnist_arrays
from engine.registry import BENCHMARKS
from engine.schema import opt


@dataclass(frozen=True)
class SplitMnistOptions:
    """Split-MNIST: digit pairs (0,1), (2,3), ... as tasks."""

    data: Literal["full", "embedded"] = opt("full", "'full' = the official MNIST files; 'embedded' = the subset shipped with cltui")
    scenario: Literal["task", "domain", "class"] = opt("task", "'task' = one 2-unit head per task; 'domain' = one shared 2-unit head; 'class' = one 10-way head over all digits")
    num_tasks: int = opt(5, "number of digit pairs, (0,1), (2,3), ... (1 to 5)")
    train_per_task: int = opt(-1, "cap on training images per task (-1 = all)")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "benchmark." in front.
        if not 1 <= self.num_tasks <= 5:
            raise ValueError(f"num_tasks = {self.num_tasks!r} must be between 1 and 5")
        if self.train_per_task == 0 or self.train_per_task < -1:
            raise ValueError(f"train_per_task = {self.train_per_task!r} must be -1 (all) or >= 1")


@BENCHMARKS.register(SplitMnistOptions)
def build_split_mnist(opts: SplitMnistOptions, device: torch.device, data_dir: Path, seed: int) -> Benchmark:
    m, source = mnist_arrays(opts.data, data_dir)
    images = {
        "train": torch.from_numpy(m.x_train.reshape(len(m.x_train), -1).copy()).to(device),
        "test": torch.from_numpy(m.x_test.reshape(len(m.x_test), -1).copy()).to(device),
    }
    labels_np = {"train": m.y_train, "test": m.y_test}
    tasks, pairs = [], []
    for t in range(opts.num_tasks):
        a, b = 2 * t, 2 * t + 1
        pairs.append([a, b])
        index, labels = {}, {}
        for split, y in labels_np.items():
            ids = np.flatnonzero((y == a) | (y == b))
            if split == "train" and opts.train_per_task > 0:
                ids = ids[: opts.train_per_task]
            # Class-incremental keeps the digit as label; otherwise the label is the place in the pair.
            lab = y[ids] if opts.scenario == "class" else (y[ids] == b).astype(np.int64)
            index[split] = torch.from_numpy(ids).to(device)
            labels[split] = torch.from_numpy(lab.astype(np.int64)).to(device)
        tasks.append(ImageTask(f"{a}/{b}", images, index, labels))
    cols, n_out = heads(opts.scenario, opts.num_tasks, 2, 10, device)
    # Global class (the digit) of each task's labels: class-IL labels are the digits already.
    class_map = cols.clone() if opts.scenario == "class" else torch.tensor(pairs, device=device)
    return Benchmark(tasks, cols, InputSpec((784,), n_out), source, {"scenario": opts.scenario}, class_map)
