"""Plasticity metrics of the loss-of-plasticity reference's post-run analysis (spec §10.4), per phase.

At each phase's end (after any best-validation restore, i.e. at the weights the next stage starts
from, which is what the reference's saved parameters hold), on one shuffled batch of `samples`
(1000) training images read without augmentation, from (`data`) either the tasks seen so far
("seen", the reference's option b) or the classes the next task adds ("next", option a: on
incremental CIFAR-100, the next stage's 5 new classes; NaN rows after the last phase). The
reference also measures the untrained network (epoch 0); observers have no run-start hook, so the
first row here is the end of the first stage.

* `plasticity_dormant` (one value per unit layer of `model.features()`): the fraction of the
  layer's units that are dormant. A unit's activity is the fraction of its activations that are
  non-zero, over samples × positions for a conv channel and over samples for a vector unit; it is
  dormant when that fraction is < `threshold` (0.01).
* `plasticity` = (dormant, stable_rank, effective_rank, mean_abs_weight): dormant units summed over
  all layers ÷ all units; the stable rank of the last layer's [samples, units] features = the number
  of singular values, largest first, whose cumulative sum reaches 99 % of their total (NOT
  ‖A‖F²/‖A‖₂²; the reference's plots divide it by the width); the effective rank = exp(entropy
  of the singular values normalised to sum 1); the mean |w| over every parameter entry.

GOTCHA kept: the reference never switches the net to eval mode, so BatchNorm normalises with the
batch's own statistics. The observer runs the batch in train mode (the framework restores every
module's mode afterwards) and puts every buffer back, so BN running statistics are not updated
(and neither is anything else: the trained weights stay bit-identical). Works on any model with
`features()` (the MLP's hidden layers, the ResNet's 17 layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from engine.analyses.base import Observer, ObserverContext
from engine.registry import ANALYSES
from engine.schema import opt
from engine.series import SeriesSpec

COLUMNS = ("dormant", "stable_rank", "effective_rank", "mean_abs_weight")


@dataclass(frozen=True)
class PlasticityOptions:
    """Dormant units, stable and effective rank, mean |weight| at each phase end (loss-of-plasticity §10.4)."""

    enabled: bool = opt(False, "measure plasticity at each phase end")
    samples: int = opt(1000, "training images in the one shuffled batch the metrics are computed on")
    threshold: float = opt(0.01, "a unit is dormant when the fraction of its non-zero activations is below this")
    rank_fraction: float = opt(0.99, "stable rank: singular values needed to reach this fraction of their sum")
    data: Literal["seen", "next"] = opt("seen", "'seen' = training images of the tasks trained so far; 'next' = of the classes the next task adds (all of its images without ragged heads; NaN after the last task)")

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ValueError(f"samples = {self.samples!r} must be >= 2 (BatchNorm needs a batch)")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold = {self.threshold!r} must be in [0, 1]")
        if not 0 < self.rank_fraction <= 1:
            raise ValueError(f"rank_fraction = {self.rank_fraction!r} must be in (0, 1]")


def active_fraction(f: Tensor) -> Tensor:
    """Per unit, the fraction of non-zero activations: over samples (and positions for [B, C, ...])."""
    nz = (f != 0).to(torch.float64)
    return nz.mean(dim=[0, *range(2, f.dim())])


def dormant_counts(feats: dict[str, Tensor], threshold: float) -> tuple[list[int], list[int]]:
    """(dormant units, units) per layer."""
    dormant = [int((active_fraction(f) < threshold).sum()) for f in feats.values()]
    return dormant, [int(f.shape[1]) for f in feats.values()]


def stable_rank(sv: Tensor, fraction: float = 0.99) -> int:
    """Singular values, largest first, needed for their cumulative sum to reach `fraction` of the total."""
    s = torch.sort(sv.to(torch.float64), descending=True).values
    if float(s.sum()) == 0.0:
        return 0
    cum = torch.cumsum(s, 0)
    return int((cum < fraction * s.sum()).sum()) + 1


def effective_rank(sv: Tensor) -> float:
    """exp(entropy) of the singular values normalised to sum 1 (0·log 0 = 0)."""
    s = sv.to(torch.float64).abs()
    if float(s.sum()) == 0.0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def mean_abs_weight(params: list[Tensor]) -> float:
    total = sum(float(p.detach().abs().to(torch.float64).sum()) for p in params)
    return total / max(1, sum(p.numel() for p in params))


@ANALYSES.register(PlasticityOptions)
class Plasticity(Observer):
    def __init__(self, opts: PlasticityOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        layers = getattr(ctx.model, "unit_layers", None)
        if not isinstance(layers, dict):
            raise TypeError("the plasticity analysis needs a model with unit_layers and features()")
        self.layers = list(layers)

    def declare_series(self) -> list[SeriesSpec]:
        return [
            SeriesSpec("plasticity", (4,), cadence="phase", columns=COLUMNS, description=(
                "dormant proportion, stable rank (99 % singular-value count), effective rank of the last "
                "layer, mean |weight|, on one batch of training images of the seen tasks (§10.4)")),
            SeriesSpec("plasticity_dormant", (len(self.layers),), cadence="phase", columns=tuple(self.layers),
                       description="dormant-unit proportion of each unit layer (§10.4)"),
        ]

    def pool(self, phase: int) -> list[tuple[int, Tensor]]:
        """(task, candidate training indices) the batch is drawn from; empty when there are none."""
        tasks, dev = self.ctx.benchmark.tasks, self.ctx.device
        if self.opts.data == "seen":
            seen = self.ctx.seen_tasks(phase)
            if self.ctx.benchmark.cumulative:  # the last seen task already holds every earlier one's images
                seen = seen[-1:]
            return [(t, torch.arange(tasks[t].size("train"), device=dev)) for t in seen]
        nxt = phase + 1
        if nxt >= len(tasks):
            return []
        idx = torch.arange(tasks[nxt].size("train"), device=dev)
        sizes = self.ctx.benchmark.head_sizes
        if sizes is not None:  # incremental heads: keep the classes the next task adds (labels past this head)
            labels = torch.cat([tasks[nxt].get("train", chunk).y for chunk in torch.split(idx, 4096)])
            idx = idx[labels >= sizes[phase]]
        return [(nxt, idx)]

    def batch(self, phase: int) -> tuple[Tensor, Tensor | None] | None:
        """A shuffled batch of unaugmented training images, uniform over the pool; None if it is empty."""
        tasks = self.ctx.benchmark.tasks
        pool = self.pool(phase)
        total = sum(int(i.numel()) for _, i in pool)
        if total == 0:
            return None
        pick = torch.randperm(total, generator=self.gen)[: min(self.opts.samples, total)]
        xs, lens = [], []
        offset = 0
        for t, cand in pool:
            n = int(cand.numel())
            mine = pick[(pick >= offset) & (pick < offset + n)] - offset
            offset += n
            if mine.numel():
                b = tasks[t].get("train", cand[mine.to(cand.device)])
                xs.append(b.x)
                lens.append(b.lengths)
        x = torch.cat(xs)
        lengths = None if any(v is None for v in lens) else torch.cat([v for v in lens if v is not None])
        # The grouping above ordered the batch by task; shuffle it (BN sees the same batch either way).
        order = torch.randperm(x.shape[0], generator=self.gen).to(self.ctx.device)
        return x[order], None if lengths is None else lengths[order]

    def on_phase_end(self, step: int, phase: int) -> dict[str, Any]:
        model: Any = self.ctx.model
        got = self.batch(phase)
        if got is None:  # 'next' after the last task
            return {"plasticity": [math.nan] * 4, "plasticity_dormant": [math.nan] * len(self.layers)}
        x, lengths = got
        buffers = {k: v.clone() for k, v in model.named_buffers()}
        model.train()  # the reference's gotcha: batch statistics in BatchNorm
        try:
            feats = model.features(x, lengths)
        finally:
            with torch.no_grad():
                for k, v in model.named_buffers():
                    v.copy_(buffers[k])
        dormant, units = dormant_counts(feats, self.opts.threshold)
        last = feats[self.layers[-1]]
        sv = torch.linalg.svdvals(last.reshape(last.shape[0], -1).to(torch.float64))
        row = [sum(dormant) / max(1, sum(units)), float(stable_rank(sv, self.opts.rank_fraction)),
               effective_rank(sv), mean_abs_weight(list(model.parameters()))]
        return {"plasticity": [v if math.isfinite(v) else math.nan for v in row],
                "plasticity_dormant": [d / u for d, u in zip(dormant, units)]}
