"""Phases: length in epochs, the validation hold-out, the train-accuracy stop, early stopping with
best-validation restore, each also stopped anywhere (mid-epoch, while counting patience, after a
best snapshot) and resumed to exactly the uninterrupted run (weights, optimizer, streams, accuracy)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine import api
from engine.api import build_trainer
from engine.loop import Trainer
from engine.store import read_run
from tests.conftest import assert_resume_exact, tiny

torch.set_num_threads(1)

SMALL = ("benchmark.train_per_task=50", "training.batch_size=16", "analyses.curves.enabled=false")


def _trainer(*overrides: str, method: str = "finetune") -> Trainer:
    trainer, _ = build_trainer(tiny(*SMALL, *overrides, method=method), Path("."), lambda e: None)
    return trainer


def _phase_lengths(trainer: Trainer) -> list[int]:
    """Steps each phase really ran, read from the loop's own counters as the run goes."""
    ends: list[int] = []
    original = trainer.method.after_phase

    def after_phase(phase: int, tasks: list[int]) -> None:
        ends.append(trainer.global_step)
        original(phase, tasks)

    trainer.method.after_phase = after_phase  # type: ignore[method-assign]
    assert trainer.run() == "finished"
    return [b - a for a, b in zip([0, *ends], ends)]


# -- length in epochs ------------------------------------------------------------------------------
def test_epoch_phases_have_epochs_times_ceil_n_over_b_steps() -> None:
    t = _trainer("training.epochs_per_task=3")
    assert [p.steps_per_epoch for p in t.plan] == [4, 4, 4]  # ceil(50 / 16)
    assert t.phase_steps == [12, 12, 12]
    assert _phase_lengths(t) == [12, 12, 12]
    held = _trainer("training.epochs_per_task=3", "training.val_per_task=18")
    assert held.phase_steps == [6, 6, 6]  # 32 training images left: 2 steps per epoch
    multi = _trainer("training.epochs_per_task=2", method="multitask")
    assert multi.phase_steps == [2 * math.ceil(150 / 16)]  # epochs of all tasks' data together
    capped = _trainer("training.epochs_per_task=3", "training.max_steps_per_phase=7")
    assert capped.phase_steps == [7, 7, 7] and _phase_lengths(capped) == [7, 7, 7]
    assert _trainer("training.steps_per_task=9").phase_steps == [9, 9, 9]  # steps, as before


@pytest.mark.parametrize("stop_at", [6, 12, 17])  # mid-epoch, phase end, mid-epoch of phase 1
def test_epoch_phases_resume_exactly(tmp_path: Path, stop_at: int) -> None:
    assert_resume_exact(tiny(*SMALL, "training.epochs_per_task=3"), tmp_path, stop_at)


# -- validation hold-out ---------------------------------------------------------------------------
def test_validation_is_held_out_of_training_by_its_own_stream() -> None:
    t = _trainer("training.val_fraction=0.2")
    for i, task in enumerate(t.bench.tasks):
        train, val = task._parts["train"], task._parts["val"]  # type: ignore[attr-defined]
        assert len(val) == 10 and task.size("val") == 10 and task.size("train") == 40
        assert sorted(train.tolist() + val.tolist()) == list(range(50))  # disjoint, nothing lost
        assert t.samplers[i].n == 40  # batches index the remaining part only
        b = task.get("val", torch.arange(10))
        assert torch.equal(b.y, task.inner.get("train", val).y)  # type: ignore[attr-defined]
    again = _trainer("training.val_fraction=0.2")
    other = _trainer("training.val_fraction=0.2", "seed=1")
    vals = [[task._parts["val"].tolist() for task in x.bench.tasks] for x in (t, again, other)]  # type: ignore[attr-defined]
    assert vals[0] == vals[1] and vals[0] != vals[2]


def test_a_hold_out_that_leaves_nothing_to_train_on_is_refused() -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="leaves no training data"):
        _trainer("training.val_per_task=50")


# -- stop at a train accuracy ----------------------------------------------------------------------
def test_train_accuracy_stop_ends_a_phase_at_the_first_epoch_at_or_above_it() -> None:
    t = _trainer("training.epochs_per_task=10", "training.stop_train_acc=95")
    batches: list[tuple[int, int, int]] = []  # (phase, correct, n) per step
    original = t.tracker.add_batch

    def add_batch(correct: torch.Tensor, n: int) -> None:
        batches.append((t.phase, int(correct), n))
        original(correct, n)

    t.tracker.add_batch = add_batch  # type: ignore[method-assign]
    lengths = _phase_lengths(t)
    spe = t.plan[0].steps_per_epoch
    for phase, length in enumerate(lengths):
        steps = [(c, n) for p, c, n in batches if p == phase]
        epochs = [steps[k : k + spe] for k in range(0, len(steps), spe)]
        accs = [100.0 * sum(c for c, _ in e) / sum(n for _, n in e) for e in epochs]
        first = next((k for k, a in enumerate(accs) if a >= 95), None)
        assert length == (40 if first is None else (first + 1) * spe)
    assert any(n < 40 for n in lengths)  # the rule did fire here


