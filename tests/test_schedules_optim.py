"""LR schedules at known steps, each optimizer building and stepping, TrainingConfig's range checks,
and the loop applying the schedule step by step (restarting every phase)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from engine import events as ev
from engine.api import build_trainer
from engine.config import TrainingConfig
from engine.errors import ConfigError
from engine.optim import make_optimizer
from engine.schedules import cosine_lr, make_schedule, milestone_steps, step_decay_lr
from tests.conftest import tiny

torch.set_num_threads(1)


def test_constant_schedule() -> None:
    s = make_schedule(TrainingConfig(lr=0.3), [10])
    assert [s(0, k, 100) for k in (0, 50, 99)] == [0.3, 0.3, 0.3]


def test_step_decay_by_fractions_restarts_every_phase() -> None:
    tr = TrainingConfig(lr=1.0, lr_schedule="step", lr_gamma=0.1, lr_milestones=[0.5, 0.75])
    s = make_schedule(tr, [10, 10])
    assert [s(0, k, 100) for k in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert s(1, 0, 40) == 1.0 and s(1, 20, 40) == pytest.approx(0.1) and s(1, 30, 40) == pytest.approx(0.01)


def test_step_decay_by_epochs_uses_each_phases_epoch_length() -> None:
    tr = TrainingConfig(lr=0.2, lr_schedule="step", lr_gamma=0.5, lr_milestone_epochs=[2, 3])
    s = make_schedule(tr, [10, 4])  # phase 0: 10 steps per epoch, phase 1: 4
    assert [s(0, k, 50) for k in (19, 20, 29, 30)] == pytest.approx([0.2, 0.1, 0.1, 0.05])
    assert [s(1, k, 20) for k in (7, 8, 12)] == pytest.approx([0.2, 0.1, 0.05])
    assert milestone_steps(100, [0.25], [3], 10) == [25, 30]
    assert step_decay_lr(1.0, 0.5, 7, [3, 5, 8]) == 0.25


def test_cosine_from_lr_to_lr_min_each_phase() -> None:
    s = make_schedule(TrainingConfig(lr=1.0, lr_schedule="cosine", lr_min=0.1), [10])
    assert s(0, 0, 100) == 1.0
    assert s(0, 50, 100) == pytest.approx(0.55)
    assert s(0, 100, 100) == pytest.approx(0.1) and s(0, 150, 100) == pytest.approx(0.1)
    assert s(3, 25, 100) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert s(4, 0, 7) == 1.0  # restarts
    assert cosine_lr(2.0, 0.0, 1, 2) == pytest.approx(1.0)


def test_cosine_epochs_is_cosine_annealing_lr_stepped_once_per_epoch() -> None:
    """Each step's LR = what torch's CosineAnnealingLR(T_max = the phase's epochs) gives in that epoch."""
    s = make_schedule(TrainingConfig(lr=1e-3, lr_schedule="cosine_epochs"), [4, 3])
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    for epoch in range(5):
        lr = opt.param_groups[0]["lr"]
        assert [s(0, 4 * epoch + k, 20) for k in range(4)] == pytest.approx([lr] * 4, rel=1e-12)
        opt.step()  # no gradients: only keeps torch from warning about the order
        ref.step()
    assert s(1, 0, 9) == 1e-3 and s(1, 3, 9) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 3)))


OPTIMIZERS = {
    "sgd": ({"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}, torch.optim.SGD,
            {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}),
    "adam": ({"adam_beta1": 0.8, "eps": 1e-6}, torch.optim.Adam, {"betas": (0.8, 0.999), "eps": 1e-6}),
    "adamw": ({"weight_decay": 0.05}, torch.optim.AdamW, {"weight_decay": 0.05}),
    "rmsprop": ({"rmsprop_alpha": 0.9, "momentum": 0.5}, torch.optim.RMSprop, {"alpha": 0.9, "momentum": 0.5}),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_optimizer_builds_with_its_settings_and_steps(name: str) -> None:
    kwargs, cls, expect = OPTIMIZERS[name]
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    before = [p.detach().clone() for p in layer.parameters()]
    opt = make_optimizer(layer.parameters(), TrainingConfig(optimizer=name, lr=0.01, **kwargs))  # type: ignore[arg-type]
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.01 and all(group[k] == v for k, v in expect.items())
    for _ in range(2):
        opt.zero_grad()
        layer(torch.ones(2, 4)).square().sum().backward()
        opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, layer.parameters()))
    assert opt.state_dict()["state"]  # every one of them keeps per-parameter state (momentum, moments)


@pytest.mark.parametrize(("override", "message"), [
    ("training.lr=nan", "training.lr = nan is not a finite number"),
    ("training.lr=-0.1", "training.lr = -0.1 must be > 0"),
    ("training.nesterov=true", "training.nesterov needs optimizer = 'sgd' and momentum > 0"),
    ("training.restore_best=true", "training.restore_best needs a validation split"),
    ("training.early_stop_patience=2", "training.early_stop_patience needs a validation split"),
    ("training.lr_schedule=step", "needs lr_milestones or lr_milestone_epochs"),
    ("training.lr_milestones=[1.5]", "training.lr_milestones = [1.5]: fractions strictly between 0 and 1"),
    ("training.val_fraction=1.0", "training.val_fraction = 1.0 must be in [0, 1)"),
    ("training.stop_train_acc=101", "training.stop_train_acc = 101.0 is a percentage"),
    ("training.lr_min=1.0", "training.lr_min = 1.0 must be >= 0 and below lr"),
    ("training.optimizer=lamb", "is not one of"),
])
def test_bad_training_settings_are_one_clear_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")) as e:
        tiny(override)
    assert "\n" not in str(e.value)


def test_the_loop_sets_the_scheduled_lr_before_every_step() -> None:
    cfg = tiny("training.lr_schedule=step", "training.lr_milestones=[0.5]", "training.lr_gamma=0.1",
               "training.log_every=1", "training.lr=0.01", "analyses.curves.enabled=false", steps=10)
    logged: list = []
    trainer, _ = build_trainer(cfg, Path("."), logged.append)
    seen: list[float] = []
    original = trainer.method.after_step
    trainer.method.after_step = lambda phase, tasks: (seen.append(trainer.optimizer.param_groups[0]["lr"]),  # type: ignore[method-assign, union-attr]
                                                     original(phase, tasks))
    trainer.run()
    per_phase = [0.01] * 5 + [pytest.approx(0.001)] * 5
    assert seen == per_phase * 3  # the schedule restarts at every phase
    assert [e.values["lr"] for e in logged if isinstance(e, ev.StepLogged)] == per_phase * 3
