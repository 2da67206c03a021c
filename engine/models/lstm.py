"""One-layer LSTM main network with a linear read-out at the last unpadded step (spec §2.1).

Submodules: `lstm` (an `LSTMLayer`: the recurrence, and the model's one unit layer) and `out` (the
read-out nn.Linear). Parameters, in this order (the order an external flat weight vector, e.g. a
hypernetwork's, is cut in): lstm.weight_ih [4H, n_in], lstm.bias_ih [4H], lstm.weight_hh [4H, H],
lstm.bias_hh [4H], out.weight [n_out, H], out.bias [n_out]; gate blocks i, f, g, o. Every matrix and
its bias is U(±1/√fan_in) with the matrix's fan_in (spec §2.1 GOTCHA: not nn.LSTM's U(±1/√H)
everywhere). h_0 = c_0 = 0. `features()` = {'lstm': h at each sample's read-out step} [B, H], the
LSTMLayer's forward output (what a forward hook on `model.lstm` sees).

Unit gains (`with model.gated({'lstm': gain}):`, gain [H]) follow the reference's context-mod
placement: the gain multiplies the cell state inside the output tanh, h_t = o_t ⊙ tanh(gain ⊙ c_t),
and c_t itself is carried unmodulated. With a 0/1 gain a masked unit's h is exactly 0 at every step.

Two implementations of the same function:
* `reference`: the formulas stepped over time in a Python loop; slow, obviously right, and it takes
  any gain (not only 0/1). Tests hold the fast path to it.
* `fast`: torch's fused LSTM (`torch._VF.lstm`, what nn.LSTM calls; cuDNN on GPU, oneDNN on CPU)
  with the weights passed per call, so `functional_call`'s external weights work. The fused cell
  has no gain, but for a 0/1 mask an exact equivalent exists: a masked unit's h only ever reaches
  the recurrence (W_hh's columns) and the read-out, so zeroing W_hh's columns of masked units and
  masking the read-out h gives every unmasked unit, the logits and every gradient exactly what the
  reference computes (masked units' gate rows get zero gradient either way). Their internal h is
  not zero, but nothing can see it. Cost: one [4H, H] multiply per call.
* `auto` (default) uses `fast` unless a gain is not 0/1 (checking costs one device sync per call).

cuDNN refuses an RNN backward after a forward in inference mode ("cudnn RNN backward can only be
called in training mode", spec §7 item 21), which EWC's Fisher needs (gradients with the model in
eval mode). A one-layer LSTM without dropout computes the same function in both modes, so on CUDA
the fused call runs in training mode whenever autograd records (`fused_train_mode`); evaluation
under no_grad keeps cuDNN's faster inference mode, and CPU calls are unchanged.

On CUDA the per-call weights are not one contiguous cuDNN buffer, so cuDNN copies them into one at
every call (about 1 MB for H = 256: small next to the recurrence) and warns about it each time; the
first CUDA call installs a filter for that one warning (`_quiet_cudnn_weight_warning`).

Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.benchmarks.base import InputSpec
from engine.models.base import CLModel, empty_linear, linear_init_
from engine.registry import MODELS
from engine.schema import opt

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
    """h at the read-out step [B, H] of the LSTM stepped by hand (spec §2.1); `gain` [H] scales c
    inside tanh. `w` = [W_ih, b_ih, W_hh, b_hh]."""
    w_ih, b_ih, w_hh, b_hh = w
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    h = x.new_zeros(batch, hidden)
    c = x.new_zeros(batch, hidden)
    x_part = F.linear(x, w_ih, b_ih)  # [B, T, 4H]: the input's share of every step's gates at once
    # unbind, not x_part[:, t]: each slice's backward would add a zero-filled [B, T, 4H] tensor, T
    # times (quadratic in T); unbind's backward stacks the T step gradients once (linear).
    x_steps = x_part.unbind(1)
    hs = []
    for t in range(steps):
        gates = x_steps[t] + F.linear(h, w_hh, b_hh)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c if gain is None else gain * c)
        hs.append(h)
    idx = _readout_index(lengths, batch, steps, x.device)
    return torch.stack(hs, dim=1)[torch.arange(batch, device=x.device), idx]


def lstm_fast(x: Tensor, lengths: Tensor | None, w: list[Tensor], mask: Tensor | None = None,
              train: bool = True) -> Tensor:
    """Same [B, H] as `lstm_reference` through torch's fused LSTM; `mask` must be 0/1 (see module doc)."""
    w_ih, b_ih, w_hh, b_hh = w
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
    return h_last


