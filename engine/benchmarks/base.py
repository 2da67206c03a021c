"""The benchmark interface: a sequence of tasks whose data sits on the device, read by index.

A benchmark is a builder function `(options, device, data_dir, seed) -> Benchmark`, registered with
`@BENCHMARKS.register(XOptions)` (engine.registry) in its own module next to its options dataclass.

A benchmark also fixes the output layout: `head_columns[t]` lists the output units of task t's
head (multi-head task-incremental: disjoint pairs; domain-incremental: the same units for every
task; class-incremental: all classes). Labels are indices into the task's head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Batch:
    """One batch on the device: inputs, labels (index into the task's head) and sequence lengths."""

    x: Tensor
    y: Tensor
    lengths: Tensor | None = None


class Task(Protocol):
    name: str

    def size(self, split: str) -> int: ...

    def get(self, split: str, idx: Tensor) -> Batch:
        """The samples `idx` (host or device indices; host ones are copied over without blocking)."""
        ...


@dataclass(frozen=True)
class InputSpec:
    """What a model needs to know about the inputs and outputs."""

    input_shape: tuple[int, ...]
    """Shape of one sample without batch (for sequences: (max_len, features))."""
    n_outputs: int
    sequential: bool = False


@dataclass
class Benchmark:
    tasks: Sequence[Task]
    """Read-only to the engine; a Sequence so a list of a concrete task class (ImageTask) fits."""
    head_columns: Tensor
    """Long [T, C] on the device: output units of each task's head."""
    spec: InputSpec
    source: str
    """Which data this run used (stored in the run record)."""
    info: dict[str, Any]
    _: KW_ONLY  # the optional fields below are named at every construction (no positional mix-ups)
    head_sizes: list[int] | None = None
    """Ragged heads: task t's head is the first head_sizes[t] entries of head_columns[t] (the rest is
    padding). None = every row is a whole head. Read heads through `head(t)`."""
    own_val: bool = False
    """The tasks bring their own "val" split (e.g. incremental CIFAR-100's first 50 images per class):
    a nonzero training.val_fraction / val_per_task then only turns validation on (engine/data/split.py)."""
    cumulative: bool = False
    """Task t's data holds every earlier task's (incremental CIFAR-100: stage k = all classes so far), so
    the data seen up to task t is task t's alone (analyses must not pool tasks and count images twice)."""
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
    """Training-batch augmentation (inputs, the run's "augment" stream) → inputs, applied by the loop to
    the batches it trains on only (never to evaluation, validation, or what methods/analyses read)."""
    class_map: Tensor | None = None
    """Long, shaped like `head_columns`: `class_map[t, y]` is the global class (0..C-1, C = max + 1)
    of label y of task t, e.g. the digit of a Split-MNIST pair in every scenario; probes and latent
    maps need it. None: the tasks share no class identity (those analyses refuse to run)."""

    def head(self, task: int) -> Tensor:
        """Output units of task `task`'s head, in label order."""
        cols = self.head_columns[task]
        return cols if self.head_sizes is None else cols[: self.head_sizes[task]]

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]


class ImageTask:
    """A task over a shared uint8 image tensor [N, D]: indices select its images, labels are local.

    Storing uint8 once and converting per batch keeps e.g. 10 Permuted-MNIST tasks at 47 MB instead
    of 1.9 GB of float32 copies; `perm` (optional, [D]) permutes pixels at read time.
    """

    def __init__(self, name: str, images: dict[str, Tensor], index: dict[str, Tensor],
                 labels: dict[str, Tensor], perm: Tensor | None = None) -> None:
        self.name = name
        self._images, self._index, self._labels, self._perm = images, index, labels, perm

    def size(self, split: str) -> int:
        return int(self._index[split].shape[0])

    def get(self, split: str, idx: Tensor) -> Batch:
        idx = idx.to(self._index[split].device, non_blocking=True)
        x = self._images[split][self._index[split][idx]]
        if self._perm is not None:
            x = x[:, self._perm]
        return Batch(x.float().div_(255.0), self._labels[split][idx])


def heads(scenario: str, num_tasks: int, classes_per_task: int, total_classes: int,
          device: torch.device) -> tuple[Tensor, int]:
    """(head_columns [T, C], n_outputs) for a scenario: 'task', 'domain' or 'class'."""
    if scenario == "task":
        cols = torch.arange(num_tasks * classes_per_task).view(num_tasks, classes_per_task)
        return cols.to(device), num_tasks * classes_per_task
    if scenario == "domain":
        return torch.arange(classes_per_task).repeat(num_tasks, 1).to(device), classes_per_task
    if scenario == "class":
        return torch.arange(total_classes).repeat(num_tasks, 1).to(device), total_classes
    raise ValueError(f"unknown scenario {scenario!r}")
