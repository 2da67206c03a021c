"""HNET: generated weight shapes, parameter counts vs the spec tables, the output regulariser, state and resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from engine.api import build_trainer, describe, resume, run
from engine.benchmarks.base import Benchmark, InputSpec, heads
from engine.catalog import load_all
from engine.config import TrainingConfig
from engine.methods.base import MethodContext
from engine.methods.hnet import Hnet, HnetOptions
from engine.models.base import CLModel, params_from_flat
from engine.models.mlp import MLP, MlpOptions
from engine.presets import load_preset
from engine.registry import MODELS
from tests.conftest import tiny

CPU = torch.device("cpu")


class LstmShapes(CLModel):
    """The spec's LSTM-256 main net (§2.1: n_in 4, 10 multi-head outputs), parameters only: 270 858 values."""

    def __init__(self) -> None:
        super().__init__()
        self.W_ih = nn.Parameter(torch.zeros(1024, 4))
        self.b_ih = nn.Parameter(torch.zeros(1024))
        self.W_hh = nn.Parameter(torch.zeros(1024, 256))
        self.b_hh = nn.Parameter(torch.zeros(1024))
        self.out = nn.Linear(256, 10)
        self.n_outputs, self.unit_layers, self.readout = 10, {}, "out"


def mlp(hidden: list[int], n_out: int) -> MLP:
    return MLP(MlpOptions(hidden=hidden), InputSpec((784,), n_out))


def make(model: CLModel, scenario: str = "task", num_tasks: int = 5, **opts: object) -> Hnet:
    """An Hnet over `model` with the head layout of Split-MNIST in `scenario` (no data needed)."""
    cols, _ = heads(scenario, num_tasks, 2, 10, CPU)
    bench = Benchmark([None] * num_tasks, cols, InputSpec((784,), model.n_outputs), "test", {})  # type: ignore[list-item]
    return Hnet(HnetOptions(**opts), MethodContext(model, bench, CPU, TrainingConfig(), seed=0))


def perturb(m: Hnet, scale: float = 0.05) -> None:
    """Stand-in for training: move every hypernetwork parameter."""
    with torch.no_grad():
        for p in m.hnet.parameters():
            p.add_(scale * torch.randn_like(p))


# -- weights and sizes ----------------------------------------------------------------------------
@pytest.mark.parametrize("model, opts", [
    (lambda: mlp([100, 100], 10), {}),
    (LstmShapes, {"chunk_size": 10000, "hidden": [25, 25], "temb_size": 32, "cemb_size": 16}),
])
def test_generated_weights_have_the_main_network_shapes(model, opts) -> None:
    net = model()
    m = make(net, **opts)
    flat = m.generate(m._ids[:3])
    assert flat.shape == (3, net.num_params())
    w = m.weights_for(4)
    assert [(k, t.shape) for k, t in w.items()] == [(k, p.shape) for k, p in net.named_parameters()]
    assert sum(t.numel() for t in w.values()) == net.num_params()
    assert all(t.requires_grad for t in w.values())  # training path: differentiable w.r.t. the hnet
    # Cut in named_parameters() order from one flat vector: consecutive views, no gaps.
    flat4 = m.generate(m._ids[4:5])[0]
    assert torch.equal(torch.cat([t.reshape(-1) for t in w.values()]), flat4[: net.num_params()])


def test_mlp_runs_on_generated_weights_and_ignores_its_own() -> None:
    torch.manual_seed(0)
    net = mlp([32], 10)
    m = make(net, hidden=[16], chunk_size=1000)
    x = torch.rand(5, 784)
    out = m.forward(x, None, 2)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    assert out.shape == (5, 10)
    assert torch.equal(m.forward(x, None, 2), out)


def test_lstm_model_runs_on_generated_weights() -> None:
    load_all()
    entry = MODELS.get("lstm")
    net = entry.impl(entry.options(), InputSpec((12, 4), 10, sequential=True))
    m = make(net, chunk_size=10000, hidden=[25, 25], temb_size=32, cemb_size=16)
    x, lengths = torch.randn(3, 12, 4), torch.tensor([12, 7, 3])
    out = m.forward(x, lengths, 1)
    assert out.shape == (3, 10)
    assert (net.num_params(), m.describe()["hnet_params"]) == (270_858, 262_483)  # the spec §4.5 first row
    out.sum().backward()  # gradients reach the hypernetwork through the generated LSTM weights
    assert all(p.grad is not None for p in (m.hnet.chunk_emb, *m.hnet.layers.parameters()))
    assert m.hnet.task_emb.grad[1].abs().sum() > 0 and m.hnet.task_emb.grad[0].abs().sum() == 0


