"""Predicted probability of the true class, per class, on a fixed test subset of each class.

Series `class_prob` (curve cadence, one value per class of the benchmark's shared label space,
columns "0", "1", ...): the mean softmax probability the network gives the true class of a fixed set
of test images of that class, through `method.head_logits` of the images' own task (so the softmax
runs over that task's head, with the method's masks or generated weights): over all 10 classes in
class-incremental Split-MNIST, over the task's pair in task-incremental. NaN for a class that no
task trained so far has. Which global class a task's label is: engine.analyses.common.task_classes
(the benchmark's `class_map` when it has one, else the output unit). A class that several
seen tasks share (domain-incremental) is averaged over all its images of those tasks.

Images: per task and per class, the first `samples` test images of that class in a fixed order
(the curves' order). Measured in eval mode. Cost: one forward of those images of the seen tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from engine.analyses.base import Observer, ObserverContext
from engine.analyses.common import fixed_order, split_labels, task_classes
from engine.registry import ANALYSES
from engine.schema import opt
from engine.series import SeriesSpec


@dataclass(frozen=True)
class ClassProbsOptions:
    """Mean softmax probability of the true class, per class."""

    enabled: bool = opt(False, "record the mean predicted probability of the true class, per class")
    every: int = opt(100, "measure every N steps (and at each phase's last step)")
    samples: int = opt(100, "fixed test images per class and task")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "analyses.class_probs." in front.
        for n in ("every", "samples"):
            if getattr(self, n) < 1:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 1")


def per_class_subset(order: torch.Tensor, labels: torch.Tensor, samples: int) -> torch.Tensor:
    """Of each label, the first `samples` positions in `order` (indices into the split, in that order)."""
    ordered = labels[order]
    keep = torch.zeros_like(order, dtype=torch.bool)
    for y in torch.unique(ordered).tolist():
        where = (ordered == y).nonzero().flatten()[:samples]
        keep[where] = True
    return order[keep]


@ANALYSES.register(ClassProbsOptions)
class ClassProbs(Observer):
    def __init__(self, opts: ClassProbsOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        self.every = opts.every
        classes, self.n_classes = task_classes(ctx.benchmark)
        self.classes = [torch.tensor(c, dtype=torch.long, device=ctx.device) for c in classes]
        self.idx = []
        for i, t in enumerate(ctx.benchmark.tasks):
            labels = split_labels(t, "test", ctx.eval_batch_size, ctx.device).cpu()
            self.idx.append(per_class_subset(fixed_order(t, i), labels, opts.samples).to(ctx.device))

    def declare_series(self) -> list[SeriesSpec]:
        cols = tuple(str(c) for c in range(self.n_classes))
        return [SeriesSpec("class_prob", (self.n_classes,), cadence="curve", columns=cols,
                           description="mean softmax probability of the true class on a fixed subset of "
                                       f"{self.opts.samples} test images per class (NaN: no seen task has it)")]

    def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
        ctx = self.ctx
        ctx.model.eval()
        p_true, cls = [], []
        for t in ctx.seen_tasks(phase):
            task = ctx.benchmark.tasks[t]
            for chunk in torch.split(self.idx[t], ctx.eval_batch_size):
                b = task.get("test", chunk)
                probs = ctx.method.head_logits(b.x, b.lengths, t).double().softmax(1)
                p_true.append(probs.gather(1, b.y[:, None]).squeeze(1))
                cls.append(self.classes[t][b.y])
        # Summed on the CPU, in image order: index_add_ on a GPU adds in no fixed order, and the
        # rows must be the same bits after a resume.
        total = torch.zeros(self.n_classes, dtype=torch.float64)
        count = torch.zeros(self.n_classes, dtype=torch.float64)
        if p_true:
            g = torch.cat(cls).cpu()
            total.index_add_(0, g, torch.cat(p_true).cpu())
            count.index_add_(0, g, torch.ones(g.numel(), dtype=torch.float64))
        mean = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))
        return {"class_prob": mean.tolist()}
