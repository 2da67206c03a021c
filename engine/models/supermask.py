"""Supermask networks (SupSup): fixed signed-constant weights, learned binary masks over the edges.

The masked layers are `MaskedLinear` and `MaskedConv2d` (bias-free), and `SupermaskNet` is the base
of the models built from them: `SupermaskMLP` here (the reference builds it from 1×1 convolutions,
which on a flattened image is the same map) and GEMResNet18 in engine/models/supermask_resnet.py.
In every masked layer:

* `weight` (frozen, requires_grad False): sign(PyTorch's default init) × gain/√fan_in, gain = √2
  (relu), fan_in = c_in·kh·kw (the reference's "signed constant" init);
* `scores` (same shape) is the only trainable tensor: the scores of the task being trained,
  initialised Kaiming-uniform (a=√5). The method re-draws them at each task
  (engine/methods/supsup.py) and caches the resulting binary mask, packed 8 edges per byte (`pack_bits`);
* the mask rule: 'gnu' M = [scores ≥ 0] (about half the edges at init), or 'gg' M = the top-k
  fraction of |scores| in the layer, k = min(0.5, s·(c_out + c_in)/(c_out·c_in·kh·kw)) (the ER
  budget, s = `er_scale`);
* the forward uses W ⊙ M; the backward sends ∂L/∂M straight through (`StraightThrough`) to what the
  rule ranks: to the scores for 'gnu', so ∂L/∂scores = ∂L/∂(W⊙M) ⊙ W on every edge, chosen or not;
  to |scores| for 'gg' (the reference's GetSubnet takes scores.abs()), so there the chain rule adds
  the factor sign(scores).

`with model.using_masks({layer: mask})` replaces the masks from the scores by given ones for the
forwards inside the block: a cached binary mask shaped like the weight, a superposition Σ α_i M_i,
or (linear layers only) one superposed mask per example [n, out, in] (task inference needs each
example's own α gradient). A model with per-task BatchNorm (`bn_tasks` > 0) picks the task's
statistics with `set_task` / `using_task`; the MLP has none and ignores the task.

The model contract of engine/models/base.py holds: `h<i>` unit gates after each hidden ReLU,
`features`, `readout` ("out", an nn.Linear subclass), `reset_parameters` from the global torch RNG.
Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.benchmarks.base import InputSpec
from engine.models.base import CLModel, UnitGate
from engine.registry import MODELS
from engine.schema import opt


class StraightThrough(torch.autograd.Function):
    """Forward: the binary mask computed from the scores; backward: the incoming gradient unchanged."""

    @staticmethod
    def forward(ctx: Any, scores: Tensor, mask: Tensor) -> Tensor:
        return mask

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def er_keep_fraction(n_out: int, n_in: int, scale: float, kernel: int = 1) -> float:
    """GG's per-layer density from the ER budget: min(0.5, s·(c_out + c_in)/(c_out·c_in·kh·kw))."""
    return min(0.5, scale * (n_out + n_in) / (n_out * n_in * kernel))


def binary_mask(scores: Tensor, rule: str, keep: float) -> Tensor:
    """The 0/1 mask (scores' dtype) of one layer: 'gnu' = [scores ≥ 0]; 'gg' = the top-`keep` fraction of |scores|.

    GG follows the reference's count exactly: the ⌊(1 - keep)·n⌋ smallest |scores| are dropped, the rest kept.
    """
    if rule == "gnu":
        return (scores >= 0).to(scores.dtype)
    flat = scores.detach().abs().flatten()
    drop = int((1 - keep) * flat.numel())
    mask = torch.ones_like(flat)
    mask[flat.argsort()[:drop]] = 0
    return mask.view_as(scores)


def pack_bits(bits: Tensor) -> Tensor:
    """A flat 0/1 (bool or float) tensor of E entries → uint8 [ceil(E/8)], 8 per byte, first bit highest
    (numpy.packbits' order); the tail is padded with zeros. Runs on the tensor's device."""
    b = bits.flatten().to(torch.uint8)
    pad = (-b.numel()) % 8
    if pad:
        b = torch.cat([b, b.new_zeros(pad)])
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=b.device)
    return (b.view(-1, 8) * weights).sum(1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, count: int) -> Tensor:
    """Inverse of `pack_bits`: uint8 [..., ceil(E/8)] → bool [..., E] (`count` = E)."""
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) >> shifts) & 1
    return bits.flatten(-2)[..., :count].bool()


