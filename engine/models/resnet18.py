"""The modified torchvision ResNet-18 of the loss-of-plasticity reference (spec §10.1), as a CLModel.

Differences from torchvision's: a 3×3 stride-1 stem (no 7×7, no max-pool), and every conv has a
bias. Stages of width w, 2w, 4w, 8w (w = 64 in the reference; `width` shrinks it for tiny runs)
with two BasicBlocks each, BatchNorm after every conv, global average pool, then one Linear to
all `n_outputs` (100) units. Init: convs Kaiming-normal (fan_in, relu gain), the Linear
Kaiming-normal with linear gain, every bias 0, BN weight 1 and bias 0.

Unit layers (17, what `features()` reports and what continual backprop replaces): "stem", then
per block "layer<s>.<b>.g1" (after conv1-BN-ReLU) and "layer<s>.<b>.g2" (after the residual add
and ReLU), except that the last block's second one is "pool": the pooled [B, 8w] vector. Conv
features are [B, C, H, W]; a unit is a channel. Each is a gate submodule (`ChannelGate` or
`UnitGate`) so that hooks see it and masks act on it. `unit_wiring()` pairs each unit layer with its
incoming conv, its BN and the next main-path weight layer (downsample paths excluded).
Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engine.benchmarks.base import InputSpec
from engine.models.base import CLModel, UnitGate, UnitWiring
from engine.registry import MODELS
from engine.schema import opt


@dataclass(frozen=True)
class Resnet18Options:
    """ResNet-18 for 32×32 images: 3×3 stem, no max-pool, biased convs (the loss-of-plasticity variant)."""

    width: int = opt(64, "channels of the first stage (stages: w, 2w, 4w, 8w); 64 = the reference")

    def __post_init__(self) -> None:
        if not 1 <= self.width <= 1024:
            raise ValueError(f"width = {self.width!r} must be 1 to 1024")


class ChannelGate(nn.Module):
    """Identity on [B, C, H, W] feature maps, times a per-channel `gain` while one is set."""

    def __init__(self, units: int) -> None:
        super().__init__()
        self.units = units
        self.gain: Tensor | None = None

    def forward(self, h: Tensor) -> Tensor:
        return h if self.gain is None else h * self.gain.view(1, -1, 1, 1)


class BasicBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, + shortcut (1×1 conv + BN when the shape changes), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=True)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.g1 = ChannelGate(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=True)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.g2 = ChannelGate(c_out)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=True), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(output, the first conv's feature map)."""
        a = self.g1(torch.relu(self.bn1(self.conv1(x))))
        short = x if self.downsample is None else self.downsample(x)
        return self.g2(torch.relu(self.bn2(self.conv2(a)) + short)), a


@MODELS.register(Resnet18Options)
class ResNet18(CLModel):
    def __init__(self, opts: Resnet18Options, spec: InputSpec) -> None:
        super().__init__()
        if len(spec.input_shape) != 3:
            raise ValueError(f"resnet18 needs image inputs [C, H, W], got shape {spec.input_shape}")
        w = opts.width
        self.n_outputs = spec.n_outputs
        self.conv1 = nn.Conv2d(spec.input_shape[0], w, 3, 1, 1, bias=True)
        self.bn1 = nn.BatchNorm2d(w)
        self.stem = ChannelGate(w)
        widths = [w, 2 * w, 4 * w, 8 * w]
        c_in = w
        for s, c in enumerate(widths, start=1):
            setattr(self, f"layer{s}", nn.Sequential(BasicBlock(c_in, c, 1 if s == 1 else 2), BasicBlock(c, c, 1)))
            c_in = c
        self.pool = UnitGate(8 * w)
        self.fc = nn.Linear(8 * w, self.n_outputs)
        self.readout = "fc"
        self.unit_layers = {"stem": w}
        for s, c in enumerate(widths, start=1):
            for b in (0, 1):
                self.unit_layers[f"layer{s}.{b}.g1"] = c
                if not (s == 4 and b == 1):
                    self.unit_layers[f"layer{s}.{b}.g2"] = c
        self.unit_layers["pool"] = 8 * w
        self.reset_parameters()

    def blocks(self) -> list[BasicBlock]:
        return [blk for s in range(1, 5) for blk in getattr(self, f"layer{s}")]

    def reset_parameters(self) -> None:
        # Module order (stem, blocks, fc), each weight drawn from the global torch RNG.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                assert m.bias is not None  # every conv here has one
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
                nn.init.zeros_(m.bias)

    def _run(self, x: Tensor, feats: dict[str, Tensor] | None) -> Tensor:
        h = self.stem(torch.relu(self.bn1(self.conv1(x))))
        if feats is not None:
            feats["stem"] = h
        for s in range(1, 5):
            for b, blk in enumerate(getattr(self, f"layer{s}")):
                h, a = blk(h)
                if feats is not None:
                    feats[f"layer{s}.{b}.g1"] = a
                    if not (s == 4 and b == 1):
                        feats[f"layer{s}.{b}.g2"] = h
        pooled: Tensor = self.pool(h.mean(dim=(2, 3)))
        if feats is not None:
            feats["pool"] = pooled
        return pooled

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        feats: dict[str, Tensor] = {}
        self._run(x, feats)
        return feats

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        logits: Tensor = self.fc(self._run(x, None))
        return logits

    def unit_wiring(self) -> list[UnitWiring]:
        """Main-path convs in forward order, each with its BN and the next weight layer (fc last)."""
        convs: list[tuple[str, nn.Conv2d, nn.BatchNorm2d]] = [("stem", self.conv1, self.bn1)]
        for s in range(1, 5):
            for b, blk in enumerate(getattr(self, f"layer{s}")):
                convs.append((f"layer{s}.{b}.g1", blk.conv1, blk.bn1))
                convs.append((f"layer{s}.{b}.g2" if not (s == 4 and b == 1) else "pool", blk.conv2, blk.bn2))
        nxt: list[nn.Module] = [c for _, c, _ in convs[1:]] + [self.fc]
        return [UnitWiring(name, conv, bn, n) for (name, conv, bn), n in zip(convs, nxt)]
