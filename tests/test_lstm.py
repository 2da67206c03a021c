"""The LSTM main network (spec §2.1): parameter layout and count, init, fused path = reference, masks.

CPU, float32, tiny sizes except for the parameter counts. The fused path must match the
step-by-step reference to 1e-5 in logits and in every gradient, with variable lengths, unit masks
and external weights.
"""

from __future__ import annotations

import pytest
import torch

from engine.benchmarks.base import InputSpec
from engine.models.base import MODELS, build_model
from engine.models.lstm import LSTM, lstm_fast, lstm_reference
from engine.models.options import LstmOptions

TOL = dict(rtol=0, atol=1e-5)


def _model(hidden: int = 16, n_in: int = 4, n_out: int = 10, impl: str = "auto") -> LSTM:
    return LSTM(LstmOptions(hidden=hidden, impl=impl), InputSpec((30, n_in), n_out, sequential=True))


def _inputs(batch: int = 7, steps: int = 30, n_in: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SSMNIST-like raw integers: a large absolute first row, then small moves; varied lengths."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-1, 2, (batch, steps, n_in), generator=g).float()
    x[:, 0, :2] = torch.randint(0, 25, (batch, 2), generator=g).float()
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    lengths[0], lengths[1] = steps, 1
    return x, lengths


def _mask(hidden: int, seed: int = 1) -> torch.Tensor:
    m = (torch.rand(hidden, generator=torch.Generator().manual_seed(seed)) > 0.4).float()
    m[0], m[1] = 0.0, 1.0
    return m


def _outputs_and_grads(fn, x, lengths, w, mask):
    out = fn(x, lengths, w, mask)
    # A loss that weights every logit differently, so a wrong read-out step or unit shows up.
    loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum() + out.square().sum()
    return out, torch.autograd.grad(loss, w)


def test_registered_and_parameter_counts() -> None:
    assert MODELS.get("lstm") is LSTM
    spec = InputSpec((117, 4), 10, sequential=True)
    model = build_model("lstm", LstmOptions(), spec)
    assert model.num_params() == 270_858  # spec §2.1: n_in = 4, multi-head n_out = 10
    assert build_model("lstm", LstmOptions(), InputSpec((117, 9), 10, True)).num_params() == 275_978  # with TI
    assert [(n, tuple(s)) for n, s in model.param_shapes()] == [
        ("weight_ih", (1024, 4)), ("bias_ih", (1024,)), ("weight_hh", (1024, 256)), ("bias_hh", (1024,)),
        ("weight_out", (10, 256)), ("bias_out", (10,)),
    ]
    assert model.mask_sizes == [256]
    assert model.output_params == ("weight_out", "bias_out")
    names = dict(model.named_parameters())
    assert all(n in names for n in model.output_params)


def test_init_is_uniform_with_each_matrix_fan_in() -> None:
    torch.manual_seed(0)
    model = build_model("lstm", LstmOptions(), InputSpec((117, 4), 10, True))
    # Bias bounds use the fan_in of the paired matrix: ±1/2 for the input pair, ±1/16 for the others.
    bounds = {"weight_ih": 0.5, "bias_ih": 0.5, "weight_hh": 1 / 16, "bias_hh": 1 / 16,
              "weight_out": 1 / 16, "bias_out": 1 / 16}
    for name, p in model.named_parameters():
        b = bounds[name]
        assert p.abs().max() <= b
        if p.numel() >= 1000:  # fills the range (not nn.LSTM's ±1/16 on the input weights), centred
            assert p.abs().max() > 0.95 * b
            assert abs(p.mean().item()) < 0.1 * b
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


@pytest.mark.parametrize("masked", [False, True])
def test_fast_equals_reference(masked: bool) -> None:
    torch.manual_seed(0)
    model = _model(hidden=24)
    x, lengths = _inputs()
    w = list(model.parameters())
    mask = _mask(24) if masked else None
    ref, g_ref = _outputs_and_grads(lstm_reference, x, lengths, w, mask)
    fast, g_fast = _outputs_and_grads(lstm_fast, x, lengths, w, mask)
    torch.testing.assert_close(fast, ref, **TOL)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("masked", [False, True])
def test_external_weights_through_both_paths(masked: bool) -> None:
    """weights=[...] (a hypernetwork's output) replaces the model's own; gradients reach its source."""
    torch.manual_seed(0)
    model = _model(hidden=12)
    flat = (torch.randn(model.num_params()) * 0.2).requires_grad_()
    x, lengths = _inputs(seed=3)
    masks = [_mask(12)] if masked else None
    outs, grads = [], []
    for impl in ("fast", "reference"):
        model.impl = impl
        out = model(x, lengths, weights=model.split_flat(flat), unit_masks=masks)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), flat)[0])
    torch.testing.assert_close(outs[0], outs[1], **TOL)
    torch.testing.assert_close(grads[0], grads[1], **TOL)
    own = model(x, lengths, unit_masks=masks)
    assert not torch.allclose(own, outs[0])  # the external weights were really used
    assert all(p.grad is None for p in model.parameters())


