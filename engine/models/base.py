"""The contract every main network offers to the methods and analyses (MLP now, LSTM for SSMNIST).

A model is an ordinary `nn.Module` built from submodules (nn.Linear, nn.Conv2d, nn.BatchNorm, an
LSTM layer...), so forward hooks, buffers in `state_dict` and `torch.func.functional_call` work on
it. Methods never depend on a concrete model, only on this (`CLModel`):

* `forward(x, lengths=None)` → logits [B, n_outputs] at the read-out step (`lengths` [B]: the
  number of valid steps of each sequence; None for non-sequential inputs or the last step).
* `features(x, lengths=None)` → dict name → [B, units] hidden activations, one entry per unit layer
  (an MLP: every hidden layer after its nonlinearity; the LSTM: its hidden state at the read-out
  step). These are exactly what `forward` feeds onwards: `logits == model.get_submodule(readout)(
  features[last])` in eval mode (in train mode a dropout may sit between, after the unit layer).
  Probes, sparsity and dormant-unit analyses read them.
* `unit_layers: dict[str, int]` — layer name → units, in forward order: the layers that masking
  and regrowth act on. Each name is also a submodule (`model.get_submodule(name)`) that
  1. returns that layer's [B, units] activations from its forward, so a forward hook on it sees
     them (the same tensor `features` reports), and
  2. has a `gain` attribute (None, or a [units] tensor) that scales its units: the per-layer unit
     gate. Set gains only through `with model.gated({name: gain, ...}):` (they are reset on exit,
     also on errors). A 0/1 gain switches units off so that they output exactly 0. Where the gain
     acts is the layer's business: `UnitGate` multiplies after the nonlinearity; the LSTM applies
     it inside the output tanh (see engine/models/lstm.py).
* `readout: str` — the name of the read-out `nn.Linear`; its rows are output units, so a method
  can tell which entries belong to which head (HNET's regulariser leaves other heads' rows out).
* `reset_parameters()` — a fresh initialisation from the global torch RNG (from-scratch).
* `unit_wiring()` (optional) — per unit layer, the modules that make, normalise and read its units
  (continual backprop re-initialises units through it). Conv models report [B, C, H, W] features.

External weights (a hypernetwork's output, EWC's per-sample gradients under vmap) go through
`torch.func.functional_call(model, {name: tensor}, (x, lengths))`; `params_from_flat` cuts one flat
vector into that dict in `named_parameters()` order (parameters the dict leaves out, and every
buffer, stay the model's own). Gains are not parameters or buffers: they are in no state_dict and
untouched by functional_call.

Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from engine.benchmarks.base import InputSpec
from engine.errors import ConfigError
from engine.registry import MODELS


class UnitGate(nn.Module):
    """Identity on [B, units] activations, times `gain` while one is set (see the module doc).

    A unit layer of its own, so hooks and features have a module to attach to even when no mask
    is ever used; costs one multiply per forward only while a gain is set.
    """

    def __init__(self, units: int) -> None:
        super().__init__()
        self.units = units
        self.gain: Tensor | None = None

    def forward(self, h: Tensor) -> Tensor:
        return h if self.gain is None else h * self.gain

    def extra_repr(self) -> str:
        return f"units={self.units}"


class CLModel(nn.Module):
    """Base class of the main networks: the attributes and helpers of the contract above."""

    n_outputs: int
    unit_layers: dict[str, int]
    readout: str

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    if TYPE_CHECKING:  # nn.Module.__call__ is typed as returning Any; ours returns the logits
        def __call__(self, x: Tensor, lengths: Tensor | None = None) -> Tensor: ...

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        raise NotImplementedError

    def unit_wiring(self) -> list[UnitWiring]:
        """Each unit layer's incoming, norm and outgoing modules (optional; see UnitWiring)."""
        raise ConfigError(f"model {type(self).__name__} does not describe its unit wiring, which this method needs")

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @contextmanager
    def gated(self, gains: dict[str, Tensor]) -> Iterator[None]:
        """Scale the units of the named unit layers by `gains` for the forwards inside the block."""
        unknown = set(gains) - set(self.unit_layers)
        if unknown:
            raise KeyError(f"not unit layers: {sorted(unknown)}; this model has {list(self.unit_layers)}")
        layers: dict[str, Any] = {name: self.get_submodule(name) for name in gains}  # each has .gain
        try:
            for name, gain in gains.items():
                layers[name].gain = gain
            yield
        finally:
            for layer in layers.values():
                layer.gain = None


@dataclass(frozen=True)
class UnitWiring:
    """How one unit layer is wired, for methods that re-initialise units (continual backprop):
    `incoming` makes its units (a unit = an output row / channel), `norm` normalises them (or None),
    `outgoing` reads them (a unit = an input column / channel)."""

    name: str
    incoming: nn.Module
    norm: nn.Module | None
    outgoing: nn.Module


def params_from_flat(model: nn.Module, flat: Tensor) -> dict[str, Tensor]:
    """Cut a flat vector (≥ the model's parameter count) into {name: tensor} shaped like the
    parameters, in `named_parameters()` order: views of `flat`, so gradients reach its source."""
    out, i = {}, 0
    for name, p in model.named_parameters():
        n = p.numel()
        out[name] = flat[i : i + n].view(p.shape)
        i += n
    return out


def build_model(name: str, options: Any, spec: InputSpec) -> CLModel:
    """The registered model `name` for inputs/outputs `spec` (initialised from the global torch RNG)."""
    model: CLModel = MODELS.get(name).impl(options, spec)
    return model


def linear_init_(weight: Tensor, bias: Tensor) -> None:
    """PyTorch's Linear init of one (W [out, in], b [out]) pair, spelt out so that the draws never
    depend on torch's version: W by kaiming_uniform a=√5 (= U(±1/√in)), then b ~ U(±1/√in)."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    bound = 1.0 / math.sqrt(weight.shape[1])
    nn.init.uniform_(bias, -bound, bound)


def empty_linear(n_in: int, n_out: int) -> nn.Linear:
    """An nn.Linear whose construction draws nothing from the RNG (the model initialises it later):
    built on the meta device, then given uninitialised CPU storage (what torch's skip_init does)."""
    return nn.Linear(n_in, n_out, device="meta").to_empty(device="cpu")
