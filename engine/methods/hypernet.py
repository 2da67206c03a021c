"""A chunked MLP hypernetwork: (chunk embedding, task embedding) pairs → one flat weight vector.

The module only maps task ids to flat vectors of `n_out` values; cutting them into a main
network's parameters and regularising them is the HNET method's job (engine/methods/hnet.py).
Imports torch only: no benchmarks, models, methods or loop.

Architecture (chunked hmlp, as in hypnettorch / cl_in_rnns, see the spec §4.5):
* task embeddings e_0..e_{T-1} ∈ R^temb_size, all created up front, ~ N(0, temb_std²);
* chunk embeddings c_1..c_K ∈ R^cemb_size shared by every task, ~ N(0, cemb_std²),
  K = ceil(n_out / chunk_size);
* an MLP on [c_k, e_t] (chunk embedding first) with ReLU hidden layers and a linear output of
  chunk_size values, biases on, PyTorch-Linear init (Kaiming-uniform a=√5, bias U(±1/√fan_in)).
The K chunk outputs are concatenated and cut to n_out values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ChunkedHypernet(nn.Module):
    def __init__(self, n_out: int, num_tasks: int, hidden: Sequence[int], chunk_size: int, temb_size: int,
                 cemb_size: int, temb_std: float, cemb_std: float) -> None:
        super().__init__()
        self.n_out = n_out
        self.chunk_size = chunk_size
        self.num_chunks = math.ceil(n_out / chunk_size)
        self.task_emb = nn.Parameter(torch.empty(num_tasks, temb_size))
        self.chunk_emb = nn.Parameter(torch.empty(self.num_chunks, cemb_size))
        nn.init.normal_(self.task_emb, 0.0, temb_std)
        nn.init.normal_(self.chunk_emb, 0.0, cemb_std)
        widths = [cemb_size + temb_size, *hidden, chunk_size]
        # nn.Linear initialises itself the PyTorch-Linear way, which is the init the reference uses.
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))

    def num_params(self) -> int:
        """Every trainable value: MLP weights and biases, all K chunk and all T task embeddings."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, tasks: Tensor) -> Tensor:
        """Long [n] task ids → [n, n_out] generated vectors; all n·K pairs go through the MLP as one batch."""
        n, k = tasks.numel(), self.num_chunks
        e = self.task_emb.index_select(0, tasks.reshape(-1))                        # [n, temb]
        h = torch.cat([self.chunk_emb.unsqueeze(0).expand(n, k, -1),
                       e.unsqueeze(1).expand(n, k, -1)], dim=2)                      # [n, K, cemb+temb]
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < last:
                h = F.relu(h)
        return h.reshape(n, k * self.chunk_size)[:, : self.n_out]                   # [n, n_out]
