"""The interface every main network offers to the methods (MLP now, LSTM for SSMNIST).

Methods never depend on a concrete model, only on this:

* `forward(x, lengths=None, weights=None, unit_masks=None)` → logits [B, n_outputs] at the read-out
  step. `weights` (a list in `param_shapes()` order) replaces the model's own parameters for this
  call, which is how a hypernetwork drives the network; `unit_masks` (one [units] tensor per entry
  of `mask_sizes`, 0/1) switches hidden units off so that their output is exactly zero.
* `param_shapes()` — ordered (name, shape) of all parameters: the order an external flat weight
  vector is cut in.
* `output_params` — names of the read-out weight and bias; their rows are output units, so a
  method can pick one head's rows (HNET's regulariser leaves other heads' rows out).
* `reset_parameters()` — a fresh initialisation from the torch RNG (from-scratch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from engine.benchmarks.base import InputSpec
from engine.registry import Registry

MODELS: Registry[Any] = Registry("model")


class CLModel(nn.Module):
    """Base class: subclasses define their parameters in a fixed order and `_forward`."""

    n_outputs: int
    mask_sizes: list[int]
    output_params: tuple[str, str]

    def param_shapes(self) -> list[tuple[str, torch.Size]]:
        return [(n, p.shape) for n, p in self.named_parameters()]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def split_flat(self, flat: Tensor) -> list[Tensor]:
        """Cut a flat vector (≥ num_params long) into tensors shaped like the parameters, in order."""
        out, i = [], 0
        for _, shape in self.param_shapes():
            n = int(torch.Size(shape).numel())
            out.append(flat[i : i + n].view(shape))
            i += n
        return out

    def forward(self, x: Tensor, lengths: Tensor | None = None, weights: list[Tensor] | None = None,
                unit_masks: list[Tensor] | None = None) -> Tensor:
        w = list(self.parameters()) if weights is None else weights
        return self._forward(x, lengths, w, unit_masks)

    def _forward(self, x: Tensor, lengths: Tensor | None, w: list[Tensor],
                 unit_masks: list[Tensor] | None) -> Tensor:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        raise NotImplementedError


def build_model(name: str, options: Any, spec: InputSpec) -> CLModel:
    return MODELS.get(name)(options, spec)
