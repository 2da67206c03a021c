"""Online EWC: no penalty in the first task, the Fisher against hand computation on a two-parameter
model (one task and online accumulation over three), vmap = loop, and exact resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from engine.api import build_trainer
from engine.benchmarks.base import Batch, Benchmark, InputSpec
from engine.config import TrainingConfig, load_config
from engine.methods.base import MethodContext
from engine.methods.ewc import Ewc, EwcOptions
from engine.models.base import CLModel
from engine.rng import stream_generator
from tests.conftest import assert_resume_exact

torch.set_num_threads(1)


# -- a two-parameter model on a toy benchmark ---------------------------------------------------
class TwoParam(CLModel):
    """logits = x · w for a scalar input x and w ∈ R²: dℓ/dw_c = x·(softmax(xw)_c − [c = y])."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.3, -0.2]))
        self.n_outputs, self.unit_layers, self.readout = 2, {}, ""

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return x.reshape(-1, 1) * self.w


class ToyTask:
    def __init__(self, name: str, x: Tensor, y: Tensor) -> None:
        self.name, self.x, self.y = name, x, y

    def size(self, split: str) -> int:
        return len(self.x)

    def get(self, split: str, idx: Tensor) -> Batch:
        return Batch(self.x[idx], self.y[idx])


def toy_ewc(num_tasks: int, **opts: object) -> Ewc:
    gen = torch.Generator().manual_seed(0)
    tasks = [ToyTask(f"t{t}", torch.randn(7, 1, generator=gen), torch.randint(2, (7,), generator=gen))
             for t in range(num_tasks)]
    bench = Benchmark(tasks, torch.tensor([[0, 1]] * num_tasks), InputSpec((1,), 2), "toy", {})
    ctx = MethodContext(TwoParam(), bench, torch.device("cpu"), TrainingConfig(), 0)
    return Ewc(EwcOptions(**opts), ctx)  # type: ignore[arg-type]


