"""Frozen features of labelled image pools: what the probes and latent analyses read.

A `Pool` is a set of images of one split drawn from several tasks: (task, index) pairs with each
image's *global* class (`Benchmark.class_map`: the digit of a Split-MNIST pair in every scenario).
`ClassLabels` reads every task's labels once and builds pools by task and class; `fixed_subset`
cuts a pool to n images by a permutation that depends only on the pool's size and a salt (never on
the run seed or a random stream: the same images for every seed and every phase, nothing to save in
a checkpoint). `pooled_features` runs the model's `features()` in eval mode over pools of images, in chunks.

These read the model's own features, as `CLModel.features` defines them: a method's masks or
generated weights (masking, HNET) are not applied. Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from engine.analyses.base import ObserverContext, read_only
from engine.errors import ConfigError
from engine.models.base import CLModel


@dataclass(frozen=True)
class Pool:
    """Images of one split of several tasks, in task order: three long tensors of equal length."""

    task: Tensor
    index: Tensor
    """Index into the task's split."""
    label: Tensor
    """Global class of each image."""

    def __len__(self) -> int:
        return int(self.task.numel())

    def take(self, rows: Tensor) -> Pool:
        return Pool(self.task[rows], self.index[rows], self.label[rows])


def model_layers(ctx: ObserverContext) -> dict[str, int]:
    """Layer name → width of `model.features()`, in forward order, from one test image in eval mode
    (read-only: every module's mode and the global RNGs come back as they were)."""
    b = ctx.benchmark.tasks[0].get("test", torch.zeros(1, dtype=torch.long, device=ctx.device))
    with read_only(ctx.model):
        ctx.model.eval()
        feats = cast(CLModel, ctx.model).features(b.x, b.lengths)
    return {name: int(f.reshape(f.shape[0], -1).shape[1]) for name, f in feats.items()}


def check_layers(chosen: list[str], known: dict[str, int], key: str) -> None:
    """ConfigError (one line) naming the unknown layer names in `chosen` and the model's layers."""
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise ConfigError(f"{key}: no layer {', '.join(map(repr, unknown))} in this model; its layers are "
                          f"{', '.join(known)}")


class ClassLabels:
    """Global class labels of every image of every task, per split (read once, on the device)."""

    def __init__(self, ctx: ObserverContext, analysis: str, splits: tuple[str, ...], chunk: int) -> None:
        bench = ctx.benchmark
        if bench.class_map is None:
            raise ConfigError(f"analyses.{analysis} needs global class labels, which this benchmark does not give "
                              f"(split_mnist and permuted_mnist do); turn analyses.{analysis}.enabled off for it")
        cmap = bench.class_map.to(ctx.device)
        self.num_classes = int(cmap.max()) + 1
        self.labels: dict[str, list[Tensor]] = {}
        for split in splits:
            per_task = []
            for t, task in enumerate(bench.tasks):
                ys = [task.get(split, idx).y for idx in torch.split(torch.arange(task.size(split), device=ctx.device), chunk)]
                y = torch.cat(ys) if ys else torch.zeros(0, dtype=torch.long, device=ctx.device)
                per_task.append(cmap[t][y])
            self.labels[split] = per_task
        # Classes of each task (its training labels), to tell seen from unseen classes.
        first = splits[0]
        self.task_classes = [sorted(set(y.tolist())) for y in self.labels[first]]

    def classes_of(self, tasks: list[int]) -> list[int]:
        return sorted({c for t in tasks for c in self.task_classes[t]})

    def pool(self, split: str, tasks: list[int], exclude: list[int] | None = None) -> Pool:
        """All images of `split` of `tasks` (in task order), without those of the classes in `exclude`."""
        device = self.labels[split][0].device
        parts: list[tuple[Tensor, Tensor, Tensor]] = []
        for t in tasks:
            y = self.labels[split][t]
            idx = torch.arange(y.numel(), device=device)
            if exclude:
                keep = ~torch.isin(y, torch.tensor(exclude, device=device))
                idx, y = idx[keep], y[keep]
            parts.append((torch.full_like(idx, t), idx, y))
        if not parts:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return Pool(empty, empty, empty)
        return Pool(*(torch.cat([p[i] for p in parts]) for i in range(3)))


def fixed_subset(pool: Pool, n: int, salt: int) -> Pool:
    """At most `n` images of `pool` (n <= 0: all), chosen by a permutation that depends only on the
    pool's size and `salt`, kept in pool order (task order, so chunks read contiguous indices)."""
    if n <= 0 or len(pool) <= n:
        return pool
    perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(salt))
    rows = perm[:n].sort().values.to(pool.task.device)
    return pool.take(rows)


def layer_features(ctx: ObserverContext, split: str, task: Tensor, index: Tensor,
                   layers: list[str]) -> dict[str, Tensor]:
    """{layer: [n, units]} of the model's features (its own dtype) of images (task[i], index[i]) of
    `split`, in eval mode, in chunks of the evaluation batch size; `task` must be in task order (a
    pool's is). The caller's `read_only` block restores the model's mode."""
    ctx.model.eval()
    out: dict[str, list[Tensor]] = {name: [] for name in layers}
    bench = ctx.benchmark
    # Pools are in task order (one task's rows contiguous), so the chunks come out in pool order.
    for t in dict.fromkeys(task.tolist()):  # distinct, in order of appearance
        idx = index[task == t]
        for chunk in torch.split(idx, ctx.eval_batch_size):
            b = bench.tasks[t].get(split, chunk)
            feats = cast(CLModel, ctx.model).features(b.x, b.lengths)
            for name in layers:
                f = feats[name]
                out[name].append(f.reshape(f.shape[0], -1))
    return {name: torch.cat(parts) if parts else torch.zeros(0, 0, device=ctx.device) for name, parts in out.items()}


def pooled_features(ctx: ObserverContext, split: str, pools: list[Pool],
                    layers: list[str]) -> tuple[dict[str, Tensor], list[Tensor]]:
    """Features of the union of `pools` (each image once, however many pools share it) and, per pool,
    the rows of that union its images are at: pool i's features are `feats[layer][rows[i]]`, gathered
    only when needed (one 60k × 400 float32 layer of MNIST is ~100 MB)."""
    if not any(len(p) for p in pools):
        empty = torch.zeros(0, dtype=torch.long, device=ctx.device)
        return {name: torch.zeros(0, 0, device=ctx.device) for name in layers}, [empty for _ in pools]
    width = 1 + max(int(p.index.max()) for p in pools if len(p))
    keys = torch.cat([p.task * width + p.index for p in pools])
    # Sorted unique keys are in task order, as layer_features needs; `inverse` maps each pool row back.
    uniq, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    feats = layer_features(ctx, split, uniq // width, uniq % width, layers)
    return feats, list(inverse.split([len(p) for p in pools]))
