"""SI: Ω against a hand-computed path integral on a quadratic loss with plain SGD (both variants),
the step prediction against real optimizer steps, the optimizer state left bit-identical, the
loop's per-task optimizer reset and gradient clipping, and exact resume."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from engine.api import build_trainer
from engine.benchmarks.base import Batch, Benchmark, InputSpec
from engine.config import TrainingConfig, load_config
from engine.methods.base import MethodContext
from engine.methods.si import Si, SiOptions, predicted_step
from engine.models.base import CLModel
from tests.conftest import assert_resume_exact

torch.set_num_threads(1)

LR, XI, C = 0.1, 1e-3, 0.7
THETA0 = np.array([0.5, -1.0])
# Task k's loss: ½ Σ a_k (θ − b_k)²; steps per task.
A = [np.array([1.0, 3.0]), np.array([2.0, 0.5])]
B = [np.array([2.0, 1.0]), np.array([-1.0, 0.0])]
STEPS = 6


class Theta(CLModel):
    """Just a parameter vector θ ∈ R²; the test computes the loss from it directly."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(THETA0, dtype=torch.float64))
        self.n_outputs, self.unit_layers, self.readout = 2, {}, ""

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return x.reshape(-1, 1) * self.theta


class NoData:
    name = "none"

    def size(self, split: str) -> int:
        return 0

    def get(self, split: str, idx: Tensor) -> Batch:  # pragma: no cover - never called
        raise AssertionError


def quadratic_si(task_loss_only: bool) -> Si:
    bench = Benchmark([NoData(), NoData(), NoData()], torch.tensor([[0, 1]] * 3), InputSpec((1,), 2), "toy", {})
    ctx = MethodContext(Theta(), bench, torch.device("cpu"), TrainingConfig(), 0)
    return Si(SiOptions(si_lambda=C, damping=XI, task_loss_only=task_loss_only), ctx)


def drive_phase(m: Si, opt: torch.optim.Optimizer, phase: int) -> None:
    """What engine/loop.py does for one phase, with the quadratic task loss."""
    m.before_phase(phase, [phase])
    m.optimizer = opt
    a, b = (torch.tensor(v, dtype=torch.float64) for v in (A[phase], B[phase]))
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        (0.5 * (a * (m.model.theta - b) ** 2).sum()).backward()
        m.after_task_backward(phase, [phase])
        pen, _ = m.penalty(phase, [phase])
        if pen is not None:
            pen.backward()
        opt.step()
        m.after_step(phase, [phase])
    m.after_phase(phase, [phase])


