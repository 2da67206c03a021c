"""Helpers the study's analyses share: fixed evaluation subsets, global class labels, parameter names.

Not an analysis itself (nothing registered here, so it is not in `MODULES`). Imports torch;
never textual/typer/rich.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.benchmarks.base import Benchmark, Task

SUBSET_SEED = 4242
"""Base seed of the fixed per-task test subsets: task i draws its order from SUBSET_SEED + i, the
same order the forgetting curves use (engine/analyses/curves.py), so every analysis with the same
`samples` measures the same images, and every seed of a group measures them too."""


def fixed_order(task: Task, index: int, split: str = "test") -> Tensor:
    """A fixed permutation of task `index`'s `split` (CPU), independent of the run's seed."""
    gen = torch.Generator().manual_seed(SUBSET_SEED + index)
    return torch.randperm(task.size(split), generator=gen)


def fixed_subset(task: Task, index: int, samples: int, device: torch.device) -> Tensor:
    """The first `samples` indices of `fixed_order` (all of the split when it is smaller), on `device`."""
    return fixed_order(task, index)[:samples].to(device)


def param_series_name(name: str) -> str:
    """A parameter's name as it appears in series names and columns: '.' → '_' (fc1.weight → fc1_weight).

    Lower-cased too, because series names are lower-case identifiers (engine/series.py).
    """
    return name.replace(".", "_").lower()


def named_params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """`model.named_parameters()` with series-safe names, in the model's order."""
    return [(param_series_name(n), p) for n, p in model.named_parameters()]


def task_classes(bench: Benchmark) -> tuple[list[list[int]], int]:
    """(global class of each local label of each task, C = size of the shared label space).

    A benchmark that knows its tasks' classes states them in `Benchmark.class_map` (the probes read
    the same map; C = its largest class + 1). Otherwise the global class is the output unit the label
    reads, `head_columns[t][y]`, and C = n_outputs: exactly the class for class-incremental
    benchmarks (one head over all classes, labels are the classes) and for domain-incremental ones
    (the shared head's labels); for task-incremental ones it is the unit of the multi-head layer.
    """
    if bench.class_map is not None:
        classes = [[int(c) for c in row] for row in bench.class_map.cpu()]
        return classes, 1 + max(max(row) for row in classes)
    return [row.tolist() for row in bench.head_columns.cpu()], bench.spec.n_outputs


@torch.no_grad()
def split_labels(task: Task, split: str, batch_size: int, device: torch.device) -> Tensor:
    """All local labels of a task's split, read in chunks (`Task` exposes labels only with their inputs)."""
    n = task.size(split)
    parts = [task.get(split, idx).y for idx in torch.split(torch.arange(n, device=device), batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=device)


@torch.no_grad()
def feature_layers(model: nn.Module, bench: Benchmark, device: torch.device) -> list[str]:
    """The keys of `model.features()`, in order, from one test image of the first task (eval mode;
    the model's modes are put back). Models name them in `unit_layers` too, but the series contract
    is the features' keys, so ask the features."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        b = bench.tasks[0].get("test", torch.zeros(1, dtype=torch.long, device=device))
        return list(model.features(b.x, b.lengths))  # type: ignore[operator]
    finally:
        for m, mode in modes:
            m.training = mode