def straight_through_mask(scores: Tensor, rule: str, keep: float) -> Tensor:
    """The binary mask of `scores`, whose gradient goes straight through to what the rule ranks:
    the scores ('gnu'), or their magnitudes ('gg', as the reference's GetSubnet(scores.abs(), k))."""
    ranked = scores.abs() if rule == "gg" else scores
    mask: Tensor = StraightThrough.apply(ranked, binary_mask(scores, rule, keep))  # type: ignore[no-untyped-call]
    return mask


class MaskedLinear(nn.Linear):
    """A bias-free linear layer with a frozen weight and trainable mask scores (see the module doc)."""

    def __init__(self, n_in: int, n_out: int, rule: str, keep: float) -> None:
        # Built on the meta device and given empty storage: the model initialises it (no RNG draws here).
        super().__init__(n_in, n_out, bias=False, device="meta")
        self.to_empty(device="cpu")
        self.weight.requires_grad_(False)
        self.scores = nn.Parameter(torch.empty(n_out, n_in))
        self.rule, self.keep = rule, keep
        self.mask_override: Tensor | None = None
        """Set only by SupermaskMLP.using_masks: [out, in] or one per example [n, out, in]."""

    def mask(self) -> Tensor:
        """The binary mask of the current scores, differentiable straight-through."""
        return straight_through_mask(self.scores, self.rule, self.keep)

    def forward(self, x: Tensor) -> Tensor:
        m = self.mask_override
        if m is None:
            return F.linear(x, self.weight * self.mask())
        if m.dim() == 3:  # one weight per example: [n, out, in] @ [n, in, 1]
            return torch.bmm(self.weight * m, x.unsqueeze(-1)).squeeze(-1)
        return F.linear(x, self.weight * m)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rule={self.rule}, keep={self.keep:.4g}"

class MaskedConv2d(nn.Conv2d):
    """A bias-free convolution with a frozen weight and trainable mask scores (the reference's
    MultitaskMaskConv for the task being trained; see the module doc)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, rule: str, keep: float) -> None:
        super().__init__(c_in, c_out, kernel, stride, padding, bias=False, device="meta")
        self.to_empty(device="cpu")
        self.weight.requires_grad_(False)
        self.scores = nn.Parameter(torch.empty(self.weight.shape))
        self.rule, self.keep = rule, keep
        self.mask_override: Tensor | None = None
        """Set only by SupermaskNet.using_masks: shaped like the weight (one mask for the whole batch)."""

    def mask(self) -> Tensor:
        return straight_through_mask(self.scores, self.rule, self.keep)

    def forward(self, x: Tensor) -> Tensor:
        m = self.mask() if self.mask_override is None else self.mask_override
        if m.dim() != 4:
            raise ValueError(f"a masked convolution takes one mask shaped like its weight, got {tuple(m.shape)}")
        return F.conv2d(x, self.weight * m, None, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rule={self.rule}, keep={self.keep:.4g}"  # type: ignore[no-untyped-call]


MaskedLayer = MaskedLinear | MaskedConv2d


class SupermaskNet(CLModel):
    """What SupSup needs of a supermask model: its masked layers by name (forward order), their
    masks flattened and back, mask overrides, and the per-task BatchNorm switch."""

    masked: dict[str, MaskedLayer]
    bn_tasks: int = 0
    """Tasks with their own BatchNorm statistics (0: the model has no BatchNorm)."""

    @property
    def edges(self) -> dict[str, int]:
        """Masked edges per layer, in the flat order of `flat_mask`/`split_flat`."""
        return {name: layer.weight.numel() for name, layer in self.masked.items()}

    @property
    def mask_dtype(self) -> torch.dtype:
        return next(iter(self.masked.values())).weight.dtype

    def reset_parameters(self) -> None:
        """Per masked layer, in order, from the global torch RNG: the default init (kaiming_uniform
        a=√5) whose signs make the signed-constant weight, then the scores (kaiming_uniform a=√5)."""
        gain = nn.init.calculate_gain("relu")
        with torch.no_grad():
            for layer in self.masked.values():
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
                fan_in = layer.weight[0].numel()
                layer.weight.copy_(layer.weight.sign() * (gain / math.sqrt(fan_in)))
                nn.init.kaiming_uniform_(layer.scores, a=math.sqrt(5))

    def set_task(self, task: int) -> None:
        """Forwards use task `task`'s BatchNorm statistics from now on (no-op without BatchNorm)."""

    @contextmanager
    def using_task(self, task: int) -> Iterator[None]:
        """Forwards inside the block use task `task`'s BatchNorm statistics (no-op without BatchNorm)."""
        yield

    def flat_mask(self) -> Tensor:
        """The current scores' binary masks, all layers flattened and concatenated (bool [E], no gradient)."""
        with torch.no_grad():
            return torch.cat([binary_mask(layer.scores, layer.rule, layer.keep).flatten().bool()
                              for layer in self.masked.values()])

    def split_flat(self, flat: Tensor) -> dict[str, Tensor]:
        """A flat [..., E] tensor → {layer: [..., *weight shape]} (views of a 1-D one), the inverse of `flat_mask`'s order."""
        out, i = {}, 0
        for name, layer in self.masked.items():
            n = layer.weight.numel()
            out[name] = flat[..., i : i + n].reshape(*flat.shape[:-1], *layer.weight.shape)
            i += n
        return out

    @contextmanager
    def using_masks(self, masks: dict[str, Tensor]) -> Iterator[None]:
        """Forwards inside the block use these masks (every masked layer must be given) instead of the scores'."""
        if set(masks) != set(self.masked):
            raise KeyError(f"using_masks needs a mask for each of {list(self.masked)}, got {sorted(masks)}")
        try:
            for name, m in masks.items():
                self.masked[name].mask_override = m
            yield
        finally:
            for layer in self.masked.values():
                layer.mask_override = None


