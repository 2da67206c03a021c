"""GEMResNet18 as SupSup's GG experiments build it (spec §9.2): a reduced ResNet-18 of masked convs.

Base width nf (20 in the reference): a 3×3 stride-1 stem to nf channels, four stages of two
BasicBlocks with nf, 2nf, 4nf, 8nf channels (strides 1, 2, 2, 2; a 1×1 conv + BN shortcut where the
shape changes), avg-pool 4 (the whole 4×4 map of a 32×32 input), then the "linear" layer, a 1×1
conv to the outputs. Every conv is masked (engine/models/supermask.py: fixed signed-constant
weights, no bias, per-task scores, GG top-k with the ER budget, straight-through). The last one is
a `MaskedLinear` on the pooled vector: a 1×1 conv on a [B, 8nf, 1, 1] map is that linear map, with
the same weight init (fan_in 8nf) and ER budget (kh = kw = 1).

BatchNorm is the reference's MultitaskNonAffineBN: per BN site one non-affine BatchNorm2d per task
(`TaskBatchNorm2d`), so each task has its own running statistics and none has learnable
parameters. The task whose statistics a forward uses (and, in train mode, updates) is set with
`set_task` / `using_task` (the supsup method does it); only that task's running stats ever change.

Unit layers (for the analyses): "stem" (after the stem's BN-ReLU), "layer<s>.<b>.gate" (each block's
output, after the residual add and ReLU; [B, C, H, W], a unit is a channel) and "pool" ([B, 8nf]).
Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.benchmarks.base import InputSpec
from engine.models.base import UnitGate
from engine.models.resnet18 import ChannelGate
from engine.models.supermask import MaskedConv2d, MaskedLayer, MaskedLinear, SupermaskNet, er_keep_fraction
from engine.registry import MODELS
from engine.schema import opt


@dataclass(frozen=True)
class SupermaskResnet18Options:
    """GEMResNet18 (SupSup GG): masked convs over fixed signed-constant weights, per-task non-affine BatchNorm."""

    width: int = opt(20, "nf: channels of the first stage (stages nf, 2nf, 4nf, 8nf); 20 = the reference")
    outputs: int = opt(0, "output units; 0 = the benchmark's (5 on split_cifar100)")
    mask_rule: Literal["gg", "gnu"] = opt("gg", "'gg' = top-k fraction of |score| per layer with the ER budget (the reference); 'gnu' = mask where score >= 0")
    er_scale: float = opt(1.0, "the ER budget's s: a layer keeps min(0.5, s·(c_out + c_in)/(c_out·c_in·kh·kw)) of its edges (SupSup sweeps 1..32)")
    tasks: int = opt(20, "tasks with their own BatchNorm statistics; at least the benchmark's number of tasks")

    def __post_init__(self) -> None:
        if not 1 <= self.width <= 512:
            raise ValueError(f"width = {self.width!r} must be 1 to 512")
        if self.outputs < 0:
            raise ValueError(f"outputs = {self.outputs!r} must be >= 0 (0 = the benchmark's)")
        if not (math.isfinite(self.er_scale) and self.er_scale > 0):
            raise ValueError(f"er_scale = {self.er_scale!r} must be a finite number > 0")
        if not 1 <= self.tasks <= 10_000:
            raise ValueError(f"tasks = {self.tasks!r} must be 1 to 10000")


class TaskBatchNorm2d(nn.Module):
    """One non-affine BatchNorm2d per task; `task` picks the one a forward uses (MultitaskNonAffineBN)."""

    def __init__(self, channels: int, tasks: int) -> None:
        super().__init__()
        self.bns = nn.ModuleList(nn.BatchNorm2d(channels, affine=False) for _ in range(tasks))
        self.task = 0

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.bns[self.task](x)
        return out


class MaskedBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, + shortcut (masked 1×1 conv + BN when the shape changes), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, conv: ConvMaker, tasks: int) -> None:
        super().__init__()
        self.conv1 = conv(c_in, c_out, 3, stride)
        self.bn1 = TaskBatchNorm2d(c_out, tasks)
        self.conv2 = conv(c_out, c_out, 3, 1)
        self.bn2 = TaskBatchNorm2d(c_out, tasks)
        self.gate = ChannelGate(c_out)
        self.shortcut: nn.Sequential | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride), TaskBatchNorm2d(c_out, tasks))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + (x if self.shortcut is None else self.shortcut(x))
        gated: Tensor = self.gate(torch.relu(out))
        return gated


class ConvMaker:
    """Builds the model's masked convs (the reference's Builder): padding k // 2, the ER budget of each."""

    def __init__(self, rule: str, er_scale: float) -> None:
        self.rule, self.er_scale = rule, er_scale

    def __call__(self, c_in: int, c_out: int, kernel: int, stride: int) -> MaskedConv2d:
        keep = er_keep_fraction(c_out, c_in, self.er_scale, kernel * kernel)
        return MaskedConv2d(c_in, c_out, kernel, stride, kernel // 2, self.rule, keep)


@MODELS.register(SupermaskResnet18Options)
class SupermaskResnet18(SupermaskNet):
    """conv1, bn1, stem, layer1..layer4 (two MaskedBlocks each), pool, out (see the module doc)."""

    def __init__(self, opts: SupermaskResnet18Options, spec: InputSpec) -> None:
        super().__init__()
        if tuple(spec.input_shape) != (3, 32, 32):
            raise ValueError(f"supermask_resnet18 (GEMResNet18) takes 3×32×32 images, not inputs of shape {spec.input_shape}")
        if opts.outputs and opts.outputs < spec.n_outputs:
            raise ValueError(f"model.outputs = {opts.outputs} is fewer than the benchmark's {spec.n_outputs} output units")
        nf, tasks = opts.width, opts.tasks
        self.bn_tasks = tasks
        self.n_outputs = opts.outputs or spec.n_outputs
        conv = ConvMaker(opts.mask_rule, opts.er_scale)
        self.conv1 = conv(3, nf, 3, 1)
        self.bn1 = TaskBatchNorm2d(nf, tasks)
        self.stem = ChannelGate(nf)
        self.unit_layers = {"stem": nf}
        c_in = nf
        for s, c in enumerate((nf, 2 * nf, 4 * nf, 8 * nf), start=1):
            stride = 1 if s == 1 else 2
            setattr(self, f"layer{s}", nn.Sequential(MaskedBlock(c_in, c, stride, conv, tasks),
                                                     MaskedBlock(c, c, 1, conv, tasks)))
            self.unit_layers.update({f"layer{s}.0.gate": c, f"layer{s}.1.gate": c})
            c_in = c
        self.pool = UnitGate(8 * nf)
        self.unit_layers["pool"] = 8 * nf
        self.out = MaskedLinear(8 * nf, self.n_outputs, opts.mask_rule, er_keep_fraction(self.n_outputs, 8 * nf, opts.er_scale))
        self.readout = "out"
        # Masked layers in module order (stem, blocks with their shortcut, out): the flat mask's order.
        self.masked: dict[str, MaskedLayer] = {name: m for name, m in self.named_modules()
                                               if isinstance(m, MaskedConv2d | MaskedLinear)}
        self.reset_parameters()

    # -- the task's BatchNorm ------------------------------------------------------------------
    def _norms(self) -> Iterator[TaskBatchNorm2d]:
        return (m for m in self.modules() if isinstance(m, TaskBatchNorm2d))

    def set_task(self, task: int) -> None:
        if not 0 <= task < self.bn_tasks:
            raise IndexError(f"task {task}: this model keeps BatchNorm statistics for tasks 0..{self.bn_tasks - 1}")
        for bn in self._norms():
            bn.task = task

    @contextmanager
    def using_task(self, task: int) -> Iterator[None]:
        before = self.bn1.task
        self.set_task(task)
        try:
            yield
        finally:
            self.set_task(before)

    # -- forward ------------------------------------------------------------------------------
    def _run(self, x: Tensor, feats: dict[str, Tensor] | None) -> Tensor:
        h = self.stem(torch.relu(self.bn1(self.conv1(x))))
        if feats is not None:
            feats["stem"] = h
        for s in range(1, 5):
            for b, blk in enumerate(getattr(self, f"layer{s}")):
                h = blk(h)
                if feats is not None:
                    feats[f"layer{s}.{b}.gate"] = h
        pooled: Tensor = self.pool(F.avg_pool2d(h, 4).flatten(1))
        if feats is not None:
            feats["pool"] = pooled
        return pooled

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        feats: dict[str, Tensor] = {}
        self._run(x, feats)
        return feats

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        logits: Tensor = self.out(self._run(x, None))
        return logits
