"""Population sparsity and dormant units of every hidden layer, on a fixed test subset of all tasks.

Series (curve cadence, one value per layer of `model.features()` in forward order, then "all"):

    sparsity  fraction of the activations that are exactly 0 (a layer: over its units × images;
              "all": every layer's activations together, as the study pools h1 and h2)
    dormant   fraction of units whose fraction of non-zero activations over the images is below
              `threshold` (the dormant-unit rule of the loss-of-plasticity study; "all": dormant
              units of every layer ÷ all units)

The images: the first `samples` test images of every task in a fixed order (the curves' order), all
tasks whether trained yet or not, measured in eval mode (dropout off, BatchNorm's running
statistics) through the bare model's `features()`: a method that masks units or generates the
weights (masking, HNET) is not applied here. Cost: one forward of T × samples images per point.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from engine.analyses.base import Observer, ObserverContext
from engine.analyses.common import feature_layers, fixed_subset
from engine.models.base import CLModel
from engine.registry import ANALYSES
from engine.schema import opt
from engine.series import SeriesSpec


@dataclass(frozen=True)
class SparsityOptions:
    """Population sparsity and dormant units per hidden layer."""

    enabled: bool = opt(False, "record population sparsity and dormant units per hidden layer")
    every: int = opt(100, "measure every N steps (and at each phase's last step)")
    samples: int = opt(500, "fixed test images per task (all tasks, trained or not)")
    threshold: float = opt(0.01, "a unit is dormant when the fraction of images that activate it (non-zero) is below this")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "analyses.sparsity." in front.
        for n in ("every", "samples"):
            if getattr(self, n) < 1:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 1")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold = {self.threshold!r} must be between 0 and 1")


@torch.no_grad()
def layer_activity(model: CLModel, batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]]
                   ) -> tuple[dict[str, torch.Tensor], int]:
    """Per layer, how many images give each unit a non-zero activation ([units], on the device), and the image count.

    Summed on the device: one host sync for the whole measurement, when the caller reads it.
    """
    counts: dict[str, torch.Tensor] = {}
    n = 0
    for x, lengths in batches:
        for name, h in model.features(x, lengths).items():
            nz = (h != 0).sum(0)
            counts[name] = counts[name] + nz if name in counts else nz
        n += x.shape[0]
    return counts, n


def sparsity_rows(counts: dict[str, torch.Tensor], n: int, threshold: float) -> tuple[list[float], list[float]]:
    """(sparsity, dormant) rows, per layer then "all", from `layer_activity`'s counts over `n` images."""
    sparsity, dormant = [], []
    zeros_all, units_all, dormant_all = 0.0, 0, 0
    for c in counts.values():
        c = c.double().cpu()
        units = c.numel()
        zeros = units * n - float(c.sum())
        n_dormant = int((c / n < threshold).sum())
        sparsity.append(zeros / (units * n))
        dormant.append(n_dormant / units)
        zeros_all, units_all, dormant_all = zeros_all + zeros, units_all + units, dormant_all + n_dormant
    sparsity.append(zeros_all / (units_all * n))
    dormant.append(dormant_all / units_all)
    return sparsity, dormant


@ANALYSES.register(SparsityOptions)
class Sparsity(Observer):
    def __init__(self, opts: SparsityOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        self.every = opts.every
        self.idx = [fixed_subset(t, i, opts.samples, ctx.device) for i, t in enumerate(ctx.benchmark.tasks)]
        self.layers = feature_layers(ctx.model, ctx.benchmark, ctx.device)

    @property
    def model(self) -> CLModel:
        model = self.ctx.model
        assert isinstance(model, CLModel)
        return model

    def declare_series(self) -> list[SeriesSpec]:
        cols = (*self.layers, "all")
        n = len(cols)
        return [
            SeriesSpec("sparsity", (n,), cadence="curve", columns=cols,
                       description="population sparsity: fraction of hidden activations exactly 0 on a fixed "
                                   f"subset of {self.opts.samples} test images per task (all tasks)"),
            SeriesSpec("dormant", (n,), cadence="curve", columns=cols,
                       description=f"fraction of units active (non-zero) on < {self.opts.threshold} of those images"),
        ]

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        for t, idx in zip(self.ctx.benchmark.tasks, self.idx):
            for chunk in torch.split(idx, self.ctx.eval_batch_size):
                b = t.get("test", chunk)
                yield b.x, b.lengths

    def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
        self.model.eval()
        counts, n = layer_activity(self.model, self.batches())
        if list(counts) != self.layers:
            raise RuntimeError(f"model.features() returned layers {list(counts)}, expected {self.layers}")
        sparsity, dormant = sparsity_rows(counts, n, self.opts.threshold)
        return {"sparsity": sparsity, "dormant": dormant}
