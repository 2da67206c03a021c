"""Observers: read-only measurements any run can turn on (forgetting curves, probes, sparsity, ...).

An analysis is one file in this package: an options dataclass (with an `enabled` field) and an
`Observer` subclass registered with `@ANALYSES.register(Options)`, listed in `__init__.py`. The
loop calls four hooks; the three that write return the rows to record ({series name: value}):

    on_step(step, phase, tasks)   after every optimizer step          (cadence 'step')
    on_gradients(step, phase, curve_point)  before every optimizer step, .grad filled (writes nothing)
    on_curve_point(step, phase)   every `every` steps and at each phase's last step ('curve')
    on_phase_end(step, phase)     after the phase's consolidation and evaluation ('phase')

Every series written must have been declared by the observer's `declare_series()` with the
matching cadence (engine/series.py). `Observers` runs the hooks so that they cannot change training:
under torch.no_grad(), every module's train/eval flag restored afterwards, and the global RNGs
(python, numpy, torch, CUDA) restored too, so a draw there cannot shift training's numbers. Each
observer draws from its own stream (`self.gen`, "analysis/<name>"), saved in the checkpoint. Their
time is measured and returned, and the loop leaves it out of the training time.

`on_gradients` is the one hook inside a step (gradients per step, the weights before a measured
update): only observers that override it are called, so it costs nothing when none does. It runs
under torch.no_grad() only, without the RNG and mode guard (saving and restoring every RNG each step
would cost more than the hook): it must draw no random numbers, change no mode and write nothing to
`.grad` or the weights; it keeps what it measures on the device (no host sync per step).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from engine import events as ev
from engine.benchmarks.base import Benchmark
from engine.methods.base import Method
from engine.rng import rng_state, set_rng_state, stream_generator
from engine.series import SeriesError, SeriesSet, SeriesSpec


@torch.no_grad()
def accuracy(method: Method, bench: Benchmark, task: int, idx: Tensor | None, batch_size: int,
             device: torch.device, split: str = "test") -> float:
    """Accuracy (%) of task `task` on a split (its test set by default), or the given indices of it, on its own head.

    Leaves the model's train/eval mode to the caller.
    """
    data = bench.tasks[task]
    if idx is None:  # host indices: each task copies them over (and SSMNIST cuts batches without a sync)
        idx = torch.arange(data.size(split))
    correct = torch.zeros((), device=device)
    for chunk in torch.split(idx, batch_size):
        b = data.get(split, chunk)
        correct += (method.head_logits(b.x, b.lengths, task).argmax(1) == b.y).sum()
    return float(correct) * 100.0 / max(1, idx.numel())


@dataclass
class ObserverContext:
    """What an observer may read. It must not modify any of it (the bit-identity test checks)."""

    model: nn.Module
    benchmark: Benchmark
    method: Method
    """For `head_logits` (evaluation through the method's masks or generated weights) only."""
    device: torch.device
    seed: int
    eval_batch_size: int
    phase_tasks: list[list[int]]
    phase_steps: list[int]

    def seen_tasks(self, phase: int) -> list[int]:
        """Tasks trained in phases 0..phase."""
        return sorted({t for tasks in self.phase_tasks[: phase + 1] for t in tasks})

    def evaluate(self, task: int, idx: Tensor | None = None) -> float:
        """Test accuracy (%) of `task` (eval mode; the caller's mode comes back when the hook returns)."""
        self.model.eval()
        return accuracy(self.method, self.benchmark, task, idx, self.eval_batch_size, self.device)


class Observer:
    """No-op defaults; a subclass overrides the hooks it needs and declares what it writes."""

    every: int = 0
    """Curve-point cadence in steps (0 = `on_curve_point` is never called)."""

    def __init__(self, opts: Any, ctx: ObserverContext, name: str) -> None:
        self.opts, self.ctx, self.name = opts, ctx, name
        self.gen = stream_generator(ctx.seed, f"analysis/{name}")
        """This analysis's own random stream (CPU); draw here, never from the global RNGs."""

    def declare_series(self) -> list[SeriesSpec]:
        return []

    def on_step(self, step: int, phase: int, tasks: list[int]) -> dict[str, Any]:
        return {}

    def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
        return {}

    def on_phase_end(self, step: int, phase: int) -> dict[str, Any]:
        return {}

    def on_gradients(self, step: int, phase: int, curve_point: bool) -> None:
        """Between backward (and clipping) and `optimizer.step()`: each parameter's `.grad` holds what
        the optimizer is about to apply. `step` is the number this step will have; `curve_point` says
        whether `on_curve_point` may be called right after it (its cadence, or a possible phase end).
        Read only; accumulate on the device and write rows at a curve point or phase end."""

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])


