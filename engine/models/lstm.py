"""One-layer LSTM main network with a linear read-out at the last unpadded step (spec §2.1).

Parameters, in this order (the order an external weight list, e.g. a hypernetwork's, is cut in):
W_ih [4H, n_in], b_ih [4H], W_hh [4H, H], b_hh [4H], W_out [n_out, H], b_out [n_out]; gate blocks
i, f, g, o. Every matrix and its bias is U(±1/√fan_in) with the matrix's fan_in (spec §2.1 GOTCHA:
not nn.LSTM's U(±1/√H) everywhere). h_0 = c_0 = 0.

Masks (`unit_masks=[mask [H]]`) follow the reference's context-mod placement: the gain multiplies the
cell state inside the output tanh, h_t = o_t ⊙ tanh(gain ⊙ c_t), and c_t itself is carried
unmodulated. With a 0/1 gain a masked unit's h is exactly 0 at every step.

Two implementations of the same function:
* `reference`: the formulas stepped over time in a Python loop; slow, obviously right, and it takes
  any gain (not only 0/1). Tests hold the fast path to it.
* `fast`: torch's fused LSTM (`torch._VF.lstm`, what nn.LSTM calls; cuDNN on GPU, oneDNN on CPU)
  with the weights passed per call, so external weights work. The fused cell has no gain, but for a
  0/1 mask an exact equivalent exists: a masked unit's h only ever reaches the recurrence (W_hh's
  columns) and the read-out, so zeroing W_hh's columns of masked units and masking the read-out h
  gives every unmasked unit, the logits and every gradient exactly what the reference computes
  (masked units' gate rows get zero gradient either way). Their internal h is not zero, but nothing
  can see it. Cost: one [4H, H] multiply per call.
* `auto` (default) uses `fast` unless a mask is not 0/1 (checking costs one device sync per call).

On CUDA the per-call weights are not one contiguous cuDNN buffer, so cuDNN copies them into one at
every call (about 1 MB for H = 256: small next to the recurrence) and warns about it each time; the
first CUDA call installs a filter for that one warning (`_quiet_cudnn_weight_warning`).

Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.benchmarks.base import InputSpec
from engine.models.base import MODELS, CLModel
from engine.models.options import LstmOptions


_CUDNN_WARNING = "RNN module weights are not part of single contiguous chunk of memory"
_cudnn_warning_filtered = False


def _quiet_cudnn_weight_warning() -> None:
    """Ignore cuDNN's 'weights not contiguous' warning: per-call weights are expected here (see above)."""
    global _cudnn_warning_filtered
    if not _cudnn_warning_filtered:
        warnings.filterwarnings("ignore", message=_CUDNN_WARNING, category=UserWarning)
        _cudnn_warning_filtered = True


def _readout_index(lengths: Tensor | None, batch: int, steps: int, device: torch.device) -> Tensor:
    """Time index of each sample's last unpadded step (lengths − 1; the last step without lengths)."""
    if lengths is None:
        return torch.full((batch,), steps - 1, dtype=torch.long, device=device)
    return lengths.to(device=device, dtype=torch.long) - 1


def lstm_reference(x: Tensor, lengths: Tensor | None, w: list[Tensor], gain: Tensor | None = None) -> Tensor:
    """Logits [B, n_out] of the LSTM stepped by hand (spec §2.1); `gain` [H] scales c inside tanh."""
    w_ih, b_ih, w_hh, b_hh, w_out, b_out = w
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    h = x.new_zeros(batch, hidden)
    c = x.new_zeros(batch, hidden)
    x_part = F.linear(x, w_ih, b_ih)  # [B, T, 4H]: the input's share of every step's gates at once
    hs = []
    for t in range(steps):
        gates = x_part[:, t] + F.linear(h, w_hh, b_hh)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c if gain is None else gain * c)
        hs.append(h)
    idx = _readout_index(lengths, batch, steps, x.device)
    h_last = torch.stack(hs, dim=1)[torch.arange(batch, device=x.device), idx]
    return F.linear(h_last, w_out, b_out)


def lstm_fast(x: Tensor, lengths: Tensor | None, w: list[Tensor], mask: Tensor | None = None,
              train: bool = True) -> Tensor:
    """Same logits as `lstm_reference` through torch's fused LSTM; `mask` must be 0/1 (see module doc)."""
    w_ih, b_ih, w_hh, b_hh, w_out, b_out = w
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    if mask is not None:
        w_hh = w_hh * mask  # a masked unit's h never enters the recurrence ...
    h0 = x.new_zeros(1, batch, hidden)
    if x.is_cuda:
        _quiet_cudnn_weight_warning()
    # _VF.lstm(input, (h0, c0), [w_ih, w_hh, b_ih, b_hh], has_biases, num_layers, dropout, train,
    # bidirectional, batch_first): exactly what nn.LSTM.forward calls.
    out, _, _ = torch._VF.lstm(x, (h0, h0), [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, train, False, True)
    idx = _readout_index(lengths, batch, steps, x.device)
    h_last = out[torch.arange(batch, device=x.device), idx]
    if mask is not None:
        h_last = h_last * mask  # ... nor the read-out
    return F.linear(h_last, w_out, b_out)


def is_binary(mask: Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())


@MODELS.register("lstm")
class LSTM(CLModel):
    """x [B, T, n_in] float, lengths [B] (≥ 1, ≤ T) → logits [B, n_out] at step lengths − 1."""

    def __init__(self, opts: LstmOptions, spec: InputSpec) -> None:
        super().__init__()
        self.n_in = int(spec.input_shape[-1])
        self.hidden = opts.hidden
        self.n_outputs = spec.n_outputs
        self.impl = opts.impl
        h4 = 4 * opts.hidden
        # Registration order = parameter order (param_shapes, external weights, checkpoints).
        self.weight_ih = nn.Parameter(torch.empty(h4, self.n_in))
        self.bias_ih = nn.Parameter(torch.empty(h4))
        self.weight_hh = nn.Parameter(torch.empty(h4, opts.hidden))
        self.bias_hh = nn.Parameter(torch.empty(h4))
        self.weight_out = nn.Parameter(torch.empty(self.n_outputs, opts.hidden))
        self.bias_out = nn.Parameter(torch.empty(self.n_outputs))
        self.mask_sizes = [opts.hidden]
        self.output_params = ("weight_out", "bias_out")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch-Linear init on every pair (kaiming_uniform a=√5 → U(±1/√fan_in)), W then b.
        for w, b in ((self.weight_ih, self.bias_ih), (self.weight_hh, self.bias_hh), (self.weight_out, self.bias_out)):
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            bound = 1.0 / math.sqrt(w.shape[1])
            nn.init.uniform_(b, -bound, bound)

    def _forward(self, x: Tensor, lengths: Tensor | None, w: list[Tensor],
                 unit_masks: list[Tensor] | None) -> Tensor:
        mask = unit_masks[0] if unit_masks is not None else None
        impl = self.impl
        if impl == "auto":
            impl = "fast" if mask is None or is_binary(mask) else "reference"
        if impl == "reference":
            return lstm_reference(x, lengths, w, mask)
        if mask is not None and self.impl == "fast" and not is_binary(mask):
            raise ValueError("the fast LSTM takes only 0/1 unit masks; use impl = 'reference' or 'auto'")
        return lstm_fast(x, lengths, w, mask, self.training)
