"""Multi-layer perceptron main network with a multi-head (or shared) linear read-out.

Submodules, in order: fc1, [bn1], h1, [drop1], fc2, ..., fcL, [bnL], hL, [dropL], out. `fc<i>` is
the i-th hidden nn.Linear, `bn<i>` its BatchNorm1d (option `batchnorm`: after the Linear, before
the nonlinearity), `h<i>` its unit layer (a `UnitGate` after the nonlinearity: what `features()`
reports as 'h<i>' and what masks act on, so a masked unit outputs exactly 0), `drop<i>` a Dropout
after it (option `dropout` > 0: features and masks see the activations before dropout), `out` the
read-out nn.Linear. Parameters in order: W_1, b_1, [γ_1, β_1], ..., W_out, b_out (PyTorch Linear
layout [out, in]): the order a hypernetwork's flat output is cut in. BatchNorm's running statistics
are buffers (in state_dict, left alone by functional_call). With both options off the modules,
parameters and initial draws are exactly those of every earlier version. Imports torch; never
textual/typer/rich.
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
    batchnorm: bool = opt(False, "BatchNorm1d after each hidden Linear, before the nonlinearity")
    dropout: float = opt(0.0, "Dropout(p) after each hidden nonlinearity (0 = none); p in [0, 1)")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "model." in front.
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden = {self.hidden!r}: every width must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout = {self.dropout!r} must be in [0, 1) (0 = no dropout)")
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
        # Registration order = parameter order (hypernetwork cutting, checkpoints). BatchNorm and
        # Dropout draw nothing at construction (γ = 1, β = 0), so the Linear draws stay as before.
        for i, (fan_in, units) in enumerate(itertools.pairwise(widths), start=1):
            setattr(self, f"fc{i}", empty_linear(fan_in, units))
            if opts.batchnorm:
                setattr(self, f"bn{i}", nn.BatchNorm1d(units))
            setattr(self, f"h{i}", UnitGate(units))
            if opts.dropout > 0:
                setattr(self, f"drop{i}", nn.Dropout(opts.dropout))
            self.unit_layers[f"h{i}"] = units
        self.out = empty_linear(widths[-1], self.n_outputs)
        self.readout = "out"
        self.reset_parameters()

    def _layers(self) -> list[tuple[str, nn.Linear, nn.BatchNorm1d | None, UnitGate, nn.Module | None]]:
        """(name, Linear, BatchNorm or None, unit gate, Dropout or None) per hidden layer."""
        return [(name, getattr(self, f"fc{i}"), getattr(self, f"bn{i}", None), getattr(self, name),
                 getattr(self, f"drop{i}", None))
                for i, name in enumerate(self.unit_layers, start=1)]

    def reset_parameters(self) -> None:
        # Layer by layer, W then b: the same draws in the same order as every earlier version.
        for _, fc, bn, _, _ in self._layers():
            linear_init_(fc.weight, fc.bias)
            if bn is not None:  # γ = 1, β = 0, fresh statistics: no draws
                bn.reset_parameters()
        linear_init_(self.out.weight, self.out.bias)

    def _hidden(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Each unit layer's activations (after the nonlinearity and gate, before dropout) and the read-out's input."""
        feats = {}
        h = x.reshape(x.shape[0], -1)
        for name, fc, bn, gate, drop in self._layers():
            z = fc(h)
            if bn is not None:
                z = bn(z)
            h = feats[name] = gate(self.act(z))
            if drop is not None:
                h = drop(h)
        return feats, h

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        return self._hidden(x)[0]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        logits: Tensor = self.out(self._hidden(x)[1])
        return logits

    def unit_wiring(self) -> list[UnitWiring]:
        """h<i> is made by fc<i> (normalised by bn<i> when present) and read by fc<i+1>, the last by the read-out."""
        layers = self._layers()
        nxt: list[nn.Module] = [fc for _, fc, _, _, _ in layers[1:]]
        nxt.append(self.out)
        return [UnitWiring(name, fc, bn, n) for (name, fc, bn, _, _), n in zip(layers, nxt)]
