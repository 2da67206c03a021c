"""The shape of a phase: its planned length, its epochs, and the stop rules checked at each epoch end.

`plan_phases` turns the method's schedule (which tasks train together) and the TrainingConfig into
one `PhasePlan` per phase. `PhaseTracker` holds what the stop rules need inside a phase (the current
epoch's train accuracy, the best validation accuracy so far, epochs since it, the best weights) and
is part of the loop's checkpoint, so a run stopped anywhere in a phase resumes exactly.

Definitions (also in TrainingConfig's docstring):
* epoch of a phase = ceil(N / batch_size) steps, N = training samples of the phase's tasks together
  (after the validation hold-out). The samplers run on across epoch ends.
* length = epochs_per_task × steps per epoch when epochs_per_task > 0, else the method's schedule
  (steps_per_task; multitask: × num_tasks); then capped by max_steps_per_phase (when > 0). The LR
  schedule sees this planned length, also when a stop rule ends the phase earlier.
* train accuracy of an epoch = correct / seen over every training batch of that epoch (each batch
  measured at the weights it was trained from, before its step). Checked only at full epoch ends.
* validation accuracy = the mean over the phase's tasks of each task's accuracy on its held-out
  samples; measured at every epoch end and at the phase's last step. Early stopping counts epochs
  without a strictly better value; a restore brings back the best check's weights.
* "weights" restored = the model's state_dict (parameters and buffers) and the values of the
  method's trainable parameters (e.g. HNET's hypernetwork). The method's other state (SI's running
  path integral, EWC's Fisher) and the optimizer's state are not rolled back; the method's
  after_phase consolidation runs after the restore, i.e. at the kept weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from engine.config import TrainingConfig
from engine.methods.base import Method
from engine.series import SeriesSpec

STOP_REASONS = ("length", "train_acc", "early_stop")
"""Why a phase ended, as stored in the `phase_stop` series (the index is the code)."""


def phase_series(tr: TrainingConfig) -> list[SeriesSpec]:
    """What the phase machinery records: the stop rules' measurements and how each phase ended."""
    out = [
        SeriesSpec("epoch_train_acc", cadence="epoch",
                   description="accuracy (%) over every training batch of the epoch that just ended"),
        SeriesSpec("phase_steps", dtype="i8", cadence="phase",
                   description="optimizer steps the phase trained (a stop rule may end it before its planned length)"),
        SeriesSpec("phase_stop", dtype="i4", cadence="phase",
                   description="why the phase ended: " + ", ".join(f"{i} = {r}" for i, r in enumerate(STOP_REASONS))),
    ]
    if tr.val_fraction > 0 or tr.val_per_task > 0:
        out.insert(1, SeriesSpec("val_acc", cadence="epoch", description=(
            "mean held-out validation accuracy (%) of the phase's tasks, at each epoch end and the phase's last step")))
    if tr.test_every_epoch:
        out.append(SeriesSpec("epoch_test_acc", cadence="epoch", description=(
            "test accuracy (%) over the phase's tasks (their active classes), at each epoch end")))
    return out


@dataclass(frozen=True)
class PhasePlan:
    tasks: list[int]
    steps: int
    """Planned length in optimizer steps (a stop rule may end the phase earlier)."""
    steps_per_epoch: int


def plan_phases(schedule: Sequence[tuple[list[int], int]], tr: TrainingConfig,
                train_sizes: Sequence[int]) -> list[PhasePlan]:
    plans = []
    for tasks, steps in schedule:
        spe = max(1, math.ceil(sum(train_sizes[t] for t in tasks) / tr.batch_size))
        length = tr.epochs_per_task * spe if tr.epochs_per_task > 0 else steps
        if tr.max_steps_per_phase > 0:
            length = min(length, tr.max_steps_per_phase)
        plans.append(PhasePlan(list(tasks), length, spe))
    return plans


class PhaseTracker:
    """Stop-rule bookkeeping inside one phase; `reset()` at every phase start."""

    def __init__(self, tr: TrainingConfig, device: torch.device) -> None:
        self.tr = tr
        self.device = device
        self.validation = tr.val_fraction > 0 or tr.val_per_task > 0
        self.reset()

    def reset(self) -> None:
        # Summed on the device so that no step waits for the GPU; read once per epoch.
        self.correct = torch.zeros((), dtype=torch.long, device=self.device)
        self.seen = 0
        self.best_val = -math.inf
        self.since_best = 0
        self.best: dict[str, Any] | None = None
        self.stop_reason = ""
        self.last_train_acc: float | None = None  # of the last full epoch (for the record)
        self.last_val: float | None = None  # of the last check

    def add_batch(self, correct: Tensor, n: int) -> None:
        self.correct += correct.detach().long()
        self.seen += n

    def check(self, epoch_end: bool, val_acc: Callable[[], float], snapshot: Callable[[], dict[str, Any]]) -> bool:
        """Run the stop rules at an epoch end or the phase's last step; True = end the phase now."""
        tr, stop = self.tr, False
        self.last_train_acc = self.last_val = None
        if self.validation:
            v = self.last_val = val_acc()
            if v > self.best_val:
                self.best_val, self.since_best = v, 0
                if tr.restore_best:
                    self.best = snapshot()
            elif epoch_end:
                self.since_best += 1
            if epoch_end and 0 < tr.early_stop_patience <= self.since_best:
                stop, self.stop_reason = True, self.stop_reason or "early_stop"
        if epoch_end:
            train_acc = self.last_train_acc = int(self.correct) * 100.0 / max(1, self.seen)
            if tr.stop_train_acc > 0 and train_acc >= tr.stop_train_acc:
                stop, self.stop_reason = True, self.stop_reason or "train_acc"
            self.correct.zero_()
            self.seen = 0
        return stop

    def state_dict(self) -> dict[str, Any]:
        return {"correct": int(self.correct), "seen": self.seen, "best_val": self.best_val,
                "since_best": self.since_best, "best": self.best, "stop_reason": self.stop_reason}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.correct = torch.tensor(state["correct"], dtype=torch.long, device=self.device)
        self.seen, self.best_val, self.since_best = state["seen"], state["best_val"], state["since_best"]
        self.best, self.stop_reason = state["best"], state["stop_reason"]


def snapshot_weights(method: Method) -> dict[str, Any]:
    """The weights a best-validation restore brings back (see the module docstring)."""
    return {"model": {k: v.detach().clone() for k, v in method.model.state_dict().items()},
            "params": [p.detach().clone() for p in method.trainable_parameters()]}


@torch.no_grad()
def restore_weights(method: Method, snap: dict[str, Any]) -> None:
    method.model.load_state_dict(snap["model"])
    for p, v in zip(method.trainable_parameters(), snap["params"]):
        p.copy_(v)
