"""Synaptic Intelligence (reference §4.3): a per-weight importance Ω from the path integral of the loss.

Regularised set θ: all model parameters. While training every task but the last, the running
path integral is ω ← ω + Δθ ⊙ (−g) after each step. At the end of such a task,
Ω ← Ω + max(0, ω / ((θ_end − θ_start)² + ξ)) (ξ = `damping`), then θ_start ← θ_end, θ_prev ← θ_end
and ω ← 0. Later tasks add the penalty c·Σ Ω ⊙ (θ − θ_prev)², c = `si_lambda`, with no ½ (unlike EWC).

Which Δθ and g enter ω:

* `task_loss_only = true` (every reference run): g = the task-loss gradient alone (what .grad holds
  in `after_task_backward`), and Δθ = the step the optimizer WOULD take from that gradient,
  predicted from a copy of its state: Adam's moments and bias correction for step+1 (zero moments
  on the first step), with the param group's lr, betas, eps and (L2-style) weight_decay. For SGD
  the prediction is −lr·(g + wd·θ), through a copy of the momentum buffer when momentum ≠ 0
  (plain SGD: Δθ = −lr·g). The optimizer's state is never touched.
* `task_loss_only = false`: Δθ = the real change made by `step()`, g = the full gradient .grad holds
  at that point (task loss + penalty, after clipping).

The loop gives the method its optimizer as `self.optimizer` (set when a phase's optimizer exists).
Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from engine.methods.base import Method, MethodContext, weighted_sq_distance
from engine.registry import METHODS
from engine.schema import opt
from engine.series import SeriesSpec


@torch.no_grad()
def predicted_step(opt: torch.optim.Optimizer, p: Tensor, g: Tensor) -> Tensor:
    """The change `opt.step()` would make to `p` if its gradient were `g`; reads a copy of the state only.

    Mirrors torch's single-tensor Adam/AdamW (no amsgrad) and SGD (momentum, dampening, Nesterov)
    updates. Raises for optimizers and options it does not model.
    """
    group = next(gr for gr in opt.param_groups if any(q is p for q in gr["params"]))
    state = opt.state.get(p, {})
    lr, wd = group["lr"], group["weight_decay"]
    if group.get("maximize", False) or group.get("amsgrad", False):
        raise ValueError("SI's task-loss-only step prediction does not support maximize or amsgrad")
    decoupled = isinstance(opt, torch.optim.AdamW) or group.get("decoupled_weight_decay", False)
    delta = torch.zeros_like(p)
    if wd != 0 and decoupled:
        delta = -lr * wd * p  # AdamW shrinks the weights first, independently of the gradient
    d = g if wd == 0 or decoupled else g.add(p, alpha=wd)
    if isinstance(opt, torch.optim.Adam):
        # The same ops as torch's single-tensor Adam, out of place so the optimizer's state stays intact.
        beta1, beta2 = group["betas"]
        step = float(state["step"]) + 1.0 if "step" in state else 1.0
        m = state["exp_avg"] if "exp_avg" in state else torch.zeros_like(p)
        v = state["exp_avg_sq"] if "exp_avg_sq" in state else torch.zeros_like(p)
        m = m.lerp(d, 1 - beta1)
        v = v.mul(beta2).addcmul_(d, d, value=1 - beta2)
        step_size = lr / (1 - beta1**step)
        denom = (v.sqrt() / (1 - beta2**step) ** 0.5).add_(group["eps"])
        return delta.addcdiv_(m, denom, value=-step_size)
    if isinstance(opt, torch.optim.SGD):
        momentum = group["momentum"]
        if momentum != 0:
            buf = state.get("momentum_buffer")
            buf = d.clone() if buf is None else buf.mul(momentum).add_(d, alpha=1 - group["dampening"])
            d = d.add(buf, alpha=momentum) if group["nesterov"] else buf
        return delta.add_(d, alpha=-lr)
    raise ValueError(f"SI cannot predict a step of {type(opt).__name__}; use Adam or SGD")


@torch.no_grad()
def predicted_steps(opt: torch.optim.Optimizer, params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
    """`predicted_step` for many parameters at once, bit for bit the same numbers.

    Adam/AdamW parameters are vectorised with torch._foreach_* ops, in buckets sharing a param
    group and a step count (one bucket in practice): about 10 foreach calls a step instead of 10 ops
    per parameter plus a search of the param groups for each. Other optimizers go one by one.
    """
    group_of = {id(q): gr for gr in opt.param_groups for q in gr["params"]}
    out: list[Tensor | None] = [None] * len(params)
    buckets: dict[tuple[int, float], list[int]] = {}
    for i, p in enumerate(params):
        group, state = group_of[id(p)], opt.state.get(p, {})
        if not isinstance(opt, torch.optim.Adam) or group.get("maximize", False) or group.get("amsgrad", False):
            out[i] = predicted_step(opt, p, grads[i])  # SGD, or the errors predicted_step raises
            continue
        step = float(state["step"]) + 1.0 if "step" in state else 1.0  # a host scalar in torch's Adam
        buckets.setdefault((id(group), step), []).append(i)
    for (gid, step), idx in buckets.items():
        group = next(gr for gr in opt.param_groups if id(gr) == gid)
        ps, gs = [params[i] for i in idx], [grads[i] for i in idx]
        states = [opt.state.get(p, {}) for p in ps]
        lr, wd = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        decoupled = isinstance(opt, torch.optim.AdamW) or group.get("decoupled_weight_decay", False)
        # The ops of predicted_step, in the same order, each over the whole bucket.
        delta = torch._foreach_mul(ps, -lr * wd) if wd != 0 and decoupled else [torch.zeros_like(p) for p in ps]
        d = gs if wd == 0 or decoupled else torch._foreach_add(gs, ps, alpha=wd)
        m = [st["exp_avg"] if "exp_avg" in st else torch.zeros_like(p) for st, p in zip(states, ps)]
        v = [st["exp_avg_sq"] if "exp_avg_sq" in st else torch.zeros_like(p) for st, p in zip(states, ps)]
        m = list(torch._foreach_lerp(m, d, 1 - beta1))
        v = list(torch._foreach_mul(v, beta2))
        torch._foreach_addcmul_(v, d, d, value=1 - beta2)
        step_size = lr / (1 - beta1**step)
        denom = torch._foreach_div(torch._foreach_sqrt(v), (1 - beta2**step) ** 0.5)
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_addcdiv_(delta, m, denom, value=-step_size)
        for i, dl in zip(idx, delta):
            out[i] = dl
    return [o for o in out if o is not None]


@dataclass(frozen=True)
class SiOptions:
    """Synaptic Intelligence (spec §4.3): penalty si_lambda·Σ Ω(θ−θ_prev)² (no ½), Ω from the path integral ω."""

    si_lambda: float = opt(1.0, "penalty strength c in c·Σ Ω·(θ−θ_prev)² (the reference's --si_lambda)")
    damping: float = opt(1e-3, "ξ in Ω += max(0, ω/((θ_end−θ_start)² + ξ)) (hard-coded 1e-3 in the reference)")
    task_loss_only: bool = opt(True, "ω from the task-loss gradient and the optimizer step it alone would make (predicted from a copy of the optimizer state; SGD: −lr·g); false = the real step and the full, clipped gradient")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "method." in front.
        if self.si_lambda < 0:
            raise ValueError(f"si_lambda = {self.si_lambda!r} must be >= 0")
        if self.damping <= 0:
            raise ValueError(f"damping = {self.damping!r} must be > 0")


@METHODS.register(SiOptions)
class Si(Method):
    def __init__(self, opts: SiOptions, ctx: MethodContext) -> None:
        super().__init__(opts, ctx)
        self.omega: dict[str, Tensor] | None = None  # running path integral ω of the current task
        self.big_omega: dict[str, Tensor] | None = None  # accumulated importance Ω (None before task 1)
        self.theta_start: dict[str, Tensor] | None = None  # θ at the start of the current task
        self.theta_prev: dict[str, Tensor] | None = None  # θ at the end of the previous task (the anchor)
        self._before_step: dict[str, Tensor] | None = None  # θ before step() (task_loss_only = false)

    def _last_phase(self) -> int:
        return len(self.schedule(self.ctx.benchmark.num_tasks, self.ctx.training.steps_per_task)) - 1

    def _snapshot(self) -> dict[str, Tensor]:
        return {name: p.detach().clone() for name, p in self.model.named_parameters()}

    def _tracking(self, phase: int) -> bool:
        # No importance is computed after the last task, so its path integral is never needed.
        return phase < self._last_phase()

    # -- hooks --------------------------------------------------------------------------------
    def before_phase(self, phase: int, tasks: list[int]) -> None:
        super().before_phase(phase, tasks)
        self.theta_start = self._snapshot()
        self.omega = {name: torch.zeros_like(p) for name, p in self.model.named_parameters()}

    @torch.no_grad()
    def after_task_backward(self, phase: int, tasks: list[int]) -> None:
        super().after_task_backward(phase, tasks)
        if not self._tracking(phase):
            return
        assert self.omega is not None
        if not self.opts.task_loss_only:
            self._before_step = self._snapshot()
            return
        if self.optimizer is None:
            raise RuntimeError("SI needs the optimizer: the loop must set method.optimizer before stepping")
        # Parameters without a gradient are skipped by the optimizer: no step, no path integral.
        named = [(name, p) for name, p in self.model.named_parameters() if p.grad is not None]
        if not named:
            return
        grads = [p.grad.detach() for _, p in named if p.grad is not None]
        steps = predicted_steps(self.optimizer, [p for _, p in named], grads)
        # ω += Δθ ⊙ (−g), vectorised (the same ops as one parameter at a time)
        torch._foreach_add_([self.omega[name] for name, _ in named], torch._foreach_mul(steps, torch._foreach_neg(grads)))

    @torch.no_grad()
    def after_step(self, phase: int, tasks: list[int]) -> None:
        super().after_step(phase, tasks)
        if not self._tracking(phase) or self.opts.task_loss_only:
            return
        assert self.omega is not None and self._before_step is not None
        for name, p in self.model.named_parameters():
            if p.grad is not None:
                self.omega[name].add_((p.detach() - self._before_step[name]) * -p.grad)
        self._before_step = None

    def penalty(self, phase: int, tasks: list[int]) -> tuple[Tensor | None, dict[str, Tensor | float]]:
        base, info = super().penalty(phase, tasks)
        if self.big_omega is None or self.theta_prev is None:
            return base, info
        total = weighted_sq_distance(self.model, self.theta_prev, self.big_omega)
        si = self.opts.si_lambda * total
        return (si if base is None else base + si), {**info, "si_penalty": si.detach()}

    def declare_series(self) -> list[SeriesSpec]:
        return [*super().declare_series(),
                SeriesSpec("si_penalty", description="c·Σ Ω·(θ − θ_prev)² of the logged step (from task 2 on)"),
                SeriesSpec("si_omega_total", cadence="phase",
                           description="Σ Ω over all weights: the accumulated importance after the phase")]

    def phase_diagnostics(self, phase: int, tasks: list[int]) -> dict[str, Any]:
        out = super().phase_diagnostics(phase, tasks)
        if self.big_omega is not None:
            out["si_omega_total"] = float(sum(w.sum() for w in self.big_omega.values()))
        return out

    @torch.no_grad()
    def after_phase(self, phase: int, tasks: list[int]) -> None:
        super().after_phase(phase, tasks)
        if not self._tracking(phase):
            return
        assert self.omega is not None and self.theta_start is not None
        end = self._snapshot()
        xi = self.opts.damping
        new = {k: (self.omega[k] / ((end[k] - self.theta_start[k]).square() + xi)).clamp_(min=0) for k in end}
        self.big_omega = new if self.big_omega is None else {k: self.big_omega[k] + new[k] for k in new}
        self.theta_prev = end
        self.theta_start = {k: v.clone() for k, v in end.items()}
        self.omega = {k: torch.zeros_like(v) for k, v in end.items()}

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["si"] = {"omega": self.omega, "big_omega": self.big_omega, "theta_start": self.theta_start,
                       "theta_prev": self.theta_prev}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        dev = self.ctx.device
        for key in ("omega", "big_omega", "theta_start", "theta_prev"):
            d = state["si"][key]
            setattr(self, key, None if d is None else {k: v.to(dev) for k, v in d.items()})
