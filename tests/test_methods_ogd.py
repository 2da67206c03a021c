"""OGD (engine/methods/ogd.py): Gram-Schmidt by hand, the projected gradient is orthogonal to the
basis, the basis is orthonormal, SGD steps never move along it, the per-task LR divisor, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine import api
from engine.methods.ogd import Ogd, gram_schmidt, project_out
from tests.conftest import assert_resume_exact, tiny

STEPS = 20  # per task; tiny() has 3 tasks


def _flat_grad(params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in params])  # type: ignore[union-attr]


def test_gram_schmidt_by_hand() -> None:
    b1, n1 = gram_schmidt(None, torch.tensor([3.0, 4.0, 0.0]), 1e-8)
    assert n1 == pytest.approx(5.0) and b1 is not None
    assert torch.allclose(b1, torch.tensor([0.6, 0.8, 0.0]))
    # [1, 0, 0] − 0.6·[0.6, 0.8, 0] = [0.64, −0.48, 0], norm 0.8
    b2, n2 = gram_schmidt(b1[None], torch.tensor([1.0, 0.0, 0.0]), 1e-8)
    assert n2 == pytest.approx(0.8) and b2 is not None
    assert torch.allclose(b2, torch.tensor([0.8, -0.6, 0.0]), atol=1e-7)
    basis = torch.stack([b1, b2])
    # A vector in the span adds nothing; one outside adds the third axis.
    assert gram_schmidt(basis, torch.tensor([2.0, -1.0, 0.0]), 1e-6)[0] is None
    b3, _ = gram_schmidt(basis, torch.tensor([1.0, 1.0, 2.0]), 1e-8)
    assert b3 is not None and torch.allclose(b3, torch.tensor([0.0, 0.0, 1.0]), atol=1e-7)
    g = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(project_out(basis, g), torch.tensor([0.0, 0.0, 3.0]), atol=1e-6)


def _trainer(tmp_path: Path, *overrides: str):  # noqa: ANN202
    cfg = tiny("benchmark.scenario=class", "model.batchnorm=true", *overrides, method="ogd", steps=STEPS)
    trainer, _ = api.build_trainer(cfg, tmp_path, lambda e: None)
    return trainer


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_projected_gradient_is_orthogonal_to_an_orthonormal_basis(tmp_path: Path, optimizer: str) -> None:
    trainer = _trainer(tmp_path, f"training.optimizer={optimizer}")
    assert trainer.run(stop_at_step=2 * STEPS) == "interrupted"  # tasks 1 and 2 done, none of task 3
    method = trainer.method
    assert isinstance(method, Ogd) and method.basis is not None
    basis = method.basis
    assert basis.shape == (2, sum(p.numel() for p in method.trainable_parameters()))
    assert torch.allclose(basis @ basis.T, torch.eye(2), atol=1e-6)  # orthonormal
    # A fresh gradient of task 3 has components along the basis; after the hook it has none.
    params = method.trainable_parameters()
    for p in params:
        p.grad = None
    b = trainer.bench.tasks[2].get("train", torch.arange(32))
    F.cross_entropy(method.head_logits(b.x, b.lengths, 2), b.y).backward()
    raw = _flat_grad(params).clone()
    assert (basis @ raw).abs().max() > 1e-3
    method.after_task_backward(2, [2])
    projected = _flat_grad(params)
    assert (basis @ projected).abs().max() < 1e-6 * max(1.0, float(raw.norm()))
    assert torch.allclose(projected, raw - basis.T @ (basis @ raw), atol=1e-6)


def test_sgd_never_moves_along_a_finished_tasks_gradient(tmp_path: Path) -> None:
    """With plain SGD every step is −lr·(projected g): the whole displacement over tasks 2 and 3 is
    orthogonal to task 1's basis vector (up to float32 rounding of many steps)."""
    trainer = _trainer(tmp_path, "training.optimizer=sgd", "training.lr=0.05")
    trainer.run(stop_at_step=STEPS)
    method = trainer.method
    assert isinstance(method, Ogd) and method.basis is not None and method.basis.shape[0] == 1
    b1 = method.basis[0].clone()
    start = torch.cat([p.detach().reshape(-1) for p in method.trainable_parameters()])
    assert trainer.run() == "finished"
    moved = torch.cat([p.detach().reshape(-1) for p in method.trainable_parameters()]) - start
    assert float(moved.norm()) > 0.1
    assert abs(float(b1 @ moved)) < 1e-5 * float(moved.norm())


def test_learning_rate_is_divided_after_the_first_task(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "method.lr_divisor=4", "training.lr=0.01")
    assert [trainer.lr_at(p, 0) for p in range(3)] == [0.01, 0.0025, 0.0025]
    from engine.events import StepLogged

    lrs: list[float] = []
    trainer.emit = lambda e: lrs.append(e.values["lr"]) if isinstance(e, StepLogged) else None
    trainer.run()
    assert lrs[0] == 0.01 and lrs[-1] == 0.0025


def test_basis_gets_one_vector_per_finished_task_and_is_recorded(tmp_path: Path) -> None:
    from engine.store import read_run

    res = api.run(tiny("benchmark.scenario=class", method="ogd", steps=STEPS), tmp_path)
    assert res.status == "finished", res.error
    rec = read_run(res.run_dir)
    assert rec.series["ogd_basis_size"].values.tolist() == [1, 2, 2]  # none after the last task
    assert (rec.series["ogd_residual_norm"].values[:2] > 0).all()


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_ogd_resume_is_exact(tmp_path: Path, optimizer: str) -> None:
    cfg = tiny("benchmark.scenario=class", "model.batchnorm=true", "model.dropout=0.2", "training.l1_activation=0.1",
               f"training.optimizer={optimizer}", method="ogd", steps=STEPS)
    assert_resume_exact(cfg, tmp_path, stop_at=STEPS + 7)  # mid task 2: the basis must come back
