"""Coresets: the buffer (coreset_size indices per finished task), the replay split, the teacher copy,
the distillation loss at the teacher's own weights, and exact resume."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.api import build_trainer
from engine.config import load_config
from engine.methods.coresets import distillation_loss
from tests.conftest import assert_resume_exact

torch.set_num_threads(1)


def tiny_cfg(**opts: object):
    raw = {
        "name": "tiny-coresets", "seed": 7, "device": "cpu",
        "benchmark": {"name": "split_mnist", "data": "embedded", "num_tasks": 4},
        "model": {"name": "mlp", "hidden": [32, 32]},
        "method": {"name": "coresets", "coreset_size": 30, **opts},
        "training": {"steps_per_task": 15, "batch_size": 32},
        "evaluation": {"initial": False}, "analyses": {"curves": {"enabled": False}},
    }
    return load_config(raw, "test")


def test_buffer_holds_coreset_size_indices_per_finished_task() -> None:
    tr, _ = build_trainer(tiny_cfg(), Path("."), lambda e: None)
    for stop, done in ((15, 1), (30, 2), (45, 3)):
        tr.run(stop_at_step=stop)
        assert sorted(tr.method.coresets) == list(range(done))
        for t, idx in tr.method.coresets.items():
            n = tr.bench.tasks[t].size("train")
            assert idx.dtype == torch.long and len(idx) == 30 and len(set(idx.tolist())) == 30
            assert 0 <= int(idx.min()) and int(idx.max()) < n
    state = tr.method.state_dict()["coresets"]
    assert set(state["indices"]) == {0, 1, 2} and state["old_model"] is not None


def test_teacher_is_the_network_at_the_start_of_the_task_and_frozen() -> None:
    tr, _ = build_trainer(tiny_cfg(), Path("."), lambda e: None)
    tr.run(stop_at_step=15)  # task 1 has started, no step taken yet
    start = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.run(stop_at_step=25)
    old = tr.method.old
    assert old is not None and not old.training
    assert all(not p.requires_grad for p in old.parameters())
    for k, v in old.state_dict().items():
        assert torch.equal(v, start[k])
    assert not all(torch.equal(v, start[k]) for k, v in tr.model.state_dict().items())


@pytest.mark.parametrize("replay_batch", [-1, 7])
def test_replay_batch_is_split_over_old_tasks(replay_batch: int) -> None:
    tr, _ = build_trainer(tiny_cfg(replay_batch=replay_batch), Path("."), lambda e: None)
    tr.run(stop_at_step=30)  # task 2 starts: tasks 0 and 1 are old
    calls: list[tuple[int, int]] = []
    for t, task in enumerate(tr.bench.tasks):
        inner = task.get

        def get(split: str, idx: torch.Tensor, t: int = t, inner=inner):  # type: ignore[no-untyped-def]
            calls.append((t, len(idx)))
            return inner(split, idx)

        task.get = get  # type: ignore[method-assign]
    for _ in range(6):
        calls.clear()
        tr.method.penalty(2, [2])
        sizes = Counter()
        for t, n in calls:
            sizes[t] += n
        total = 32 if replay_batch == -1 else replay_batch
        assert set(sizes) <= {0, 1} and sum(sizes.values()) == total
        assert max(sizes.values()) - min(sizes.values()) <= 1


def test_distillation_loss_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    z, z_old = torch.randn(5, 2, generator=gen), torch.randn(5, 2, generator=gen)
    t = 2.0
    expected = t * t * torch.stack([
        -(F.softmax(z_old[i] / t, 0) * F.log_softmax(z[i] / t, 0)).sum() for i in range(5)]).mean()
    torch.testing.assert_close(distillation_loss(z, z_old, t), expected)


def test_kd_at_the_teachers_own_weights_is_its_entropy_and_has_zero_gradient() -> None:
    """KD with soft targets equal to the network's own output is NOT zero: it is the cross-entropy of a
    distribution with itself, T²·H(softmax(z_old/T)). What vanishes is its gradient, since
    ∂KD/∂z = T·(softmax(z/T) − softmax(z_old/T))/N = 0 when z = z_old. So at the start of a task
    (network = teacher) we assert: penalty = distill_reg·Σ_old tasks T²·mean entropy, gradient ≈ 0."""
    lam, temp = 0.5, 2.0
    tr, _ = build_trainer(tiny_cfg(distill_reg=lam, temperature=temp), Path("."), lambda e: None)
    tr.run(stop_at_step=30)  # task 2 starts: network == teacher
    batches: list[tuple[int, torch.Tensor]] = []
    for t, task in enumerate(tr.bench.tasks):
        inner = task.get

        def get(split: str, idx: torch.Tensor, t: int = t, inner=inner):  # type: ignore[no-untyped-def]
            b = inner(split, idx)
            batches.append((t, b.x))
            return b

        task.get = get  # type: ignore[method-assign]
    tr.model.zero_grad(set_to_none=True)
    pen, _ = tr.method.penalty(2, [2])
    assert pen is not None
    pen.backward()
    expected = 0.0
    with torch.no_grad():
        for t, x in batches:
            p = F.softmax(tr.model(x).index_select(1, tr.bench.head_columns[t]) / temp, 1)
            expected += temp * temp * float(-(p * p.log()).sum(1).mean())
    assert float(pen.detach()) == pytest.approx(lam * expected, rel=1e-5)
    assert float(pen.detach()) > 0
    for p in tr.model.parameters():
        assert p.grad is None or float(p.grad.abs().max()) < 1e-6


@pytest.mark.parametrize("stop_at", [15, 30, 37], ids=["first-boundary", "task-boundary", "mid-task"])
def test_resume_equals_uninterrupted(tmp_path: Path, stop_at: int) -> None:
    cfg = tiny_cfg(distill_reg=2.0)
    assert_resume_exact(cfg, tmp_path, stop_at)
