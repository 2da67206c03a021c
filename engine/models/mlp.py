"""Multi-layer perceptron main network with a multi-head (or shared) linear read-out.

Parameters in order: W_1, b_1, ..., W_L, b_L, W_out, b_out (PyTorch Linear layout [out, in]).
Masks act on each hidden layer after the nonlinearity, so a masked unit outputs exactly 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.benchmarks.base import InputSpec
from engine.models.base import MODELS, CLModel
from engine.models.options import MlpOptions


@MODELS.register("mlp")
class MLP(CLModel):
    def __init__(self, opts: MlpOptions, spec: InputSpec) -> None:
        super().__init__()
        self.n_in = int(math.prod(spec.input_shape))
        self.n_outputs = spec.n_outputs
        self.act = torch.relu if opts.activation == "relu" else torch.tanh
        widths = [self.n_in, *opts.hidden, self.n_outputs]
        self.weights = nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            self.weights.append(nn.Parameter(torch.empty(fan_out, fan_in)))
            self.weights.append(nn.Parameter(torch.empty(fan_out)))
        self.mask_sizes = list(opts.hidden)
        n = len(self.weights)
        self.output_params = (f"weights.{n - 2}", f"weights.{n - 1}")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch Linear init: U(±1/sqrt(fan_in)) for weights (kaiming a=√5) and biases.
        for i in range(0, len(self.weights), 2):
            w, b = self.weights[i], self.weights[i + 1]
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            bound = 1.0 / math.sqrt(w.shape[1])
            nn.init.uniform_(b, -bound, bound)

    def _forward(self, x: Tensor, lengths: Tensor | None, w: list[Tensor],
                 unit_masks: list[Tensor] | None) -> Tensor:
        h = x.reshape(x.shape[0], -1)
        n_layers = len(w) // 2
        for layer in range(n_layers):
            h = F.linear(h, w[2 * layer], w[2 * layer + 1])
            if layer < n_layers - 1:
                h = self.act(h)
                if unit_masks is not None:
                    h = h * unit_masks[layer]
        return h