CUDNN_DEVICES = ("cuda",)
"""Device types whose fused RNN refuses a backward through an inference-mode forward (tests widen it)."""


def fused_train_mode(training: bool, x: Tensor) -> bool:
    """The `train` flag for the fused LSTM: the module's mode, except on cuDNN devices while autograd
    records, where it must be True for a backward to exist (same function: one layer, no dropout)."""
    return training or (x.device.type in CUDNN_DEVICES and torch.is_grad_enabled())


def is_binary(mask: Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())


class LSTMLayer(nn.Module):
    """The recurrence: x [B, T, n_in], lengths → h [B, H] at each sample's read-out step.

    The model's unit layer: `gain` (None or [H], set through `CLModel.gated`) acts inside the output
    tanh; `impl` picks the implementation (module doc).
    """

    def __init__(self, n_in: int, hidden: int, impl: str) -> None:
        super().__init__()
        self.hidden = hidden
        self.impl = impl
        self.gain: Tensor | None = None
        h4 = 4 * hidden
        # Registration order = parameter order (external weights, checkpoints).
        self.weight_ih = nn.Parameter(torch.empty(h4, n_in))
        self.bias_ih = nn.Parameter(torch.empty(h4))
        self.weight_hh = nn.Parameter(torch.empty(h4, hidden))
        self.bias_hh = nn.Parameter(torch.empty(h4))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        w: list[Tensor] = [self.weight_ih, self.bias_ih, self.weight_hh, self.bias_hh]
        gain = self.gain
        impl = self.impl
        if impl == "auto":
            impl = "fast" if gain is None or is_binary(gain) else "reference"
        if impl == "reference":
            return lstm_reference(x, lengths, w, gain)
        if gain is not None and self.impl == "fast" and not is_binary(gain):
            raise ValueError("the fast LSTM takes only 0/1 unit masks; use impl = 'reference' or 'auto'")
        return lstm_fast(x, lengths, w, gain, fused_train_mode(self.training, x))

    def extra_repr(self) -> str:
        return f"n_in={self.weight_ih.shape[1]}, hidden={self.hidden}, impl={self.impl!r}"


@dataclass(frozen=True)
class LstmOptions:
    """One LSTM layer over the sequence, read out at each sample's last unpadded step."""

    hidden: int = opt(256, "LSTM units (one layer; read-out at the last unpadded step)")
    impl: Literal["auto", "fast", "reference"] = opt("auto", "'fast' = torch's fused LSTM (cuDNN on GPU); 'reference' = a step-by-step Python loop; 'auto' = fast unless the masks are not 0/1")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "model." in front.
        if self.hidden < 1:
            raise ValueError(f"hidden = {self.hidden!r} must be >= 1")
        from engine.schema import check_fits

        # 4·h² recurrent weights alone, ×4 for gradients and Adam's two moments, float32.
        check_fits("hidden", self.hidden, 4 * float(self.hidden) ** 2 * 4 * 4, "the LSTM's weights")


@MODELS.register(LstmOptions)
class LSTM(CLModel):
    """x [B, T, n_in] float, lengths [B] (≥ 1, ≤ T) → logits [B, n_out] at step lengths − 1."""

    def __init__(self, opts: LstmOptions, spec: InputSpec) -> None:
        super().__init__()
        self.n_in = int(spec.input_shape[-1])
        self.hidden = opts.hidden
        self.n_outputs = spec.n_outputs
        self.lstm = LSTMLayer(self.n_in, opts.hidden, opts.impl)
        self.out = empty_linear(opts.hidden, self.n_outputs)
        self.unit_layers = {"lstm": opts.hidden}
        self.readout = "out"
        self.reset_parameters()

    @property
    def impl(self) -> str:
        return self.lstm.impl

    @impl.setter
    def impl(self, value: str) -> None:
        self.lstm.impl = value

    def reset_parameters(self) -> None:
        # PyTorch-Linear init on every pair (kaiming_uniform a=√5 → U(±1/√fan_in)), W then b.
        r = self.lstm
        for w, b in ((r.weight_ih, r.bias_ih), (r.weight_hh, r.bias_hh), (self.out.weight, self.out.bias)):
            linear_init_(w, b)

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        return {"lstm": self.lstm(x, lengths)}

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        logits: Tensor = self.out(self.lstm(x, lengths))
        return logits
