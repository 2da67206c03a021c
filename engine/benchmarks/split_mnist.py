"""Split-MNIST: 5 tasks of 2 digits, (0,1), (2,3), ... or a chosen order, task-, domain- or class-incremental.

`task_order` (e.g. [[1,2],[3,4],[5,6],[7,8],[9,0]], the §11 forgetting study's order) picks the
digit pairs and their order; empty = the classic pairs (0,1), (2,3), ..., whose data, labels and
task names are exactly those of every earlier version. Within a pair the first digit is label 0 in
the task and domain scenarios; class-incremental keeps the digit itself as the label, and there a
task may hold any number of digits (e.g. [[1,2,3,4,5,6,7,8,9,0]]: one task of all ten, joint
training on one shuffled set, so BatchNorm sees every class in each batch; the multitask method
instead forwards each task's share of a mixed batch separately).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from engine.benchmarks.base import Benchmark, ImageTask, InputSpec, heads
from engine.benchmarks.mnist_source import mnist_arrays
from engine.registry import BENCHMARKS
from engine.schema import check_all_or_count, opt


@dataclass(frozen=True)
class SplitMnistOptions:
    """Split-MNIST: digit pairs (0,1), (2,3), ... as tasks."""

    data: Literal["full", "embedded"] = opt("full", "'full' = the official MNIST files; 'embedded' = the subset shipped with cltui")
    scenario: Literal["task", "domain", "class"] = opt("task", "'task' = one 2-unit head per task; 'domain' = one shared 2-unit head; 'class' = one 10-way head over all digits")
    num_tasks: int = opt(5, "number of digit pairs, (0,1), (2,3), ... (1 to 5); with task_order, its first num_tasks tasks")
    train_per_task: int = opt(-1, "cap on training images per task (-1 = all)")
    task_order: list[list[int]] = opt([], "digits of each task in training order, e.g. [[1,2],[3,4],[5,6],[7,8],[9,0]]: pairs, or any non-empty groups in the 'class' scenario; empty = (0,1), (2,3), ...")  # noqa: RUF009 (opt copies lists per instance)

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "benchmark." in front.
        if not self.task_order and not 1 <= self.num_tasks <= 5:
            raise ValueError(f"num_tasks = {self.num_tasks!r} must be between 1 and 5")
        check_all_or_count(self, "train_per_task")
        if self.task_order:
            order = self.task_order
            if self.scenario != "class" and any(len(group) != 2 for group in order):
                raise ValueError(f"task_order = {order!r}: with scenario = {self.scenario!r} every task is a pair "
                                 "of digits, e.g. [1, 2] (any group of digits needs scenario = 'class')")
            if any(not group for group in order):
                raise ValueError(f"task_order = {order!r}: a task without digits")
            digits = [d for group in order for d in group]
            if any(not 0 <= d <= 9 for d in digits):
                raise ValueError(f"task_order = {order!r}: digits are 0 to 9")
            if len(set(digits)) != len(digits):
                raise ValueError(f"task_order = {order!r}: a digit appears twice; tasks must not share digits")
            if not 1 <= self.num_tasks <= len(order):
                raise ValueError(f"task_order = {order!r} has {len(order)} task(s) but num_tasks = {self.num_tasks!r}; "
                                 f"set num_tasks between 1 and {len(order)}")

    def groups(self) -> list[list[int]]:
        """The digits of each task, in training order."""
        if self.task_order:
            return [list(group) for group in self.task_order[: self.num_tasks]]
        return [[2 * t, 2 * t + 1] for t in range(self.num_tasks)]


@BENCHMARKS.register(SplitMnistOptions)
def build_split_mnist(opts: SplitMnistOptions, device: torch.device, data_dir: Path, seed: int) -> Benchmark:
    m, source = mnist_arrays(opts.data, data_dir)
    images = {
        "train": torch.from_numpy(m.x_train.reshape(len(m.x_train), -1).copy()).to(device),
        "test": torch.from_numpy(m.x_test.reshape(len(m.x_test), -1).copy()).to(device),
    }
    labels_np = {"train": m.y_train, "test": m.y_test}
    tasks = []
    groups = opts.groups()
    for digits in groups:
        index, labels = {}, {}
        for split, y in labels_np.items():
            ids = np.flatnonzero(np.isin(y, digits))  # = (y == a) | (y == b) for a pair
            if split == "train" and opts.train_per_task > 0:
                ids = ids[: opts.train_per_task]
            # Class-incremental keeps the digit as label; otherwise the label is the place in the pair.
            lab = y[ids] if opts.scenario == "class" else (y[ids] == digits[1]).astype(np.int64)
            index[split] = torch.from_numpy(ids).to(device)
            labels[split] = torch.from_numpy(lab.astype(np.int64)).to(device)
        tasks.append(ImageTask("/".join(map(str, digits)), images, index, labels))
    cols, n_out = heads(opts.scenario, opts.num_tasks, 2, 10, device)
    # Global class (the digit) of each task's labels: class-IL labels are the digits already.
    class_map = cols.clone() if opts.scenario == "class" else torch.tensor(groups, device=device)
    return Benchmark(tasks, cols, InputSpec((784,), n_out), source, {"scenario": opts.scenario},
                     class_map=class_map)