@contextmanager
def read_only(model: nn.Module) -> Iterator[None]:
    """No autograd, and every module's mode and every global RNG as they were when the block ends."""
    modes = [(m, m.training) for m in model.modules()]
    rng = rng_state()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode
        set_rng_state(rng)


class Observers:
    """The enabled observers of a run: calls their hooks read-only, checks and emits what they write."""

    def __init__(self, observers: list[Observer], emit: Callable[[Any], None]) -> None:
        self.items = observers
        self.emit = emit
        self.series = SeriesSet()
        for o in observers:
            self.series.add(o.declare_series(), source=f"analysis/{o.name}")
        # on_step runs every step: only for observers that override it (the read-only guard costs).
        self._stepping = [o for o in observers if type(o).on_step is not Observer.on_step]
        self._gradients = [o for o in observers if type(o).on_gradients is not Observer.on_gradients]

    def declarations(self) -> list[SeriesSpec]:
        return list(self.series)

    def _call(self, obs: Observer, fn: Callable[[], dict[str, Any]], step: int, cadence: str) -> None:
        with read_only(obs.ctx.model):
            rows = fn()
        for name, value in rows.items():
            spec = self.series.get(name, cadence)
            if spec.source != f"analysis/{obs.name}":
                raise SeriesError(f"analysis {obs.name!r} wrote series {name!r}, which {spec.source} declared")
            self.emit(ev.SeriesPoint(name, step, value))

    def on_step(self, step: int, phase: int, tasks: list[int]) -> float:
        """Run every step hook; returns the seconds spent (not training time)."""
        if not self._stepping:
            return 0.0
        t0 = time.perf_counter()
        for o in self._stepping:
            self._call(o, partial(o.on_step, step, phase, tasks), step, "step")
        return time.perf_counter() - t0

    def on_gradients(self, step: int, phase: int, may_end_phase: bool) -> float:
        """Before optimizer step `step` (see Observer.on_gradients); `may_end_phase`: the step ends an
        epoch or the planned phase, so a stop rule may make it the phase's last. Returns the seconds spent."""
        if not self._gradients:
            return 0.0
        t0 = time.perf_counter()
        with torch.no_grad():
            for o in self._gradients:
                o.on_gradients(step, phase, bool(o.every) and (step % o.every == 0 or may_end_phase))
        return time.perf_counter() - t0

    def on_curve_point(self, step: int, phase: int, last_in_phase: bool) -> float:
        """Curve points of the observers whose cadence hits `step` (and all at a phase's last step)."""
        due = [o for o in self.items if o.every and (step % o.every == 0 or last_in_phase)]
        if not due:
            return 0.0
        t0 = time.perf_counter()
        for o in due:
            self._call(o, partial(o.on_curve_point, step, phase), step, "curve")
        return time.perf_counter() - t0

    def on_phase_end(self, step: int, phase: int) -> float:
        t0 = time.perf_counter()
        for o in self.items:
            self._call(o, partial(o.on_phase_end, step, phase), step, "phase")
        return time.perf_counter() - t0

    def state_dict(self) -> dict[str, Any]:
        return {o.name: o.state_dict() for o in self.items}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for o in self.items:
            o.load_state_dict(state[o.name])
