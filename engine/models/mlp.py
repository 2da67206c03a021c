"""Multi-layer perceptron main network with a multi-head (or shared) linear read-out.

Submodules, in order: fc1, h1, fc2, h2, ..., fcL, hL, out. `fc<i>` is the i-th hidden nn.Linear,
`h<i>` its unit layer (a `UnitGate` after the nonlinearity: what `features()` reports as 'h<i>'
and what masks act on, so a masked unit outputs exactly 0), `out` the read-out nn.Linear.
Parameters in order: W_1, b_1, ..., W_L, b_L, W_out, b_out (PyTorch Linear layout [out, in]): the
order a hypernetwork's flat output is cut in. Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from engine.benchmarks.base import InputSpec
from engine.models.base import CLModel, UnitGate, UnitWiring, empty_linear, linear_init_
from engine.registry import MODELS
from engine.schema import opt


@dataclass(frozen=True)
class MlpOptions:
    """A fully connected network on the flattened input."""

    hidden: list[int] = opt([400, 400], "widths of the hidden layers")  # noqa: RUF009 (opt copies lists per instance)
    activation: Literal["relu", "tanh"] = opt("relu", "hidden nonlinearity")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "model." in front.
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden = {self.hidden!r}: every width must be >= 1")
        from engine.schema import check_fits

        # Weights between hidden layers alone (the input and head layers come on top), ×4 for
        # gradients and Adam's two moments, float32.
        between = sum(float(a) * b for a, b in zip(self.hidden, self.hidden[1:])) + sum(map(float, self.hidden))
        check_fits("hidden", self.hidden, between * 4 * 4, "the MLP's weights")


@MODELS.register(MlpOptions)
class MLP(CLModel):
    def __init__(self, opts: MlpOptions, spec: InputSpec) -> None:
        super().__init__()
        self.n_in = int(math.prod(spec.input_shape))
        self.n_outputs = spec.n_outputs
        self.act = torch.relu if opts.activation == "relu" else torch.tanh
        widths = [self.n_in, *opts.hidden]
        self.unit_layers = {}
        # Registration order = parameter order (hypernetwork cutting, checkpoints).
        for i, (fan_in, units) in enumerate(itertools.pairwise(widths), start=1):
            setattr(self, f"fc{i}", empty_linear(fan_in, units))
            setattr(self, f"h{i}", UnitGate(units))
            self.unit_layers[f"h{i}"] = units
        self.out = empty_linear(widths[-1], self.n_outputs)
        self.readout = "out"
        self.reset_parameters()

    def _layers(self) -> list[tuple[str, nn.Linear, UnitGate]]:
        return [(name, getattr(self, f"fc{i}"), getattr(self, name))
                for i, name in enumerate(self.unit_layers, start=1)]

    def reset_parameters(self) -> None:
        # Layer by layer, W then b: the same draws in the same order as every earlier version.
        for _, fc, _ in self._layers():
            linear_init_(fc.weight, fc.bias)
        linear_init_(self.out.weight, self.out.bias)

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        feats = {}
        h = x.reshape(x.shape[0], -1)
        for name, fc, gate in self._layers():
            h = gate(self.act(fc(h)))
            feats[name] = h
        return feats

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h = x.reshape(x.shape[0], -1)
        for _, fc, gate in self._layers():
            h = gate(self.act(fc(h)))
        logits: Tensor = self.out(h)
        return logits

    def unit_wiring(self) -> list[UnitWiring]:
        """h<i> is made by fc<i> (no norm layer) and read by fc<i+1>, the last by the read-out."""
        layers = self._layers()
        nxt: list[nn.Module] = [fc for _, fc, _ in layers[1:]]
        nxt.append(self.out)
        return [UnitWiring(name, fc, None, n) for (name, fc, _), n in zip(layers, nxt)]