@pytest.mark.parametrize("stop_at", [5, 13])
def test_train_accuracy_stop_resumes_exactly(tmp_path: Path, stop_at: int) -> None:
    assert_resume_exact(tiny(*SMALL, "training.epochs_per_task=10", "training.stop_train_acc=95"), tmp_path, stop_at)


# -- early stopping and best-validation restore ----------------------------------------------------
BEST = ("training.epochs_per_task=8", "training.val_per_task=18", "training.early_stop_patience=2",
        "training.restore_best=true", "training.optimizer=sgd", "training.lr=0.5")


def _weights(t: Trainer) -> list[torch.Tensor]:
    return [v.detach().clone() for v in t.model.state_dict().values()] + \
           [p.detach().clone() for p in t.method.trainable_parameters()]


def _timeline(t: Trainer) -> tuple[list[dict[str, Any]], list[list[torch.Tensor]]]:
    """Run `t`, recording every stop-rule check and the weights the method consolidates at each phase end."""
    checks: list[dict[str, Any]] = []
    kept: list[list[torch.Tensor]] = []
    val, check, after = t.val_accuracy, t.tracker.check, t.method.after_phase

    def val_accuracy(tasks: list[int]) -> float:
        v = val(tasks)
        checks.append({"phase": t.phase, "step": t.global_step, "val": v, "weights": _weights(t)})
        return v

    def tracked(*args: Any) -> bool:
        stop = check(*args)
        checks[-1].update(since_best=t.tracker.since_best, snapshot=t.tracker.best is not None, stop=stop)
        return stop

    def after_phase(phase: int, tasks: list[int]) -> None:
        kept.append(_weights(t))
        after(phase, tasks)

    t.val_accuracy, t.tracker.check, t.method.after_phase = val_accuracy, tracked, after_phase  # type: ignore[method-assign]
    assert t.run() == "finished"
    return checks, kept


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("method", ["finetune", "hnet"])
def test_early_stopping_and_the_restored_weights_are_the_best_checks(method: str) -> None:
    extra = ("method.hidden=[16]", "method.chunk_size=500", "training.lr=0.05") if method == "hnet" else ()
    checks, kept = _timeline(_trainer(*BEST, *extra, method=method))
    restored_earlier = False
    for phase, weights in enumerate(kept):
        mine = [c for c in checks if c["phase"] == phase]
        best = max(range(len(mine)), key=lambda k: (mine[k]["val"], -k))  # the first of the best
        assert _equal(weights, mine[best]["weights"])
        restored_earlier |= not _equal(weights, mine[-1]["weights"])
        # early stopping: the phase ends exactly when `patience` epochs in a row brought no better value
        assert [c["stop"] for c in mine] == [c["since_best"] >= 2 for c in mine]
        assert len(mine) - 1 - best == (2 if mine[-1]["stop"] else len(mine) - 1 - best)
    assert restored_earlier  # some phase ended past its best: the restore really moved the weights
    assert any(c["stop"] for c in checks)


def test_early_stopping_resumes_exactly_while_counting_patience_and_after_a_snapshot(tmp_path: Path) -> None:
    cfg = tiny(*SMALL, *BEST)
    checks, _ = _timeline(build_trainer(cfg, Path("."), lambda e: None)[0])
    counting = next(c for c in checks if c["since_best"] >= 1 and c["snapshot"] and not c["stop"])
    for stop_at in (counting["step"], counting["step"] + 1):  # right after the check, and mid-epoch after it
        assert_resume_exact(cfg, tmp_path / str(stop_at), stop_at)


def test_the_record_holds_each_epochs_measurements_and_why_each_phase_ended(tmp_path: Path) -> None:
    """val_acc and epoch_train_acc at every check, phase_steps/phase_stop once per phase, all in run.h5."""
    from engine.phases import STOP_REASONS

    cfg = tiny(*SMALL, "training.epochs_per_task=6", "training.val_per_task=20", "training.early_stop_patience=1",
               "training.stop_train_acc=99.9", steps=5)
    res = api.run(cfg, tmp_path)
    assert res.status == "finished", res.error
    rec = read_run(res.run_dir)
    steps, stop = rec.series["phase_steps"], rec.series["phase_stop"]
    assert len(steps.values) == len(stop.values) == len(rec.phase_steps)
    spe = math.ceil(30 / 16)  # 50 training images per task, 20 held out, batch 16
    assert all(0 < n <= 6 * spe for n in steps.values)
    ended_early = [STOP_REASONS[c] != "length" for c in stop.values]
    assert ended_early == [n < 6 * spe for n in steps.values] and any(ended_early)
    val, tacc = rec.series["val_acc"], rec.series["epoch_train_acc"]
    assert len(val.values) >= len(tacc.values) > 0
    assert np.all((val.values >= 0) & (val.values <= 100)) and np.all((tacc.values >= 0) & (tacc.values <= 100))