def hand_si(task_loss_only: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Ω after each of the two tasks, and θ at the end, by plain SGD arithmetic."""
    theta, big_omega, prev, omegas = THETA0.copy(), np.zeros(2), None, []
    for k in range(2):
        start, omega = theta.copy(), np.zeros(2)
        for _ in range(STEPS):
            g_task = A[k] * (theta - B[k])
            g_pen = 2 * C * big_omega * (theta - prev) if prev is not None else np.zeros(2)
            g_full = g_task + g_pen
            if task_loss_only:
                omega += (-LR * g_task) * -g_task  # the step SGD would take from the task gradient alone
            else:
                omega += (-LR * g_full) * -g_full  # the real step and the full gradient
            theta = theta - LR * g_full
        big_omega = big_omega + np.maximum(0, omega / ((theta - start) ** 2 + XI))
        prev = theta.copy()
        omegas.append(big_omega.copy())
    return omegas, theta


@pytest.mark.parametrize("task_loss_only", [True, False])
def test_omega_equals_hand_computed_path_integral_with_plain_sgd(task_loss_only: bool) -> None:
    m = quadratic_si(task_loss_only)
    opt = torch.optim.SGD(m.model.parameters(), lr=LR)
    expected, theta_end = hand_si(task_loss_only)
    for phase in range(2):
        if phase == 0:
            assert m.penalty(0, [0])[0] is None  # no penalty during the first task
        drive_phase(m, opt, phase)
        assert m.big_omega is not None
        omega = m.big_omega["theta"].numpy()
        assert (omega >= 0).all()
        np.testing.assert_allclose(omega, expected[phase], rtol=1e-10)
    np.testing.assert_allclose(m.model.theta.detach().numpy(), theta_end, rtol=1e-10)
    # Penalty c·Σ Ω(θ−θ_prev)², no ½.
    with torch.no_grad():
        m.model.theta.add_(torch.tensor([0.3, -0.1], dtype=torch.float64))
    pen = m.penalty(2, [2])[0]
    assert pen is not None
    expected_pen = C * (expected[1] * np.array([0.3, -0.1]) ** 2).sum()
    assert float(pen.detach()) == pytest.approx(expected_pen, rel=1e-10)


def test_omega_is_clamped_at_zero() -> None:
    """A parameter moved against its gradient has ω < 0; its importance is 0, not negative."""
    m = quadratic_si(False)
    m.before_phase(0, [0])
    m.omega = {"theta": torch.tensor([-5.0, 2.0], dtype=torch.float64)}
    m.after_phase(0, [0])
    assert m.big_omega is not None
    assert m.big_omega["theta"][0] == 0 and m.big_omega["theta"][1] == pytest.approx(2.0 / XI)


OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adam-wd": lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05),
    "sgd-momentum-wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd-nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_predicted_step_equals_the_real_step_and_leaves_the_state_alone(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    # float64, so that measuring the real step (θ_new − θ_old) adds no visible rounding.
    p = torch.nn.Parameter(torch.randn(5, generator=gen, dtype=torch.float64))
    opt = OPTIMIZERS[kind]([p])
    for _ in range(4):  # the first step (empty state) and later ones
        p.grad = torch.randn(5, generator=gen, dtype=torch.float64)
        before = copy.deepcopy(opt.state_dict())
        pred = predicted_step(opt, p, p.grad)
        after = opt.state_dict()
        for k, st in before["state"].items():  # bit-identical optimizer state
            for name, v in st.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(after["state"][k][name]))
        old = p.detach().clone()
        opt.step()
        torch.testing.assert_close(pred, p.detach() - old, rtol=1e-9, atol=1e-12)


def tiny_cfg(method: str, training: dict | None = None, **kw: object):
    """3 tasks × 20 steps on the embedded data; `training` entries override the training table."""
    raw = {
        "name": f"tiny-{method}", "seed": 3, "device": "cpu",
        "benchmark": {"name": "split_mnist", "data": "embedded", "num_tasks": 3},
        "model": {"name": "mlp", "hidden": [32, 32]},
        "method": {"name": method, **kw},
        "training": {"steps_per_task": 20, "batch_size": 32, "log_every": 1, **(training or {})},
        "evaluation": {"initial": False}, "analyses": {"curves": {"enabled": False}},
    }
    return load_config(raw, "test")


def test_task_loss_only_leaves_optimizer_state_bit_identical_in_the_loop() -> None:
    """During the first task SI adds no penalty, so an SI run must equal fine-tuning bit for bit:
    same weights and same Adam state (exp_avg, exp_avg_sq, step). Also checked step by step."""
    si, _ = build_trainer(tiny_cfg("si", si_lambda=1.0), Path("."), lambda e: None)
    ft, _ = build_trainer(tiny_cfg("finetune"), Path("."), lambda e: None)
    inner = si.method.after_task_backward
    checked = []

    def checked_hook(phase: int, tasks: list[int]) -> None:
        before = copy.deepcopy(si.optimizer.state_dict()["state"])
        inner(phase, tasks)
        after = si.optimizer.state_dict()["state"]
        assert before.keys() == after.keys()
        for k in before:
            for name in before[k]:
                assert torch.equal(before[k][name], after[k][name])
        checked.append(phase)

    si.method.after_task_backward = checked_hook  # type: ignore[method-assign]
    assert si.run(stop_at_step=15) == "interrupted" and ft.run(stop_at_step=15) == "interrupted"
    assert len(checked) == 15
    for a, b in zip(si.model.parameters(), ft.model.parameters()):
        assert torch.equal(a, b)
    s_si, s_ft = si.optimizer.state_dict()["state"], ft.optimizer.state_dict()["state"]
    for k in s_ft:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s_si[k][name], s_ft[k][name])


def test_predicted_omega_matches_real_step_omega_in_the_first_task() -> None:
    """With no penalty and no clipping, the predicted Adam step is the real one, so both variants agree."""
    omegas = []
    for tlo in (True, False):
        tr, _ = build_trainer(tiny_cfg("si", task_loss_only=tlo), Path("."), lambda e: None)
        tr.run(stop_at_step=15)
        omegas.append(tr.method.omega)
    for name in omegas[0]:
        torch.testing.assert_close(omegas[0][name], omegas[1][name], rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("reset", [True, False])
def test_optimizer_is_recreated_per_task_unless_disabled(reset: bool) -> None:
    tr, _ = build_trainer(tiny_cfg("si", training={"reset_optimizer": reset}), Path("."), lambda e: None)
    seen: list[tuple[int, int]] = []
    inner = tr.method.after_phase

    def record(phase: int, tasks: list[int]) -> None:
        opt = tr.method.optimizer
        assert opt is tr.optimizer  # the loop hands the method the optimizer it steps
        seen.append((id(opt), int(next(iter(opt.state.values()))["step"])))
        inner(phase, tasks)

    tr.method.after_phase = record  # type: ignore[method-assign]
    tr.run()
    ids, steps = zip(*seen)
    if reset:
        assert len(set(ids)) == 3 and steps == (20, 20, 20)  # fresh Adam: moments and step reset
    else:
        assert len(set(ids)) == 1 and steps == (20, 40, 60)


@pytest.mark.parametrize("clip", [0.05, -1.0])
def test_global_norm_clipping(clip: float) -> None:
    tr, _ = build_trainer(tiny_cfg("si", si_lambda=10.0, training={"clip_grad_norm": clip}), Path("."), lambda e: None)
    norms: list[float] = []
    inner = tr.method.after_step

    def record(phase: int, tasks: list[int]) -> None:
        grads = [p.grad for p in tr.model.parameters() if p.grad is not None]
        norms.append(float(torch.stack([g.norm() for g in grads]).norm()))
        inner(phase, tasks)

    tr.method.after_step = record  # type: ignore[method-assign]
    tr.run()
    assert len(norms) == 60
    if clip > 0:
        assert max(norms) <= clip * (1 + 1e-5)
    else:
        assert max(norms) > 0.05  # unclipped gradients are larger than that on this data


@pytest.mark.parametrize("task_loss_only", [True, False])
@pytest.mark.parametrize("stop_at", [20, 27], ids=["task-boundary", "mid-task"])
def test_resume_equals_uninterrupted(tmp_path: Path, stop_at: int, task_loss_only: bool) -> None:
    cfg = tiny_cfg("si", si_lambda=5.0, task_loss_only=task_loss_only)
    assert_resume_exact(cfg, tmp_path, stop_at)
