"""Orthogonal Gradient Descent as the §11 forgetting study implements it (spec §11.3).

State: an orthonormal basis B (k rows, one per finished task, each flattened over all trainable
parameters in `trainable_parameters()` order).

* After each task (every phase but the last: nothing would use the last one's vector), average the
  task loss's gradient over all training batches of that task: the model in train mode (BatchNorm
  uses batch statistics and updates its running statistics, dropout draws masks from the global
  torch RNG, as in the study; the loop checkpoints that RNG), batches of `training.batch_size` in a
  fresh shuffle from the run's "ogd" stream, the mean of the per-batch mean-CE gradients. Gram-Schmidt
  it against B; append it, normalised, if its norm after that is > `min_norm` (1e-8).
* Every step, after the task loss's backward and before the optimizer step
  (`after_task_backward`): g ← g − Σ_b b(b·g), written back into every parameter's `.grad`.
* The learning rate of every task after the first is the scheduled rate / `lr_divisor` (the study:
  AdamW lr 1e-4, "divided by 5 for every task after the first"; read here as lr/5 for each later
  task, not compounding). Works with any optimizer (the study tried SGD and AdamW).

The projection runs on the task loss's gradient (plus the L1 activation term when
training.l1_activation > 0); OGD has no penalty of its own. The stored gradient is that of the
cross-entropy alone. Gram-Schmidt runs twice in float64 ("twice is enough") so the float32 basis
stays orthonormal to ~1e-7 however many tasks are added; the study's single pass computes the same
vector up to rounding. The basis is in the checkpoint, so a resumed run projects exactly as the
uninterrupted one. Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.methods.base import Method, MethodContext
from engine.registry import METHODS
from engine.schema import opt
from engine.series import SeriesSpec


@dataclass(frozen=True)
class OgdOptions:
    """Orthogonal Gradient Descent (spec §11.3): project every step's gradient off one averaged gradient per finished task."""

    lr_divisor: float = opt(5.0, "learning rate of every task after the first = scheduled lr / lr_divisor (the study: 5; 1 = off)")
    min_norm: float = opt(1e-8, "append a task's gradient to the basis only if its norm after Gram-Schmidt is > this")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "method." in front.
        if self.lr_divisor <= 0:
            raise ValueError(f"lr_divisor = {self.lr_divisor!r} must be > 0 (1 = the same rate for every task)")
        if self.min_norm < 0:
            raise ValueError(f"min_norm = {self.min_norm!r} must be >= 0")


def gram_schmidt(basis: Tensor | None, g: Tensor, min_norm: float) -> tuple[Tensor | None, float]:
    """(the unit vector of `g` orthogonal to the rows of `basis`, or None when its norm is <= min_norm;
    that norm). Computed in float64, orthogonalised twice; returned in g's dtype."""
    v = g.double()
    b = None if basis is None else basis.double()
    norm = 0.0
    for i in range(2):
        if b is not None:
            v = v - b.T @ (b @ v)
        if i == 0:
            norm = float(v.norm())  # the study's test: the residual after one Gram-Schmidt pass
            if norm <= min_norm:
                return None, norm
    return (v / v.norm()).to(g.dtype), norm


def project_out(basis: Tensor, g: Tensor) -> Tensor:
    """g − Σ_b b(b·g) for the orthonormal rows b of `basis`."""
    return g - basis.T @ (basis @ g)


@METHODS.register(OgdOptions)
class Ogd(Method):
    def __init__(self, opts: OgdOptions, ctx: MethodContext) -> None:
        super().__init__(opts, ctx)
        self.basis: Tensor | None = None
        """[k, P] orthonormal rows, on the device; None before the first task ends."""
        self.last_residual = float("nan")  # norm of the last task's gradient after Gram-Schmidt

    def _last_phase(self) -> int:
        return len(self.schedule(self.ctx.benchmark.num_tasks, self.ctx.training.steps_per_task)) - 1

    def lr_factor(self, phase: int) -> float:
        return 1.0 if phase == 0 else 1.0 / self.opts.lr_divisor

    # -- the task gradient --------------------------------------------------------------------
    def task_gradient(self, task: int) -> Tensor:
        """Mean over all training batches of `task` of the batch's mean-CE gradient, flattened (train mode)."""
        data = self.ctx.benchmark.tasks[task]
        n = data.size("train")
        order = torch.randperm(n, generator=self.ctx.generator("ogd")).to(self.ctx.device)
        chunks = list(torch.split(order, self.ctx.training.batch_size))
        if len(chunks) > 1 and chunks[-1].numel() == 1:  # BatchNorm cannot normalise a batch of one in train mode
            chunks[-2:] = [torch.cat(chunks[-2:])]
        params = self.trainable_parameters()
        total = [torch.zeros_like(p) for p in params]
        was_training = self.model.training
        self.model.train()
        try:
            for idx in chunks:
                b = data.get("train", idx)
                loss = F.cross_entropy(self.head_logits(b.x, b.lengths, task), b.y)
                for acc, g in zip(total, torch.autograd.grad(loss, params, allow_unused=True)):
                    if g is not None:
                        acc.add_(g)
        finally:
            self.model.train(was_training)
        return torch.cat([t.reshape(-1) for t in total]) / len(chunks)

    # -- hooks --------------------------------------------------------------------------------
    @torch.no_grad()
    def after_task_backward(self, phase: int, tasks: list[int]) -> None:
        super().after_task_backward(phase, tasks)
        if self.basis is None:
            return
        params = self.trainable_parameters()
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        flat = project_out(self.basis, flat)
        i = 0
        for p in params:
            g = flat[i : i + p.numel()].view_as(p)
            i += p.numel()
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)

    def after_phase(self, phase: int, tasks: list[int]) -> None:
        super().after_phase(phase, tasks)
        if phase >= self._last_phase():
            return  # no later step would be projected on it
        for t in tasks:  # one task per phase in every schedule OGD is used with
            g = self.task_gradient(t)
            with torch.no_grad():
                unit, self.last_residual = gram_schmidt(self.basis, g, self.opts.min_norm)
                if unit is not None:
                    self.basis = unit[None] if self.basis is None else torch.cat([self.basis, unit[None]])

    # -- record -------------------------------------------------------------------------------
    def declare_series(self) -> list[SeriesSpec]:
        return [*super().declare_series(),
                SeriesSpec("ogd_basis_size", dtype="i8", cadence="phase",
                           description="vectors in the OGD basis after the phase (one per finished task, "
                                       "unless a gradient lay in the span of the earlier ones)"),
                SeriesSpec("ogd_residual_norm", cadence="phase",
                           description="norm of the phase's task gradient after Gram-Schmidt against the "
                                       "earlier basis (NaN after the last phase: no gradient is taken)")]

    def phase_diagnostics(self, phase: int, tasks: list[int]) -> dict[str, Any]:
        out = super().phase_diagnostics(phase, tasks)
        out["ogd_basis_size"] = 0 if self.basis is None else int(self.basis.shape[0])
        out["ogd_residual_norm"] = self.last_residual if phase < self._last_phase() else float("nan")
        return out

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["ogd"] = {"basis": None if self.basis is None else self.basis.detach().cpu().clone(),
                        "last_residual": self.last_residual}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        basis = state["ogd"]["basis"]
        self.basis = None if basis is None else basis.to(self.ctx.device)
        self.last_residual = state["ogd"]["last_residual"]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ogd_parameters": sum(p.numel() for p in self.trainable_parameters())}
