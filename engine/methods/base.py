"""The hooks a CL method fills in; the one training loop (engine/loop.py) calls them.

Per phase (one task per phase, except multitask):
    before_phase → [per step: lr = schedule × lr_factor(phase) → forward (via head_logits) →
    task loss (+ L1 activation term) backward → after_task_backward → penalty (backward) → clip,
    optimizer step → after_step] → after_phase → evaluation → phase_diagnostics →
    [task inference, engine/inference.py].
Everything a method needs to continue a run bit for bit goes in `state_dict`.

A method is one module: its options dataclass (each field with `engine.schema.opt` help) right
above its `Method` subclass, bound by `@METHODS.register(XOptions)` (engine.registry), and its
module name in engine/methods/__init__.py's MODULES. It reaches the model only through the contract
of engine/models/base.py (forward, features, unit_layers + gated, readout, functional_call).
Diagnostics go into the run record only as declared series (`declare_series`, engine/series.py):
the dict `penalty` returns (cadence 'log': the loop keeps the last step's tensors and converts them
at log steps only, so there is no host sync per step) and `phase_diagnostics` (cadence 'phase').
A key nobody declared fails the run with a SeriesError naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from engine.benchmarks.base import Benchmark
from engine.config import TrainingConfig
from engine.models.base import CLModel
from engine.rng import Streams
from engine.series import SeriesSpec


@dataclass
class MethodContext:
    """What a method may use: the model, the data, the device, the training settings and its random streams."""

    model: CLModel
    benchmark: Benchmark
    device: torch.device
    training: TrainingConfig
    seed: int
    streams: Streams = field(default=None)  # type: ignore[assignment]  # None → the run's own, made from `seed`
    """The run's named random streams (the loop saves them in the checkpoint); draw via `generator(name)`."""

    def __post_init__(self) -> None:
        if self.streams is None:
            self.streams = Streams(self.seed)

    def generator(self, name: str) -> torch.Generator:
        """The CPU generator of the named stream, e.g. "fisher": draws there never shift another component's."""
        return self.streams.get(name)


class Method:
    """No-op defaults: plain fine-tuning. Subclasses override only the hooks they need."""

    optimizer: torch.optim.Optimizer | None = None
    """The current phase's optimizer, set by the loop before the phase's first step (SI reads its state)."""

    def __init__(self, opts: Any, ctx: MethodContext) -> None:
        self.opts = opts
        self.ctx = ctx

    @property
    def model(self) -> CLModel:
        return self.ctx.model

    # -- plan ---------------------------------------------------------------------------------
    def schedule(self, num_tasks: int, steps_per_task: int) -> list[tuple[list[int], int]]:
        """(tasks trained together, steps) per phase. Default: one task after another."""
        return [([t], steps_per_task) for t in range(num_tasks)]

    def trainable_parameters(self) -> list[Tensor]:
        return list(self.model.parameters())

    def lr_factor(self, phase: int) -> float:
        """Factor on the scheduled learning rate of every step of `phase` (a pure function of the phase,
        so resuming needs nothing more). Default 1; OGD divides the rate for every task after the first."""
        return 1.0

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: Tensor, lengths: Tensor | None, task: int) -> Tensor:
        """All output units for inputs of task `task` (masks, generated weights, ... go here)."""
        return self.model(x, lengths)

    def head_logits(self, x: Tensor, lengths: Tensor | None, task: int) -> Tensor:
        """Logits of task `task`'s head only: the softmax runs over these."""
        return self.forward(x, lengths, task).index_select(1, self.ctx.benchmark.head(task))

    # -- hooks --------------------------------------------------------------------------------
    def before_phase(self, phase: int, tasks: list[int]) -> None:
        pass

    def after_task_backward(self, phase: int, tasks: list[int]) -> None:
        """Called when .grad holds the gradient of the task loss alone (plus the L1 activation term when
        training.l1_activation > 0), before any method penalty, clipping and the optimizer step."""

    def penalty(self, phase: int, tasks: list[int]) -> tuple[Tensor | None, dict[str, Tensor | float]]:
        """Extra loss (regulariser, replay) for this step, backpropagated after the task loss.

        The dict holds diagnostics of this step (0-d tensors, left on the device): one per declared
        log-cadence series; the loop records them at log steps.
        """
        return None, {}

    def after_step(self, phase: int, tasks: list[int]) -> None:
        pass

    def after_phase(self, phase: int, tasks: list[int]) -> None:
        pass

    # -- task inference (evaluation.task_inference != "given") -------------------------------
    infers_task: bool = False
    """True when the method implements `infer_task`; config validation refuses inference for the others."""

    def check_task_inference(self) -> None:
        """Raise a ConfigError when this run (e.g. its model) rules task inference out; called once
        before training when evaluation.task_inference != "given"."""

    def infer_task(self, x: Tensor, lengths: Tensor | None, learned: list[int],
                   objective: Callable[[Tensor], Tensor]) -> Tensor:
        """The task of each input row, inferred without labels: long [n] (any index < num_tasks).

        Each row is inferred on its own (a row is the first example of one test batch); `learned`
        are the tasks trained so far; `objective` maps all output units [n, O] to one value per row
        [n] that is lower for the right task (engine/inference.py: entropy H or SupSup's G).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot infer the task")

    # -- record -------------------------------------------------------------------------------
    def declare_series(self) -> list[SeriesSpec]:
        """The diagnostics this method writes (cadence 'log' from `penalty`, 'phase' from `phase_diagnostics`)."""
        return []

    def phase_diagnostics(self, phase: int, tasks: list[int]) -> dict[str, Any]:
        """Values of declared phase-cadence series, read after `after_phase` (e.g. the Fisher's total)."""
        return {}

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        """Facts worth storing in the run record (e.g. a hypernetwork's compression ratio)."""
        return {}


def weighted_sq_distance(model: CLModel, anchor: dict[str, Tensor], weight: dict[str, Tensor]) -> Tensor:
    """Σ_params Σ weight ⊙ (θ − anchor)², the quadratic penalty of EWC (weight = Fisher) and SI
    (weight = Ω). Vectorised over parameters (one foreach kernel per op, not one per parameter:
    on a GPU 3 launches instead of 3·P); the per-parameter sums are then added in parameter order,
    so the result is bit for bit the per-parameter loop's."""
    names, params = zip(*model.named_parameters())
    diffs = torch._foreach_sub(list(params), [anchor[n] for n in names])
    weighted = torch._foreach_mul(torch._foreach_mul(diffs, diffs), [weight[n] for n in names])
    sums = [w.sum() for w in weighted]
    total = sums[0]
    for s in sums[1:]:
        total = total + s
    return total
