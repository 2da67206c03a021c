"""Continual backpropagation as the loss-of-plasticity reference implements it for ResNets (`ResGnT`, spec §10.2).

After every optimizer step, for each unit layer i of `model.unit_wiring()` (a unit = an output
channel of a main-path conv, or an output row of a Linear; downsample paths are not unit layers):

1. age_i += 1;
2. activity a_i += (1 − η)·mean over batch (and positions) of |feature|, η = `decay_rate`.
   GOTCHA kept on purpose: a is never multiplied by η, so it is a growing sum, not an EMA, and it
   is not reset when a unit is replaced (the canonical `gnt.py` uses a bias-corrected EMA);
3. if any unit is mature (age > `maturity`): counter_i += `replacement_rate` × units_i, and
   n = ⌊counter_i⌋ units are replaced (counter_i −= n);
4. utility u = mean |outgoing weights| (over the next layer's outputs and kernel positions) × a
   (`contribution`), or the weight term alone (`weight`);
5. the n lowest-utility mature units are picked.

All layers are tested first, then the picked units re-initialised (as the reference does):
incoming weights ~ N(0, 2 / fan_in), bias 0, outgoing weights 0, age 0, utility 0, and their
BatchNorm reset (weight 1, bias 0, running mean 0, running var 1). The optimizer's momentum is
left alone, and the skip/downsample paths still carry the unit's old contribution (both as in the
reference). Utility is recomputed from scratch at every test (step 4 is an assignment), so it is
only computed for a layer that replaces something this step: the same picks, without a pass over
all weights every step.

The features are those of the training forward of the step (captured by forward hooks on the
unit-layer modules while autograd is on in train mode, so evaluations and observers are not
counted). New weights are drawn on the CPU from the run's "cbp" stream. Everything (ages,
activities, utilities, counters, per-phase replacement counts) is in `state_dict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from engine.methods.base import Method, MethodContext
from engine.models.base import UnitWiring
from engine.registry import METHODS
from engine.schema import opt
from engine.series import SeriesSpec


@dataclass(frozen=True)
class CbpOptions:
    """Continual backpropagation (ResGnT): replace a small fraction of low-utility mature units after every step."""

    replacement_rate: float = opt(1e-5, "units replaced per step as a fraction of each layer's units (accumulated)")
    utility: Literal["contribution", "weight"] = opt("contribution", "'contribution' = mean |outgoing weight| × activity; 'weight' = the weight term alone")
    maturity: int = opt(1000, "steps a unit must have lived (age > maturity) before it may be replaced")
    decay_rate: float = opt(0.99, "η: the activity accumulator adds (1 − η)·mean|feature| each step (never decays: the reference's gotcha)")

    def __post_init__(self) -> None:
        if not 0 <= self.replacement_rate <= 1:
            raise ValueError(f"replacement_rate = {self.replacement_rate!r} must be in [0, 1]")
        if self.maturity < 0:
            raise ValueError(f"maturity = {self.maturity!r} must be >= 0")
        if not 0 <= self.decay_rate < 1:
            raise ValueError(f"decay_rate = {self.decay_rate!r} must be in [0, 1)")


def _weight(m: nn.Module) -> Tensor:
    w = getattr(m, "weight", None)
    if not isinstance(w, Tensor):
        raise TypeError(f"{type(m).__name__} has no weight tensor; continual backprop needs Linear/Conv layers")
    return w


def outgoing_magnitude(outgoing: nn.Module) -> Tensor:
    """Mean |weight| per input unit of the next layer (over its outputs and kernel positions)."""
    w = _weight(outgoing).detach().abs()
    dims = [0, *range(2, w.dim())]
    return w.mean(dim=dims)


@METHODS.register(CbpOptions)
class Cbp(Method):
    def __init__(self, opts: CbpOptions, ctx: MethodContext) -> None:
        super().__init__(opts, ctx)
        self.wiring: list[UnitWiring] = self.model.unit_wiring()
        dev = ctx.device
        self.units = [int(_weight(w.incoming).shape[0]) for w in self.wiring]
        self.ages = [torch.zeros(n, dtype=torch.long, device=dev) for n in self.units]
        self.activity = [torch.zeros(n, device=dev) for n in self.units]
        self.util = [torch.zeros(n, device=dev) for n in self.units]
        self.counter = [0.0 for _ in self.units]  # Python floats, as the reference accumulates them
        self.per_step = [opts.replacement_rate * n for n in self.units]
        self.replaced_in_phase = [0 for _ in self.units]
        self.gen = ctx.generator("cbp")
        # Features of the training forward: sum of per-sample mean |f| and the sample count.
        self._feat: dict[str, tuple[Tensor, int]] = {}
        self._hooks = [self.model.get_submodule(w.name).register_forward_hook(self._capture(w.name))
                       for w in self.wiring]

    def _capture(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, out: Tensor) -> None:
            if not (module.training and torch.is_grad_enabled()):
                return  # evaluation, validation, observers: not a training forward
            f = out.detach().abs()
            per_sample = f.mean(dim=tuple(range(2, f.dim()))) if f.dim() > 2 else f  # [B, units]
            s, n = self._feat.get(name, (torch.zeros((), device=f.device), 0))
            self._feat[name] = (per_sample.sum(0) + s, n + f.shape[0])
        return hook

    # -- the algorithm ------------------------------------------------------------------------
    def utility(self, i: int) -> Tensor:
        """Utility of layer i's units at the current weights and activity (step 4)."""
        mag = outgoing_magnitude(self.wiring[i].outgoing)
        return mag * self.activity[i] if self.opts.utility == "contribution" else mag

    def test_units(self) -> list[Tensor]:
        """Steps 1-5 for every layer (uses and clears the captured features); the units to replace per layer."""
        picks = []
        for i, w in enumerate(self.wiring):
            self.ages[i] += 1
            if w.name in self._feat:
                s, n = self._feat[w.name]
                self.activity[i] += (1.0 - self.opts.decay_rate) * (s / n)
            pick = torch.empty(0, dtype=torch.long, device=self.ctx.device)
            eligible = torch.nonzero(self.ages[i] > self.opts.maturity).flatten()
            if self.opts.replacement_rate > 0 and eligible.numel() > 0:
                self.counter[i] += self.per_step[i]
                n_new = int(self.counter[i])
                self.counter[i] -= n_new
                if n_new > 0:
                    self.util[i] = self.utility(i)
                    k = min(n_new, eligible.numel())
                    pick = eligible[torch.topk(-self.util[i][eligible], k).indices]
            picks.append(pick)
        self._feat.clear()
        return picks

    @torch.no_grad()
    def reinit_units(self, picks: list[Tensor]) -> None:
        for i, (w, idx) in enumerate(zip(self.wiring, picks)):
            if idx.numel() == 0:
                continue
            win = _weight(w.incoming)
            fan_in = math.prod(win.shape[1:])
            new = torch.randn((idx.numel(), *win.shape[1:]), generator=self.gen) * math.sqrt(2.0 / fan_in)
            win[idx] = new.to(device=win.device, dtype=win.dtype)
            bias = getattr(w.incoming, "bias", None)
            if isinstance(bias, Tensor):
                bias[idx] = 0.0
            _weight(w.outgoing)[:, idx] = 0.0
            self.ages[i][idx] = 0
            self.util[i][idx] = 0.0
            if w.norm is not None:
                norm: Any = w.norm
                norm.weight[idx] = 1.0
                norm.bias[idx] = 0.0
                norm.running_mean[idx] = 0.0
                norm.running_var[idx] = 1.0
            self.replaced_in_phase[i] += int(idx.numel())

    # -- hooks --------------------------------------------------------------------------------
    def before_phase(self, phase: int, tasks: list[int]) -> None:
        self.replaced_in_phase = [0 for _ in self.units]

    def after_step(self, phase: int, tasks: list[int]) -> None:
        self.reinit_units(self.test_units())

    def declare_series(self) -> list[SeriesSpec]:
        return [SeriesSpec("cbp_replaced", shape=(len(self.wiring),), dtype="i8", cadence="phase",
                           columns=tuple(w.name for w in self.wiring),
                           description="units continual backprop replaced in each unit layer during the phase")]

    def phase_diagnostics(self, phase: int, tasks: list[int]) -> dict[str, Any]:
        return {"cbp_replaced": list(self.replaced_in_phase)}

    def state_dict(self) -> dict[str, Any]:
        return {"ages": [a.clone() for a in self.ages], "activity": [a.clone() for a in self.activity],
                "util": [u.clone() for u in self.util], "counter": list(self.counter),
                "replaced_in_phase": list(self.replaced_in_phase)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.ctx.device
        self.ages = [a.to(dev) for a in state["ages"]]
        self.activity = [a.to(dev) for a in state["activity"]]
        self.util = [u.to(dev) for u in state["util"]]
        self.counter = list(state["counter"])
        self.replaced_in_phase = list(state["replaced_in_phase"])