@dataclass(frozen=True)
class SupermaskMlpOptions:
    """A bias-free fully connected net of fixed signed-constant weights, masked per task (SupSup)."""

    hidden: list[int] = opt([300, 100], "widths of the hidden layers ([300, 100] = SupSup's 'LeNet', [1024, 1024] = 'FC1024')")  # noqa: RUF009
    outputs: int = opt(0, "output units; 0 = the benchmark's. More than the benchmark's adds 'superfluous' units (SupSup: 100 or 500), used by task inference's G objective")
    mask_rule: Literal["gnu", "gg"] = opt("gnu", "'gnu' = mask where score >= 0; 'gg' = top-k fraction of |score| per layer with the ER budget")
    er_scale: float = opt(1.0, "GG only: the ER budget's s; a layer keeps min(0.5, s·(c_out + c_in)/(c_out·c_in)) of its edges")

    def __post_init__(self) -> None:
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden = {self.hidden!r}: every width must be >= 1")
        if self.outputs < 0:
            raise ValueError(f"outputs = {self.outputs!r} must be >= 0 (0 = the benchmark's)")
        if not (math.isfinite(self.er_scale) and self.er_scale > 0):
            raise ValueError(f"er_scale = {self.er_scale!r} must be a finite number > 0")
        from engine.schema import check_fits

        # Per layer: weight, scores, their gradient and two optimizer moments, float32.
        between = sum(float(a) * b for a, b in zip(self.hidden, self.hidden[1:])) + sum(map(float, self.hidden))
        check_fits("hidden", self.hidden, between * 4 * 5, "the supermask net's weights and scores")


@MODELS.register(SupermaskMlpOptions)
class SupermaskMLP(SupermaskNet):
    """fc1, h1, ..., fcL, hL, out: MaskedLinear layers, a UnitGate after each hidden ReLU."""

    def __init__(self, opts: SupermaskMlpOptions, spec: InputSpec) -> None:
        super().__init__()
        if opts.outputs and opts.outputs < spec.n_outputs:
            raise ValueError(f"model.outputs = {opts.outputs} is fewer than the benchmark's {spec.n_outputs} output units")
        self.n_in = int(math.prod(spec.input_shape))
        self.n_outputs = opts.outputs or spec.n_outputs
        widths = [self.n_in, *opts.hidden, self.n_outputs]
        self.unit_layers = {}
        self.masked: dict[str, MaskedLayer] = {}
        for i, (fan_in, units) in enumerate(itertools.pairwise(widths), start=1):
            keep = er_keep_fraction(units, fan_in, opts.er_scale)
            layer = MaskedLinear(fan_in, units, opts.mask_rule, keep)
            if i < len(widths) - 1:
                setattr(self, f"fc{i}", layer)
                self.masked[f"fc{i}"] = layer
                setattr(self, f"h{i}", UnitGate(units))
                self.unit_layers[f"h{i}"] = units
            else:
                self.out = layer
                self.masked["out"] = layer
        self.readout = "out"
        self.reset_parameters()

    # -- forward ------------------------------------------------------------------------------
    def _hidden(self) -> list[tuple[str, MaskedLinear, UnitGate]]:
        return [(name, getattr(self, f"fc{i}"), getattr(self, name)) for i, name in enumerate(self.unit_layers, start=1)]

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        feats = {}
        h = x.reshape(x.shape[0], -1)
        for name, fc, gate in self._hidden():
            h = gate(torch.relu(fc(h)))
            feats[name] = h
        return feats

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h = x.reshape(x.shape[0], -1)
        for _, fc, gate in self._hidden():
            h = gate(torch.relu(fc(h)))
        logits: Tensor = self.out(h)
        return logits
