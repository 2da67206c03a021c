"""The model contract (engine/models/base.py) on every registered model: features(), unit layers
with forward hooks and gates, functional_call, the exact initialisation of earlier versions, and a
model with BatchNorm buffers driven by a hypernetwork."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

from engine.benchmarks.base import Benchmark, InputSpec, heads
from engine.catalog import load_all
from engine.config import TrainingConfig
from engine.methods.base import MethodContext
from engine.methods.hnet import Hnet, HnetOptions
from engine.models.base import CLModel, UnitGate, build_model, params_from_flat
from engine.models.lstm import LstmOptions
from engine.models.mlp import MlpOptions
from engine.models.supermask import SupermaskMlpOptions
from engine.registry import MODELS

torch.set_num_threads(1)


def _mlp() -> CLModel:
    return build_model("mlp", MlpOptions(hidden=[12, 7]), InputSpec((3, 4), 5))


def _lstm() -> CLModel:
    return build_model("lstm", LstmOptions(hidden=6), InputSpec((9, 4), 5, sequential=True))


def _resnet18() -> CLModel:
    from engine.models.resnet18 import Resnet18Options

    return build_model("resnet18", Resnet18Options(width=2), InputSpec((3, 8, 8), 5))


def _inputs(kind: str, batch: int = 6) -> tuple[Tensor, Tensor | None]:
    g = torch.Generator().manual_seed(1)
    if kind == "lstm":  # sequences of varied lengths
        return torch.randn(batch, 9, 4, generator=g), torch.randint(1, 10, (batch,), generator=g)
    if kind == "resnet18":  # images; conv unit layers report [B, C, H, W]
        return torch.randn(batch, 3, 8, 8, generator=g), None
    if kind == "supermask_resnet18":  # GEMResNet18 takes 32×32 images (avg-pool 4 after three stride-2 stages)
        return torch.randn(batch, 3, 32, 32, generator=g), None
    return torch.rand(batch, 3, 4, generator=g), None


def _supermask() -> CLModel:
    return build_model("supermask_mlp", SupermaskMlpOptions(hidden=[12, 7], outputs=8), InputSpec((3, 4), 5))


def _supermask_resnet18() -> CLModel:
    from engine.models.supermask_resnet import SupermaskResnet18Options

    return build_model("supermask_resnet18", SupermaskResnet18Options(width=2, er_scale=8.0, tasks=2),
                       InputSpec((3, 32, 32), 5))


MODEL_BUILDERS = {"mlp": _mlp, "lstm": _lstm, "resnet18": _resnet18, "supermask_mlp": _supermask,
                  "supermask_resnet18": _supermask_resnet18}


def test_every_registered_model_is_covered_here() -> None:
    load_all()
    assert sorted(MODEL_BUILDERS) == MODELS.names()


@pytest.mark.parametrize("kind", MODEL_BUILDERS)
def test_features_are_named_unit_activations_that_forward_reads_out(kind: str) -> None:
    torch.manual_seed(0)
    model = MODEL_BUILDERS[kind]()
    x, lengths = _inputs(kind)
    feats = model.features(x, lengths)
    assert list(feats) == list(model.unit_layers)
    for name, units in model.unit_layers.items():
        assert feats[name].shape[:2] == (x.shape[0], units)  # conv layers: [B, C, H, W]
    last = list(feats)[-1]
    readout = model.get_submodule(model.readout)
    assert isinstance(readout, nn.Linear) and readout.out_features == model.n_outputs
    assert torch.equal(model(x, lengths), readout(feats[last]))
    if kind == "mlp":  # after the ReLU, the second layer reads the first
        assert torch.all(feats["h1"] >= 0) and torch.equal(feats["h2"], torch.relu(model.fc2(feats["h1"])))


@pytest.mark.parametrize("kind", MODEL_BUILDERS)
def test_a_forward_hook_on_a_unit_layer_sees_its_activations(kind: str) -> None:
    torch.manual_seed(0)
    model = MODEL_BUILDERS[kind]()
    x, lengths = _inputs(kind)
    seen: dict[str, Tensor] = {}

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: Any, output: Tensor) -> None:
            seen[name] = output.detach()
        return record

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in model.unit_layers]
    model(x, lengths)
    for h in handles:
        h.remove()
    feats = model.features(x, lengths)
    assert list(seen) == list(model.unit_layers)
    assert all(torch.equal(seen[n], feats[n]) for n in seen)


@pytest.mark.parametrize("kind", MODEL_BUILDERS)
def test_functional_call_with_own_params_equals_forward_and_others_change_it(kind: str) -> None:
    torch.manual_seed(0)
    model = MODEL_BUILDERS[kind]()
    x, lengths = _inputs(kind)
    own = dict(model.named_parameters())
    assert torch.equal(functional_call(model, own, (x, lengths)), model(x, lengths))
    flat = torch.randn(model.num_params())
    other = functional_call(model, params_from_flat(model, flat), (x, lengths))
    assert not torch.allclose(other, model(x, lengths))
    # The flat vector is cut in named_parameters() order, as consecutive views.
    cut = params_from_flat(model, flat)
    assert [(k, v.shape) for k, v in cut.items()] == [(k, p.shape) for k, p in model.named_parameters()]
    assert torch.equal(torch.cat([v.reshape(-1) for v in cut.values()]), flat)


@pytest.mark.parametrize("kind", MODEL_BUILDERS)
def test_gates_zero_units_only_inside_the_block(kind: str) -> None:
    torch.manual_seed(0)
    model = MODEL_BUILDERS[kind]()
    x, lengths = _inputs(kind)
    masks = {n: (torch.arange(u) % 2).float() for n, u in model.unit_layers.items()}
    plain = model(x, lengths)
    with model.gated(masks):
        feats = model.features(x, lengths)
        gated = model(x, lengths)
    for n, m in masks.items():
        assert torch.all(feats[n][:, m == 0] == 0) and torch.any(feats[n][:, m == 1] != 0)
        assert model.get_submodule(n).gain is None
    assert not torch.equal(gated, plain) and torch.equal(model(x, lengths), plain)
    with pytest.raises(KeyError, match="not unit layers"), model.gated({"nope": torch.ones(3)}):
        pass
    # Gains are neither parameters nor buffers: not in the state_dict, not copied by functional_call.
    with model.gated(masks):
        assert all(not k.endswith("gain") for k in model.state_dict())


def test_mlp_layout_and_state_dict_keys() -> None:
    model = _mlp()
    assert model.unit_layers == {"h1": 12, "h2": 7} and model.readout == "out"
    assert isinstance(model.h1, UnitGate) and isinstance(model.fc1, nn.Linear)
    assert list(model.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias"]


# -- the initialisation of earlier versions, by hand ----------------------------------------------
def _linear_pairs_by_hand(shapes: list[tuple[int, int]]) -> list[Tensor]:
    """What the flat-parameter models drew: per (out, in) pair, W by kaiming_uniform(a=√5), then
    b ~ U(±1/√in), pair after pair, from the global torch RNG."""
    out = []
    for fan_out, fan_in in shapes:
        w = torch.empty(fan_out, fan_in)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        b = torch.empty(fan_out)
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(b, -bound, bound)
        out += [w, b]
    return out


@pytest.mark.parametrize("seed", [0, 7])
def test_mlp_init_is_bit_identical_to_the_flat_parameter_mlp(seed: int) -> None:
    torch.manual_seed(seed)
    expected = _linear_pairs_by_hand([(12, 12), (7, 12), (5, 7)])
    after = torch.rand(3)  # the RNG continues from the same place
    torch.manual_seed(seed)
    model = _mlp()
    got = list(model.parameters())
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))
    assert torch.equal(torch.rand(3), after)
    torch.manual_seed(seed)
    model.reset_parameters()  # from-scratch re-initialises with the same draws
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), expected))


@pytest.mark.parametrize("seed", [0, 7])
def test_lstm_init_is_bit_identical_to_the_flat_parameter_lstm(seed: int) -> None:
    torch.manual_seed(seed)
    expected = _linear_pairs_by_hand([(24, 4), (24, 6), (5, 6)])
    torch.manual_seed(seed)
    got = list(_lstm().parameters())
    assert len(got) == 6 and all(torch.equal(a, b) for a, b in zip(got, expected))


# -- buffers: a model with BatchNorm ---------------------------------------------------------------
class BnNet(CLModel):
    """Linear → BatchNorm → ReLU → read-out: parameters and running statistics (buffers)."""

    def __init__(self, n_in: int = 12, units: int = 8, n_out: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, units)
        self.bn = nn.BatchNorm1d(units)
        self.h = UnitGate(units)
        self.out = nn.Linear(units, n_out)
        self.n_outputs, self.unit_layers, self.readout = n_out, {"h": units}, "out"

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        return {"h": self.h(torch.relu(self.bn(self.fc(x.reshape(x.shape[0], -1)))))}

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.out(self.features(x, lengths)["h"])


def test_a_model_with_batchnorm_keeps_its_buffers_under_a_hypernetwork() -> None:
    torch.manual_seed(0)
    net = BnNet()
    assert {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"} <= set(net.state_dict())
    cols, _ = heads("task", 5, 2, 10, torch.device("cpu"))
    bench = Benchmark([None] * 5, cols, InputSpec((12,), 10), "test", {})  # type: ignore[list-item]
    m = Hnet(HnetOptions(hidden=[8], chunk_size=50), MethodContext(net, bench, torch.device("cpu"), TrainingConfig(), 0))
    assert m.n_main == sum(p.numel() for p in net.parameters())  # buffers are not generated
    x = torch.randn(16, 12)
    out = m.forward(x, None, 1)  # train mode: BatchNorm updates the main network's own statistics
    assert out.shape == (16, 10) and int(net.bn.num_batches_tracked) == 1
    assert net.bn.running_mean.abs().sum() > 0
    out.sum().backward()
    assert m.hnet.task_emb.grad[1].abs().sum() > 0 and net.fc.weight.grad is None
    clone = copy.deepcopy(net)  # what coresets keeps as its teacher: buffers travel with it
    assert torch.equal(clone.bn.running_mean, net.bn.running_mean)
