"""The forward half of a training step: the step's batch, its forward, the task loss and its backward.

engine/loop.py owns the rest of a step (the method's penalty, clipping, the optimizer step, logging)
and asks this part for `task_backward(groups)`; engine/ensemble.py replaces the forward of several
trainers' steps with one batched forward, and uses `task_loss` to score each member's share. Imports
only torch and the engine's data/model pieces; nothing here emits events or touches the store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from engine.activation_l1 import ActivationL1
from engine.benchmarks.base import Batch, Benchmark
from engine.data.sampler import EpochSampler
from engine.methods.base import Method

if TYPE_CHECKING:
    from engine.config import TrainingConfig
    from engine.rng import Streams

TaskGrad = tuple[Tensor, Tensor, Tensor | None]
"""What a step's forward and task-loss backward give the rest of the step: (task loss, correct count,
L1 activation term or None), with the task loss's gradient in the parameters' .grad."""

Groups = list[tuple[int, Batch]]
"""A step's batch: one (task, batch) group per task present in it."""


class StepForward:
    """Draws a step's batch groups and runs their forward and task-loss backward for one trainer."""

    def __init__(self, training: TrainingConfig, bench: Benchmark, model: torch.nn.Module, method: Method,
                 samplers: list[EpochSampler], streams: Streams, l1: ActivationL1) -> None:
        self.training, self.bench, self.method = training, bench, method
        self.samplers, self.streams, self.l1 = samplers, streams, l1
        self.mix_gen = streams.get("mix")  # the task of each slot of a mixed batch (in the checkpoint)
        # Mixed batches go through one forward when BatchNorm would otherwise see per-task sub-batches
        # and the method's forward/head do not depend on the task (see forward_groups).
        self.forward_once = (any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
                             and type(method).forward is Method.forward
                             and type(method).head_logits is Method.head_logits)

    def batch_groups(self, tasks: list[int], size: int) -> Groups:
        """One group per task present in the batch; a mixed batch draws each slot's task uniformly."""
        if len(tasks) == 1:
            t = tasks[0]
            groups = [(t, self.bench.tasks[t].get("train", self.samplers[t].next(size)))]
        else:
            slots = torch.randint(len(tasks), (size,), generator=self.mix_gen)
            counts = np.bincount(slots.numpy(), minlength=len(tasks)).tolist()  # host tensor: no device read
            groups = [(t, self.bench.tasks[t].get("train", self.samplers[t].next(c)))
                      for t, c in zip(tasks, counts) if c]
        aug = self.bench.augment
        if aug is None:
            return groups
        # Augmentation of trained batches only, from the run's "augment" stream (in the checkpoint).
        return [(t, replace(b, x=aug(b.x, self.streams.get("augment")))) for t, b in groups]

    def forward_groups(self, groups: Groups) -> list[tuple[int, Batch, Tensor]]:
        """(task, batch, head logits) per group of a step's batch.

        Each task's share is forwarded on its own (the reference behaviour, kept bit for bit), except
        when the model normalises over the batch (BatchNorm) and the method's forward ignores the task:
        then one forward over the whole mixed batch, so the statistics are those of the batch a joint
        ("concurrent") training sees, not of each task's sub-batch.
        """
        if len(groups) > 1 and self.forward_once and len({b.x.shape[1:] for _, b in groups}) == 1:
            xs = torch.cat([b.x for _, b in groups])
            lens = None if groups[0][1].lengths is None else torch.cat([b.lengths for _, b in groups
                                                                          if b.lengths is not None])
            out = torch.split(self.method.forward(xs, lens, groups[0][0]), [b.y.shape[0] for _, b in groups])
            return [(t, b, o.index_select(1, self.bench.head(t))) for (t, b), o in zip(groups, out)]
        return [(t, b, self.method.head_logits(b.x, b.lengths, t)) for t, b in groups]

    def task_backward(self, groups: Groups) -> TaskGrad:
        """Steps 1-2a of a training step: forward each group of the batch, the task loss (summed CE /
        batch size, + the L1 activation term), and its backward into the parameters' .grad."""
        with self.l1.capture():  # the L1 activation penalty reads this forward's unit layers
            task_loss, correct = self.task_loss(self.forward_groups(groups))
        l1 = self.l1.term()  # λ·Σ mean|h|, or None when training.l1_activation = 0
        torch.autograd.backward(task_loss if l1 is None else task_loss + l1)  # untyped .backward()
        return task_loss, correct, l1

    def task_loss(self, group_logits: list[tuple[int, Batch, Tensor]]) -> tuple[Tensor, Tensor]:
        """(summed cross-entropy / batch size, correct count) of a step's groups and their head logits."""
        task_loss: Tensor | None = None  # sums start from the first group's (0 + x = x, bit for bit)
        correct: Tensor | None = None
        for _, b, logits in group_logits:
            ce = F.cross_entropy(logits, b.y, reduction="sum")
            hits = (logits.detach().argmax(1) == b.y).sum()
            task_loss = ce if task_loss is None else task_loss + ce
            correct = hits if correct is None else correct + hits
        assert task_loss is not None and correct is not None  # a batch has at least one sample
        return task_loss / self.training.batch_size, correct