@pytest.mark.parametrize("chunk, hidden, temb, chunks, hnet_params, ratio", [
    # spec §4.5 table (LSTM-256, 270 858 main params); the counts imply chunk embeddings of size 16.
    (10000, [25, 25], 32, 28, 262_483, 0.969),
    (5000, [50, 50], 32, 55, 261_040, 0.964),
    (10000, [25, 25], 16, 28, 262_003, 0.967),
])
def test_param_counts_match_the_ssmnist_table(chunk, hidden, temb, chunks, hnet_params, ratio) -> None:
    info = make(LstmShapes(), chunk_size=chunk, hidden=hidden, temb_size=temb, cemb_size=16).describe()
    assert info["main_params"] == 270_858
    assert info["num_chunks"] == chunks
    assert info["hnet_params"] == hnet_params
    assert round(info["compression_ratio"], 3) == ratio


def test_param_counts_match_the_hypercl_defaults() -> None:
    """§8: main MLP 784-100-100-2 (88 802 weights), hnet 100,100 / chunk 750 / temb 8 / cemb 8: 119 chunks, 88 542."""
    info = make(mlp([100, 100], 2), scenario="domain").describe()
    assert (info["main_params"], info["num_chunks"], info["hnet_params"]) == (88_802, 119, 88_542)
    assert info["compression_ratio"] == pytest.approx(88_542 / 88_802)


# -- the output regulariser -----------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["task", "domain"])
def test_regulariser_is_zero_in_the_first_task_and_right_after_freezing(scenario: str) -> None:
    torch.manual_seed(0)
    m = make(mlp([32], 10 if scenario == "task" else 2), scenario, hidden=[16], chunk_size=1000)
    m.before_phase(0, [0])
    assert m.penalty(0, [0])[0] is None
    perturb(m)
    m.before_phase(3, [3])
    assert m.target_tasks == [0, 1, 2]
    pen = m.penalty(3, [3])[0]
    assert pen is not None and pen.item() == 0.0
    perturb(m)
    assert m.penalty(3, [3])[0].item() > 0.0


def _manual_term(m: Hnet, j: int, multi_head: bool) -> torch.Tensor:
    """‖h(e_j) − W*_j‖² by hand, per parameter, dropping other heads' output rows when multi-head."""
    net = m.model
    pred = params_from_flat(net, m.generate(m._ids[j : j + 1])[0])
    tgt = params_from_flat(net, m.targets[m.target_tasks.index(j)])
    total = torch.zeros(())
    for name in pred:
        p, t = pred[name], tgt[name]
        if multi_head and name.startswith(net.readout + "."):
            rows = m.ctx.benchmark.head_columns[j]
            p, t = p[rows], t[rows]
        total = total + (p - t).square().sum()
    return total


@pytest.mark.parametrize("scenario", ["task", "domain"])
def test_regulariser_formula_and_head_masking(scenario: str) -> None:
    torch.manual_seed(1)
    m = make(mlp([32], 10 if scenario == "task" else 2), scenario, hidden=[16], chunk_size=1000, beta=0.5)
    perturb(m)
    m.before_phase(3, [3])
    perturb(m)
    terms = [_manual_term(m, j, scenario == "task") for j in range(3)]
    want = 0.5 * sum(terms) / 3  # β · (1/t) · Σ_{j<t}
    assert m.penalty(3, [3])[0].item() == pytest.approx(want.item(), rel=1e-5)
    if scenario == "task":  # the masked form is strictly smaller than the all-rows form here
        assert sum(terms) < sum(_manual_term(m, j, False) for j in range(3))


def test_regulariser_subset_is_one_random_earlier_task() -> None:
    torch.manual_seed(2)
    m = make(mlp([32], 10), hidden=[16], chunk_size=1000, beta=0.5, reg_batch_size=1)
    perturb(m)
    m.before_phase(3, [3])
    perturb(m)
    terms = [0.5 * _manual_term(m, j, True).item() for j in range(3)]
    gen = m.ctx.generator("hnet/reg_subset")
    gen.manual_seed(7)
    drawn = [m.penalty(3, [3])[0].item() for _ in range(12)]
    assert all(min(abs(d - t) / t for t in terms) < 1e-5 for d in drawn)
    assert len({round(d, 4) for d in drawn}) > 1  # different tasks get drawn
    gen.manual_seed(7)
    torch.manual_seed(123)  # the global torch RNG plays no part
    assert [m.penalty(3, [3])[0].item() for _ in range(12)] == drawn  # the "hnet/reg_subset" stream decides


def _task0_drift(beta: float) -> float:
    """‖h(e_0) after task 2 − h(e_0) after task 1‖ on a two-task embedded Split-MNIST run."""
    cfg = tiny("benchmark.num_tasks=2", f"method.beta={beta}", "method.hidden=[32,32]", "method.chunk_size=500",
               "analyses.curves.enabled=false", "evaluation.initial=false", method="hnet", steps=40)
    trainer, _ = build_trainer(cfg, None, lambda e: None)
    hnet: Hnet = trainer.method  # type: ignore[assignment]
    assert trainer.run(stop_at_step=40) == "interrupted"
    with torch.no_grad():
        before = hnet.generate(hnet._ids[:1]).clone()
    assert trainer.run() == "finished"
    with torch.no_grad():
        return float((hnet.generate(hnet._ids[:1]) - before).norm())


