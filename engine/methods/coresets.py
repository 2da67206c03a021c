"""Coresets with distillation (reference §4.7): replay a few stored samples of each old task, matched to soft targets.

* Selection: after each task, `coreset_size` training samples of it, the first indices of a fresh
  shuffle (torch.randperm on the "coresets/select" stream; replay draws use "coresets/replay"). Only indices are
  stored; samples are read back with `task.get("train", idx)`.
* Teacher: at the start of every task after the first, a frozen deep copy of the network
  (θ_old = the weights after the previous task), kept in eval mode without gradients.
* Each step of task t ≥ 1 replays `replay_batch` samples in total (-1 = the training batch size),
  split over the old tasks taken in a random order (earlier ones get the remainder), each share
  drawn uniformly with replacement from that task's coreset. Per old task j, on head j:
  KD_j = T²·mean_n[−Σ_c softmax(z_old/T)_c · log softmax(z/T)_c]; penalty = distill_reg · Σ_j KD_j
  (summed, not averaged, over old tasks).
* Read-out: the model's normal forward (the last unpadded step). The reference reads KD out one
  step earlier (len−2) through an off-by-one in its eod lookup; we do not copy that bug.

Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.methods.base import Method, MethodContext
from engine.models.base import CLModel
from engine.registry import METHODS
from engine.schema import opt


def distillation_loss(logits: Tensor, old_logits: Tensor, temperature: float) -> Tensor:
    """Hinton KD: T² · mean over samples of the cross-entropy between softened old and new outputs."""
    t = temperature
    soft = F.softmax(old_logits / t, dim=1)
    return t * t * -(soft * F.log_softmax(logits / t, dim=1)).sum(1).mean()


@dataclass(frozen=True)
class CoresetsOptions:
    """Coreset replay with distillation to the network from the start of the task (spec §4.7)."""

    coreset_size: int = opt(500, "training samples kept per finished task (random; indices only)")
    replay_batch: int = opt(-1, "replayed samples per step, split over all old tasks; -1 = the training batch size")
    temperature: float = opt(2.0, "distillation temperature T; the loss is T²-scaled")
    distill_reg: float = opt(1.0, "λ_d: weight of the KD loss summed over old tasks. KD is read out at the model's normal step (len−1); the reference reads it at len−2 (an off-by-one we do not copy)")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "method." in front.
        from engine.config import MAX_BATCH

        if self.coreset_size < 1:
            raise ValueError(f"coreset_size = {self.coreset_size!r} must be >= 1")
        if self.replay_batch == 0 or self.replay_batch < -1 or self.replay_batch > MAX_BATCH:
            raise ValueError(f"replay_batch = {self.replay_batch!r} must be -1 (the training batch size) or 1 to {MAX_BATCH:,}")
        if self.temperature <= 0:
            raise ValueError(f"temperature = {self.temperature!r} must be > 0")
        if self.distill_reg < 0:
            raise ValueError(f"distill_reg = {self.distill_reg!r} must be >= 0")


@METHODS.register(CoresetsOptions)
class Coresets(Method):
    def __init__(self, opts: CoresetsOptions, ctx: MethodContext) -> None:
        super().__init__(opts, ctx)
        self.coresets: dict[int, Tensor] = {}  # task → training indices (CPU, long)
        self.old: CLModel | None = None  # frozen copy of the network from the start of the phase

    def _make_old(self) -> CLModel:
        old = copy.deepcopy(self.model)
        old.eval()
        for p in old.parameters():
            p.requires_grad_(False)
        return old

    def replay_size(self) -> int:
        return self.opts.replay_batch if self.opts.replay_batch > 0 else self.ctx.training.batch_size

    # -- hooks --------------------------------------------------------------------------------
    def before_phase(self, phase: int, tasks: list[int]) -> None:
        super().before_phase(phase, tasks)
        self.old = self._make_old() if self.coresets else None

    def penalty(self, phase: int, tasks: list[int]) -> tuple[Tensor | None, dict[str, Tensor | float]]:
        base, info = super().penalty(phase, tasks)
        old_tasks = sorted(t for t in self.coresets if t not in tasks)
        if not old_tasks or self.old is None or self.opts.distill_reg == 0:
            return base, info
        # Split the replay batch over the old tasks in a random order; earlier ones get the remainder.
        order = [old_tasks[i] for i in torch.randperm(len(old_tasks), generator=self.ctx.generator("coresets/replay")).tolist()]
        total_n = self.replay_size()
        share, rest = divmod(total_n, len(order))
        bench = self.ctx.benchmark
        kd = torch.zeros((), device=self.ctx.device)
        for k, t in enumerate(order):
            n = share + (1 if k < rest else 0)
            if n == 0:
                continue
            pool = self.coresets[t]
            # Host indices (the pool lives on the host): the task copies them over, no device sync.
            idx = pool[torch.randint(len(pool), (n,), generator=self.ctx.generator("coresets/replay"))]
            b = bench.tasks[t].get("train", idx)
            with torch.no_grad():
                old_logits = self.old(b.x, b.lengths).index_select(1, bench.head(t))
            kd = kd + distillation_loss(self.head_logits(b.x, b.lengths, t), old_logits, self.opts.temperature)
        loss = self.opts.distill_reg * kd
        return (loss if base is None else base + loss), info

    def after_phase(self, phase: int, tasks: list[int]) -> None:
        super().after_phase(phase, tasks)
        for t in tasks:
            n = self.ctx.benchmark.tasks[t].size("train")
            # The first `coreset_size` indices of a freshly shuffled order ("coresets/select" stream).
            self.coresets[t] = torch.randperm(n, generator=self.ctx.generator("coresets/select"))[: min(self.opts.coreset_size, n)].clone()

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["coresets"] = {
            "indices": {t: idx.clone() for t, idx in self.coresets.items()},
            "old_model": None if self.old is None else self.old.state_dict(),
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        st = state["coresets"]
        self.coresets = {int(t): idx.cpu() for t, idx in st["indices"].items()}
        self.old = None
        if st["old_model"] is not None:
            self.old = self._make_old()
            self.old.load_state_dict(st["old_model"])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "coreset_size_per_task": self.opts.coreset_size}