def hand_fisher(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean over samples of the squared gradient of −log softmax(x·w)[y] w.r.t. w (float64)."""
    z = x[:, None] * w[None, :]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(2)[y]
    grads = x[:, None] * (p - onehot)
    return (grads**2).mean(0)


def toy_data(m: Ewc, task: int) -> tuple[np.ndarray, np.ndarray]:
    t = m.ctx.benchmark.tasks[task]
    return t.x[:, 0].double().numpy(), t.y.numpy()


@pytest.mark.parametrize("impl", ["loop", "vmap"])
def test_fisher_equals_hand_computation_on_two_parameter_model(impl: str) -> None:
    m = toy_ewc(2, fisher_impl=impl)
    f = m.compute_fisher(0)["w"]
    x, y = toy_data(m, 0)
    expected = hand_fisher(m.model.w.detach().double().numpy(), x, y)
    assert (f >= 0).all()
    np.testing.assert_allclose(f.double().numpy(), expected, rtol=1e-5, atol=1e-9)
    assert m.fisher_impl_used == impl


def test_fisher_uses_first_n_of_a_fresh_shuffle_from_its_own_stream() -> None:
    m = toy_ewc(2, n_fisher=3)
    torch.manual_seed(12)
    f = m.compute_fisher(0)["w"]
    idx = torch.randperm(7, generator=stream_generator(0, "fisher"))[:3].numpy()
    torch.manual_seed(12)
    assert sorted(torch.randperm(7)[:3].tolist()) != sorted(idx.tolist())  # the global RNG would pick others
    x, y = toy_data(m, 0)
    expected = hand_fisher(m.model.w.detach().double().numpy(), x[idx], y[idx])
    np.testing.assert_allclose(f.double().numpy(), expected, rtol=1e-5, atol=1e-9)


def test_online_accumulation_over_three_tasks_matches_hand_computation() -> None:
    gamma, lam = 0.5, 3.0
    m = toy_ewc(4, gamma=gamma, ewc_lambda=lam)
    assert m.penalty(0, [0])[0] is None  # first task: no penalty at all
    weights = [np.array([0.3, -0.2]), np.array([1.0, 0.5]), np.array([-0.7, 0.9])]
    expected = np.zeros(2)
    for phase, w in enumerate(weights):  # tasks 0, 1, 2 end with these weights
        with torch.no_grad():
            m.model.w.copy_(torch.tensor(w, dtype=torch.float32))
        m.after_phase(phase, [phase])
        x, y = toy_data(m, phase)
        expected = hand_fisher(m.model.w.detach().double().numpy(), x, y) + gamma * expected
        assert m.fisher is not None and m.anchor is not None
        np.testing.assert_allclose(m.fisher["w"].double().numpy(), expected, rtol=1e-5, atol=1e-9)
        np.testing.assert_array_equal(m.anchor["w"].numpy(), m.model.w.detach().numpy())
    # The last task computes nothing.
    before = m.fisher["w"].clone()
    m.after_phase(3, [3])
    assert torch.equal(m.fisher["w"], before)
    # Penalty = λ·½·Σ F(θ−θ*)².
    with torch.no_grad():
        m.model.w.copy_(torch.tensor([0.1, 0.2]))
    pen, _ = m.penalty(3, [3])
    anchor = np.array([-0.7, 0.9], dtype=np.float32).astype(np.float64)
    expected_pen = lam * 0.5 * (expected * (np.array([0.1, 0.2]) - anchor) ** 2).sum()
    assert pen is not None
    assert float(pen.detach()) == pytest.approx(expected_pen, rel=1e-5)


# -- the real loop on the embedded data ------------------------------------------------------------
def tiny_cfg(method: str, **opts: object):
    raw = {
        "name": f"tiny-{method}", "seed": 3, "device": "cpu",
        "benchmark": {"name": "split_mnist", "data": "embedded", "num_tasks": 3},
        "model": {"name": "mlp", "hidden": [32, 32]},
        "method": {"name": method, **opts},
        "training": {"steps_per_task": 20, "batch_size": 32, "log_every": 1},
        "evaluation": {"initial": False}, "analyses": {"curves": {"enabled": False}},
    }
    return load_config(raw, "test")


def test_penalty_is_zero_during_the_first_task_and_positive_after() -> None:
    from engine import events as ev

    logged: list = []
    trainer, _ = build_trainer(tiny_cfg("ewc", ewc_lambda=100.0, n_fisher=50), Path("."), logged.append)
    assert trainer.method.penalty(0, [0])[0] is None
    trainer.run()
    steps = [e for e in logged if isinstance(e, ev.StepLogged)]
    assert len(steps) == 60
    assert all(e.values["penalty"] == 0.0 for e in steps if e.phase == 0)
    # At a later task's first step θ = θ*, so the penalty is 0 there and positive once θ has moved.
    assert all(e.values["penalty"] > 0.0 for e in steps if e.phase > 0 and e.step not in (21, 41))


def test_vmap_and_loop_give_the_same_fisher_on_the_mlp() -> None:
    trainer, _ = build_trainer(tiny_cfg("ewc", n_fisher=40), Path("."), lambda e: None)
    m = trainer.method
    fishers = {}
    for impl in ("loop", "vmap"):
        m.opts = EwcOptions(n_fisher=40, fisher_impl=impl, fisher_chunk=16)
        m.ctx.generator("fisher").manual_seed(1)  # the same sample for both
        fishers[impl] = m.compute_fisher(1)
        assert m.fisher_impl_used == impl
    assert trainer.model.training  # the Fisher runs in eval mode and restores the mode
    for name, f in fishers["loop"].items():
        assert (f >= 0).all()
        torch.testing.assert_close(fishers["vmap"][name], f, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("stop_at", [20, 27], ids=["task-boundary", "mid-task"])
def test_resume_equals_uninterrupted(tmp_path: Path, stop_at: int) -> None:
    assert_resume_exact(tiny_cfg("ewc", ewc_lambda=1000.0, n_fisher=100), tmp_path, stop_at)
