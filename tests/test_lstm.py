"""The LSTM main network (spec §2.1): parameter layout and count, init, fused path = reference, masks.

CPU, float32, tiny sizes except for the parameter counts. The fused path must match the
step-by-step reference to 1e-5 in logits and in every gradient, with variable lengths, unit gains
(`model.gated`) and external weights (`functional_call`).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from engine.benchmarks.base import InputSpec
from engine.catalog import load_all
from engine.models.base import build_model, params_from_flat
from engine.models.lstm import LSTM, LstmOptions, lstm_fast, lstm_reference
from engine.registry import MODELS

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
    """Logits (the read-out on `fn`'s hidden state) and the gradients of every one of the six tensors."""
    out = F.linear(fn(x, lengths, w[:4], mask), w[4], w[5])
    # A loss that weights every logit differently, so a wrong read-out step or unit shows up.
    loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum() + out.square().sum()
    return out, torch.autograd.grad(loss, w)


def test_registered_and_parameter_counts() -> None:
    load_all()
    assert MODELS.get("lstm").impl is LSTM and MODELS.get("lstm").options is LstmOptions
    spec = InputSpec((117, 4), 10, sequential=True)
    model = build_model("lstm", LstmOptions(), spec)
    assert model.num_params() == 270_858  # spec §2.1: n_in = 4, multi-head n_out = 10
    assert build_model("lstm", LstmOptions(), InputSpec((117, 9), 10, True)).num_params() == 275_978  # with TI
    # The order a hypernetwork's flat output is cut in (and so HNET's numbers) depends on this.
    assert [(n, tuple(p.shape)) for n, p in model.named_parameters()] == [
        ("lstm.weight_ih", (1024, 4)), ("lstm.bias_ih", (1024,)), ("lstm.weight_hh", (1024, 256)),
        ("lstm.bias_hh", (1024,)), ("out.weight", (10, 256)), ("out.bias", (10,)),
    ]
    assert model.unit_layers == {"lstm": 256}
    assert model.readout == "out" and isinstance(model.get_submodule("out"), torch.nn.Linear)


def test_init_is_uniform_with_each_matrix_fan_in() -> None:
    torch.manual_seed(0)
    model = build_model("lstm", LstmOptions(), InputSpec((117, 4), 10, True))
    # Bias bounds use the fan_in of the paired matrix: ±1/2 for the input pair, ±1/16 for the others.
    bounds = {"lstm.weight_ih": 0.5, "lstm.bias_ih": 0.5, "lstm.weight_hh": 1 / 16, "lstm.bias_hh": 1 / 16,
              "out.weight": 1 / 16, "out.bias": 1 / 16}
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
    """functional_call with a flat vector's views (a hypernetwork's output) replaces the model's own
    weights; gradients reach their source, through both paths, gated or not."""
    torch.manual_seed(0)
    model = _model(hidden=12)
    flat = (torch.randn(model.num_params()) * 0.2).requires_grad_()
    x, lengths = _inputs(seed=3)
    gains = {"lstm": _mask(12)} if masked else {}
    outs, grads = [], []
    for impl in ("fast", "reference"):
        model.impl = impl
        with model.gated(gains):
            out = functional_call(model, params_from_flat(model, flat), (x, lengths))
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), flat)[0])
    torch.testing.assert_close(outs[0], outs[1], **TOL)
    torch.testing.assert_close(grads[0], grads[1], **TOL)
    with model.gated(gains):
        own = model(x, lengths)
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
        r = model.lstm
        with model.gated({"lstm": mask}):
            out = model(x, lengths)
        assert r.gain is None  # the gate is only set inside the block
        out.square().sum().backward()
        assert torch.all(r.weight_hh.grad[:, off] == 0)
        assert torch.all(model.out.weight.grad[:, off] == 0)
        gate_rows = off.repeat(4)  # rows i, f, g, o of the masked units
        assert torch.all(r.weight_ih.grad[gate_rows] == 0) and torch.all(r.bias_hh.grad[gate_rows] == 0)
        with torch.no_grad():
            r.weight_hh[:, off] += 3.0
            model.out.weight[:, off] -= 2.0
        with model.gated({"lstm": mask}):
            assert torch.equal(model(x, lengths), out.detach())
            assert torch.all(model.features(x, lengths)["lstm"][:, off] == 0)
        with model.gated({"lstm": torch.zeros(hidden)}):
            none = model(x, lengths)
        assert torch.equal(none, model.out.bias.detach().expand_as(none))


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
    w = list(auto.parameters())
    expected = F.linear(lstm_reference(x, lengths, w[:4], gain), w[4], w[5])
    with auto.gated({"lstm": gain}):
        torch.testing.assert_close(auto(x, lengths), expected, **TOL)
    fast = _model(hidden=8, impl="fast")
    with pytest.raises(ValueError, match="0/1"), fast.gated({"lstm": gain}):
        fast(x, lengths)
    assert fast.lstm.gain is None  # reset on the way out of an error too


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
    torch.testing.assert_close(lstm_reference(x, None, w[:4], gain)[0], h, rtol=0, atol=1e-6)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_per_sample_gradients_under_vmap(impl: str) -> None:
    """torch.func vmap(grad) through functional_call (EWC's batched Fisher) equals batch-1 backward passes."""
    import warnings

    from torch.func import grad, vmap

    torch.manual_seed(0)
    model = _model(hidden=8, n_out=4, impl=impl).eval()
    x, lengths = _inputs(batch=5, steps=20, seed=7)
    y = torch.tensor([0, 1, 2, 3, 0])
    w = {n: p.detach() for n, p in model.named_parameters()}

    def loss_one(w: dict[str, torch.Tensor], x1: torch.Tensor, y1: torch.Tensor, l1: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, w, (x1[None], l1[None])), y1[None])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no batching rule for the fused RNN": functorch loops instead
        per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0, 0))(w, x, y, lengths)
    for i in range(5):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1, : lengths[i]], lengths[i : i + 1]), y[i : i + 1])
        singles = torch.autograd.grad(loss, list(model.parameters()))
        for name, single in zip(w, singles):
            torch.testing.assert_close(per_sample[name][i], single, **TOL)