def test_regulariser_keeps_the_old_tasks_weights_closer() -> None:
    free, held = _task0_drift(0.0), _task0_drift(0.1)
    assert free > 0 and held < 0.5 * free


# -- state ----------------------------------------------------------------------------------------
def test_state_round_trip_gives_identical_weights_and_penalty() -> None:
    torch.manual_seed(3)
    a = make(mlp([32], 10), hidden=[16], chunk_size=1000)
    perturb(a)
    a.before_phase(2, [2])
    perturb(a)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(99)  # a differently initialised fresh method
    b = make(mlp([32], 10), hidden=[16], chunk_size=1000)
    with torch.no_grad():
        assert not torch.equal(a.generate(a._ids), b.generate(b._ids))
        _ = [b.weights_for(j) for j in range(5)]  # fill b's evaluation cache before loading
    b.load_state_dict(torch.load(buf, weights_only=False))
    with torch.no_grad():
        for j in range(5):
            wa, wb = a.weights_for(j), b.weights_for(j)
            assert list(wa) == list(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert b.target_tasks == [0, 1] and torch.equal(a.targets, b.targets)
    assert torch.equal(a.penalty(2, [2])[0], b.penalty(2, [2])[0])


def test_evaluation_cache_follows_optimizer_steps() -> None:
    torch.manual_seed(4)
    m = make(mlp([32], 10), hidden=[16], chunk_size=1000)
    opt = torch.optim.Adam(m.trainable_parameters(), lr=1e-2)
    with torch.no_grad():
        w = m.weights_for(0)
        assert m.weights_for(0) is w  # cached while nothing changed
    m.forward(torch.rand(4, 784), None, 0).sum().backward()
    opt.step()
    with torch.no_grad():
        fresh = m.weights_for(0)
        w1 = fresh["fc1.weight"]
        assert fresh is not w and torch.equal(w1, m.generate(m._ids[:1])[0, : w1.numel()].view_as(w1))


@pytest.mark.parametrize("stop_at, extra", [
    (17, ["benchmark.scenario=task"]),          # mid-task 1: the frozen targets must come from the checkpoint
    (24, ["benchmark.scenario=task"]),          # at the 1→2 boundary (phase 2 already started when stopped)
    (29, ["benchmark.scenario=domain", "method.reg_batch_size=1"]),  # random subset: RNG state resumed too
])
def test_resume_equals_uninterrupted(tmp_path, stop_at: int, extra: list[str]) -> None:
    cfg = tiny("method.hidden=[16]", "method.chunk_size=1000", "method.beta=0.1", "analyses.curves.every=5",
               *extra, method="hnet", steps=12)
    full = run(cfg, tmp_path / "a")
    part = run(cfg, tmp_path / "b", stop_at_step=stop_at)
    assert (full.status, part.status) == ("finished", "interrupted")
    resumed = resume(part.run_id, tmp_path / "b")
    assert resumed.status == "finished"
    assert np.array_equal(full.acc, resumed.acc, equal_nan=True)


# -- preset ---------------------------------------------------------------------------------------
def test_split_mnist_preset_is_the_hypercl_setting() -> None:
    cfg = load_preset("split-mnist/hnet")
    assert cfg.method.name == "hnet"
    o = cfg.method.options
    assert (o.hidden, o.chunk_size, o.temb_size, o.cemb_size) == ([100, 100], 750, 8, 8)
    assert (o.temb_std, o.cemb_std, o.beta, o.reg_batch_size) == (1.0, 1.0, 0.01, -1)
    assert cfg.model.options.hidden == [100, 100]
    b, t = cfg.benchmark.options, cfg.training
    assert (b.scenario, b.data, b.num_tasks) == ("domain", "full", 5)
    assert (t.optimizer, t.lr, t.batch_size, t.steps_per_task) == ("adam", 1e-4, 32, 1001)
    info = describe(load_preset("split-mnist/hnet", ["benchmark.data=embedded"], device="cpu"))
    assert (info["model_params"], info["hnet_params"]) == (88_802, 88_542)


def test_ragged_heads_mask_only_each_tasks_own_output_units() -> None:
    """Ragged heads (Benchmark.head_sizes, as incremental CIFAR-100 has): task j's regulariser term reads
    the first head_sizes[j] units of its row only, never the row's padding."""
    model = mlp([16], 6)
    cols = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]])  # the row padded to the widest head
    bench = Benchmark([None] * 3, cols, InputSpec((784,), 6), "test", {}, head_sizes=[2, 3, 4])  # type: ignore[list-item]
    m = Hnet(HnetOptions(hidden=[8], chunk_size=1000), MethodContext(model, bench, CPU, TrainingConfig(), seed=0))
    masks = m._head_masks()
    assert masks is not None
    out_w = dict(model.named_parameters())["out.weight"]
    offset = sum(p.numel() for n, p in model.named_parameters() if n < "out")  # out.* come last
    for j, size in enumerate([2, 3, 4]):
        rows = masks[j, offset: offset + out_w.numel()].view(out_w.shape)
        assert rows[:size].eq(1).all() and rows[size:].eq(0).all()