def test_masked_units_reach_nothing() -> None:
    """h of a masked unit is 0 at every step: its recurrent and read-out columns get no gradient and
    changing them changes nothing; with everything masked the logits are the output bias."""
    torch.manual_seed(0)
    hidden = 10
    mask = _mask(hidden)
    off = mask == 0
    x, lengths = _inputs(seed=5)
    for impl in ("fast", "reference"):
        model = _model(hidden=hidden, impl=impl)
        out = model(x, lengths, unit_masks=[mask])
        out.square().sum().backward()
        assert torch.all(model.weight_hh.grad[:, off] == 0)
        assert torch.all(model.weight_out.grad[:, off] == 0)
        gate_rows = off.repeat(4)  # rows i, f, g, o of the masked units
        assert torch.all(model.weight_ih.grad[gate_rows] == 0) and torch.all(model.bias_hh.grad[gate_rows] == 0)
        with torch.no_grad():
            model.weight_hh[:, off] += 3.0
            model.weight_out[:, off] -= 2.0
        assert torch.equal(model(x, lengths, unit_masks=[mask]), out.detach())
        none = model(x, lengths, unit_masks=[torch.zeros(hidden)])
        assert torch.equal(none, model.bias_out.detach().expand_as(none))


def test_readout_is_at_the_last_unpadded_step() -> None:
    """Padding after a sample's length changes nothing (causal net); lengths=None reads the last step."""
    torch.manual_seed(0)
    model = _model(hidden=8)
    x, lengths = _inputs(batch=4, steps=20)
    out = model(x, lengths)
    padded = torch.cat([x, torch.full((4, 9, 4), 7.0)], dim=1)
    for t in range(4):
        padded[t, lengths[t]:] = 5.0  # garbage after the end
    torch.testing.assert_close(model(padded, lengths), out, **TOL)
    short = x[2:3, : lengths[2]]
    torch.testing.assert_close(model(short), out[2:3], **TOL)


def test_auto_takes_the_reference_for_non_binary_gains() -> None:
    torch.manual_seed(0)
    x, lengths = _inputs(batch=3, steps=12)
    gain = torch.linspace(0.0, 2.0, 8)
    auto = _model(hidden=8, impl="auto")
    expected = lstm_reference(x, lengths, list(auto.parameters()), gain)
    torch.testing.assert_close(auto(x, lengths, unit_masks=[gain]), expected, **TOL)
    fast = _model(hidden=8, impl="fast")
    with pytest.raises(ValueError, match="0/1"):
        fast(x, lengths, unit_masks=[gain])


def test_gain_acts_inside_the_output_tanh() -> None:
    """Reference semantics of a gain: h = o ⊙ tanh(gain ⊙ c), c carried unmodulated (spec §4.4)."""
    torch.manual_seed(0)
    w = list(_model(hidden=3).parameters())
    x = torch.randn(1, 2, 4)
    gain = torch.tensor([0.5, 1.0, 2.0])
    # Hand-rolled two steps.
    h = torch.zeros(3)
    c = torch.zeros(3)
    for t in range(2):
        gates = w[0] @ x[0, t] + w[1] + w[2] @ h + w[3]
        i, f, g, o = gates.chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(gain * c)
    expected = w[4] @ h + w[5]
    torch.testing.assert_close(lstm_reference(x, None, w, gain)[0], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_per_sample_gradients_under_vmap(impl: str) -> None:
    """torch.func vmap(grad) through weights= (EWC's batched Fisher) equals batch-1 backward passes."""
    import warnings

    from torch.func import grad, vmap

    torch.manual_seed(0)
    model = _model(hidden=8, n_out=4, impl=impl).eval()
    x, lengths = _inputs(batch=5, steps=20, seed=7)
    y = torch.tensor([0, 1, 2, 3, 0])
    w = tuple(p.detach() for p in model.parameters())

    def loss_one(w: tuple[torch.Tensor, ...], x1: torch.Tensor, y1: torch.Tensor, l1: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(x1[None], l1[None], weights=list(w)), y1[None])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no batching rule for the fused RNN": functorch loops instead
        per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0, 0))(w, x, y, lengths)
    for i in range(5):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1, : lengths[i]], lengths[i : i + 1]), y[i : i + 1])
        for batched, single in zip(per_sample, torch.autograd.grad(loss, list(model.parameters()))):
            torch.testing.assert_close(batched[i], single, **TOL)
