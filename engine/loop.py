"""The one training loop: phases, steps, evaluation, checkpoints and events.

Methods plug in through the hooks of engine.methods.base.Method; this file never asks which
method it runs. A phase's length, epochs and stop rules come from engine/phases.py, its learning
rate from engine/schedules.py, its optimizer from engine/optim.py. Observers (engine/analyses) are
called before each optimizer step (gradients), after it, at curve points, at each phase's end; they
only read, and their time is not training time. What the run records is declared up front
(`declarations()`: the loop's training scalars, the method's and the analyses' series); writing
anything else is an error.
The loop's whole state (counters, optimizer, samplers, named random streams, global RNGs, stop-rule
state, observers, accuracy so far) is in `state_dict()`, so a run can be checkpointed at any step
and resumed bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.catalog import load_all
from engine import events as ev
from engine.activation_l1 import SERIES as L1_SERIES
from engine.activation_l1 import ActivationL1
from engine.analyses.base import ObserverContext, Observers, accuracy
from engine.benchmarks.base import Benchmark
from engine.checkpoint import save_checkpoint
from engine.config import RunConfig, config_to_dict
from engine.data.sampler import EpochSampler
from engine.divergence import DivergenceWatch
from engine.inference import TaskInference
from engine.methods.base import Method
from engine.metrics import seen_accuracy, summary
from engine.models.base import CLModel
from engine.optim import make_optimizer
from engine.phases import (
    STOP_REASONS,
    PhasePlan,
    PhaseTracker,
    phase_series,
    plan_phases,
    restore_weights,
    snapshot_weights,
)
from engine.registry import ANALYSES
from engine.rng import rng_state, set_rng_state
from engine.schedules import make_schedule
from engine.series import TRAINING_SERIES, SeriesError, SeriesSet, SeriesSpec
from engine.step_forward import Groups, StepForward, TaskGrad


SEEN_ACC = SeriesSpec("seen_acc", cadence="phase", description=(
    "accuracy (%) over the test images of every task seen so far, each on its own head (class-incremental: "
    "over all classes seen so far: the forgetting study's 'val acc', measured on test images)"))


class Trainer:
    def __init__(self, cfg: RunConfig, bench: Benchmark, model: CLModel, method: Method, device: torch.device,
                 emit: Callable[[Any], None], run_dir: Path | None = None,
                 checkpoint_extras: Callable[[], dict[str, Any]] | None = None) -> None:
        self.cfg, self.bench, self.model, self.method, self.device = cfg, bench, model, method, device
        self.emit = emit
        self.run_dir = run_dir
        # What the caller stores beside the loop's state in each checkpoint (api.py: the store's row counts).
        self.checkpoint_extras = checkpoint_extras or dict
        tr = cfg.training
        # One Streams object per run, made in api.build_trainer and shared with the method's context.
        self.streams = method.ctx.streams
        self.plan: list[PhasePlan] = plan_phases(method.schedule(bench.num_tasks, tr.steps_per_task), tr,
                                                 [t.size("train") for t in bench.tasks])
        self.lr_schedule = make_schedule(tr, [p.steps_per_epoch for p in self.plan])
        self.tracker = PhaseTracker(tr, device)
        # Named streams: batch order per task ("sampler/<task>"); the task mix of mixed batches is step_forward's.
        self.samplers = [EpochSampler(t.size("train"), self.streams.get(f"sampler/{i}"), device)
                         for i, t in enumerate(bench.tasks)]
        load_all()
        octx = ObserverContext(model, bench, method, device, cfg.seed, cfg.evaluation.batch_size,
                               self.phase_tasks, self.phase_steps)
        self.observers = Observers([ANALYSES.get(c.name).impl(c.options, octx, c.name)
                                    for c in cfg.analyses if c.options.enabled], emit)
        self.series = SeriesSet(TRAINING_SERIES)
        self.series.add(phase_series(tr), source="loop")
        self.l1 = ActivationL1(model, tr.l1_activation)  # training.l1_activation: hooks on the unit layers
        # The step's batch, forward and task-loss backward (engine/step_forward.py; the ensemble's seam).
        self.fwd = StepForward(tr, bench, model, method, self.samplers, self.streams, self.l1)
        self.series.add([*self.l1.declare_series(), SEEN_ACC], source="loop")
        self.series.add(method.declare_series(), source="method")
        self.series.add(self.observers.declarations())
        # Evaluation with the task inferred (evaluation.task_inference, engine/inference.py), if asked.
        self.inference = None if cfg.evaluation.task_inference == "given" else \
            TaskInference(cfg.evaluation, method, bench, device, cfg.seed)
        if self.inference is not None:
            self.series.add(self.inference.declare_series(), source="loop")
        n_phases, n_tasks = len(self.plan), bench.num_tasks
        self.phase = 0
        self.step_in_phase = 0
        self.phase_started = False
        self.phase_done = False  # set by the last planned step or a stop rule
        self.global_step = 0
        self.elapsed = 0.0
        self.acc = np.full((n_phases, n_tasks), np.nan)
        self.acc_initial = np.full(n_tasks, np.nan)
        self.phase_seconds = np.full(n_phases, np.nan)
        self.optimizer: torch.optim.Optimizer | None = None
        self.stop_requested = False
        self._last_checkpoint = 0.0  # perf_counter() of the last checkpoint (checkpoint.every_seconds)
        self.divergence = DivergenceWatch()  # the first non-finite loss, read back at log steps only

    # -- pieces -------------------------------------------------------------------------------
    @property
    def phase_tasks(self) -> list[list[int]]:
        return [p.tasks for p in self.plan]

    @property
    def phase_steps(self) -> list[int]:
        """Planned steps per phase (stop rules may end a phase earlier)."""
        return [p.steps for p in self.plan]

    def lr_at(self, phase: int, step_in_phase: int) -> float:
        """Learning rate of a step: a pure function of (phase, step in phase, phase length) times the
        method's per-phase factor (OGD's divisor), so resuming needs only the counters."""
        return self.lr_schedule(phase, step_in_phase, self.plan[phase].steps) * self.method.lr_factor(phase)

    def make_optimizer(self) -> torch.optim.Optimizer:
        return make_optimizer(self.method.trainable_parameters(), self.cfg.training)

    def evaluate(self, task: int, idx: Tensor | None = None, split: str = "test") -> float:
        """Accuracy (%) of task `task` on a split (test, or val when held out), or the given indices of it, on its own head."""
        self.model.eval()
        acc = accuracy(self.method, self.bench, task, idx, self.cfg.evaluation.batch_size, self.device, split)
        self.model.train()
        return acc

    def val_accuracy(self, tasks: list[int]) -> float:
        """Mean held-out validation accuracy (%) over `tasks` (engine/phases.py defines its use)."""
        return sum(self.evaluate(t, split="val") for t in tasks) / len(tasks)

    def tested_after(self, phase: int) -> set[int]:
        """Tasks tested after `phase` (evaluation.upper): every seen task (the matrix's diagonal and
        below, all the metrics but forward transfer read), plus unseen ones as asked; the default,
        the next phase's tasks, is acc[i, i+1], what forward transfer needs. On 5 tasks that is 24
        tests instead of the full matrix's 30 (initial row included)."""
        upper = self.cfg.evaluation.upper
        tested = set(self.seen_tasks(phase))
        if upper == "all":
            tested.update(range(self.bench.num_tasks))
        elif upper == "next" and phase + 1 < len(self.plan):
            tested.update(self.plan[phase + 1].tasks)
        return tested

    def seen_tasks(self, phase: int) -> list[int]:
        return sorted({t for tasks in self.phase_tasks[: phase + 1] for t in tasks})

    def declarations(self) -> list[SeriesSpec]:
        """Every series this run writes (the store creates them before the run starts)."""
        return list(self.series)

    def _method_values(self, values: dict[str, Any], cadence: str) -> dict[str, Any]:
        """Method diagnostics as plain data, each checked against its declaration (source 'method')."""
        out: dict[str, Any] = {}
        for name, v in values.items():
            spec = self.series.get(name, cadence)
            if spec.source != "method":
                raise SeriesError(f"the method wrote series {name!r}, which {spec.source} declared")
            out[name] = v.detach().cpu().tolist() if isinstance(v, Tensor) else v  # the host sync, at log steps only
        return out

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": config_to_dict(self.cfg),
            "loop": {
                "phase": self.phase, "step_in_phase": self.step_in_phase, "phase_started": self.phase_started,
                "phase_done": self.phase_done, "tracker": self.tracker.state_dict(),
                "global_step": self.global_step, "elapsed": self.elapsed, "acc": self.acc.copy(),
                "acc_initial": self.acc_initial.copy(), "phase_seconds": self.phase_seconds.copy(),
                "divergence": self.divergence.state_dict(),
            },
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "samplers": [s.state_dict() for s in self.samplers],
            "streams": self.streams.state_dict(),  # every named stream: samplers, mix, fisher, coresets, ...
            "rng": rng_state(),  # the global RNGs: model re-inits, masks, dropout ("training")
            "analyses": self.observers.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        loop = state["loop"]
        self.phase, self.step_in_phase = loop["phase"], loop["step_in_phase"]
        self.phase_started, self.global_step, self.elapsed = loop["phase_started"], loop["global_step"], loop["elapsed"]
        self.phase_done = loop["phase_done"]
        self.tracker.load_state_dict(loop["tracker"])
        self.acc, self.acc_initial = loop["acc"].copy(), loop["acc_initial"].copy()
        self.phase_seconds = loop["phase_seconds"].copy()
        if "divergence" in loop:  # checkpoints written before divergence was watched lack it
            self.divergence.load_state_dict(loop["divergence"])
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        if state["optimizer"] is not None:
            self.optimizer = self.make_optimizer()
            self.optimizer.load_state_dict(state["optimizer"])
        for s, st in zip(self.samplers, state["samplers"]):
            s.load_state_dict(st)
        self.streams.load_state_dict(state["streams"])
        set_rng_state(state["rng"])
        self.observers.load_state_dict(state["analyses"])

    def checkpoint(self) -> str | None:
        if self.run_dir is None:
            return None
        # checkpoint_extras() first: it makes the store write and flush every row logged so far, so
        # a checkpoint never exists without the rows it counts (a kill -9 then loses nothing).
        extras = self.checkpoint_extras()
        path = save_checkpoint(self.run_dir, {**self.state_dict(), **extras}, keep=self.cfg.checkpoint.keep)
        self._last_checkpoint = time.perf_counter()
        self.emit(ev.CheckpointSaved(self.global_step, str(path)))
        return str(path)

    def _account(self, phase: int, since: float) -> float:
        """Add the training time since `since` to the run's and the phase's totals; return now."""
        now = time.perf_counter()
        prev = 0.0 if np.isnan(self.phase_seconds[phase]) else self.phase_seconds[phase]
        self.phase_seconds[phase] = prev + (now - since)
        self.elapsed += now - since
        return now

    def _diverged(self) -> bool:
        """Whether a loss since the last check was non-finite (a host sync); if so, say so (RunDiverged)."""
        div = self.divergence.check()
        if div is None:
            return False
        self.emit(div)
        return True

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop_at_step: int | None = None) -> str:
        """Train from the current state to the end: 'finished', 'interrupted' after a stop request,
        or 'diverged' at a non-finite loss (found at the next log step, phase end or checkpoint)."""
        steps = self.steps(stop_at_step)
        try:
            groups = next(steps)
            while True:
                groups = steps.send(self.fwd.task_backward(groups))
        except StopIteration as done:
            status: str = done.value
            return status

    def steps(self, stop_at_step: int | None = None) -> Generator[Groups, TaskGrad, str]:
        """The loop itself, as a generator: at each training step it yields the step's batch groups and
        expects back `task_backward(groups)`'s result (the gradient already in .grad). `run` answers
        with this trainer's own `self.fwd.task_backward`; engine/ensemble.py answers several trainers at once
        with one batched forward and backward. Returns the final status."""
        cfg, tr = self.cfg, self.cfg.training
        if self.global_step == 0 and not self.phase_started and self.phase == 0:
            if cfg.evaluation.initial:
                self.acc_initial = np.array([self.evaluate(t) for t in range(self.bench.num_tasks)])
                self.emit(ev.InitialEvaluated(self.acc_initial.tolist()))
            # A checkpoint before the first step: a run killed at any moment can be resumed.
            self.checkpoint()
        self._last_checkpoint = time.perf_counter()
        every_s = cfg.checkpoint.every_seconds
        for phase in range(self.phase, len(self.plan)):
            plan = self.plan[phase]
            tasks, steps = plan.tasks, plan.steps
            if not self.phase_started:
                self.emit(ev.PhaseStarted(phase, tasks, steps, self.global_step))
                # The previous phase's optimizer (None before the first), also right after a resume, so
                # a method may act on it before it is reused (retrained clears its momentum).
                self.method.optimizer = self.optimizer
                self.method.before_phase(phase, tasks)
                if self.optimizer is None or tr.reset_optimizer:
                    self.optimizer = self.make_optimizer()
                self.tracker.reset()
                self.phase_started, self.phase_done = True, False
            opt = self.optimizer
            assert opt is not None
            self.method.optimizer = opt  # methods may read (never step) it, e.g. SI's step prediction
            params = [p for g in opt.param_groups for p in g["params"]]
            t_phase, t_log, steps_at_log = time.perf_counter(), time.perf_counter(), self.global_step
            while not self.phase_done:
                if self.stop_requested or (stop_at_step is not None and self.global_step >= stop_at_step):
                    self._account(phase, t_phase)
                    if self._diverged():  # never checkpoint a diverged state
                        return "diverged"
                    path = self.checkpoint() if cfg.checkpoint.on_interrupt else None
                    self.emit(ev.RunInterrupted(self.global_step, path))
                    return "interrupted"
                # 1. the step's batch; its forward and task-loss backward are task_backward's (see steps)
                lr = self.lr_at(phase, self.step_in_phase)
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                # 2. task-loss (+ L1) gradient first (SI reads it, OGD projects it), then the method's penalty
                task_loss, correct, l1 = yield self.fwd.batch_groups(tasks, tr.batch_size)
                self.method.after_task_backward(phase, tasks)
                penalty, diagnostics = self.method.penalty(phase, tasks)  # tensors; read at log steps only
                if penalty is not None:
                    torch.autograd.backward(penalty)
                # 3. clip (global L2 norm, -1 = off) and step
                grad_norm = None
                if tr.clip_grad_norm > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, tr.clip_grad_norm)
                # observers that read this step's gradients (a no-op when none does; not training time)
                dt = self.observers.on_gradients(self.global_step + 1, phase, (self.step_in_phase + 1)
                                                 % plan.steps_per_epoch == 0 or self.step_in_phase + 1 >= steps)
                t_phase, t_log = t_phase + dt, t_log + dt
                opt.step()
                self.method.after_step(phase, tasks)
                self.step_in_phase += 1
                self.global_step += 1
                total = task_loss.detach() if l1 is None else task_loss.detach() + l1.detach()
                self.divergence.add(self.global_step, total if penalty is None else total + penalty.detach())
                # 4. stop rules at each epoch end and the last planned step (engine/phases.py)
                self.tracker.add_batch(correct, tr.batch_size)
                epoch_end = self.step_in_phase % plan.steps_per_epoch == 0
                if epoch_end or self.step_in_phase >= steps:
                    stop = self.tracker.check(epoch_end, partial(self.val_accuracy, tasks),
                                              partial(snapshot_weights, self.method))
                    self.phase_done = stop or self.step_in_phase >= steps
                    for name, value in (("epoch_train_acc", self.tracker.last_train_acc),
                                        ("val_acc", self.tracker.last_val)):
                        if value is not None:
                            self.emit(ev.SeriesPoint(name, self.global_step, value))
                    if epoch_end and tr.test_every_epoch:  # test accuracy over the active classes
                        test_acc = sum(self.evaluate(t) for t in tasks) / len(tasks)
                        self.emit(ev.SeriesPoint("epoch_test_acc", self.global_step, test_acc))
                # 5. bookkeeping: observers, scalars, curves, step checkpoints. Observer time is moved
                #    out of the phase's training time and the logged rate.
                dt = self.observers.on_step(self.global_step, phase, tasks)
                t_phase, t_log = t_phase + dt, t_log + dt
                if self.global_step % tr.log_every == 0 or self.phase_done:
                    now = time.perf_counter()
                    rate = (self.global_step - steps_at_log) / max(now - t_log, 1e-9)
                    t_log, steps_at_log = now, self.global_step
                    if grad_norm is None:
                        grads = [p.grad.detach().norm() for p in params if p.grad is not None]
                        grad_norm = torch.stack(grads).norm() if grads else torch.zeros(())
                    pen = float(penalty.detach()) if penalty is not None else 0.0
                    tl = float(task_loss.detach())
                    l1_values = {} if l1 is None else {L1_SERIES: float(l1.detach())}
                    self.emit(ev.StepLogged(self.global_step, phase, {
                        "loss": tl + sum(l1_values.values()) + pen, "task_loss": tl, "penalty": pen,
                        "train_acc": float(correct) * 100.0 / tr.batch_size, "grad_norm": float(grad_norm),
                        "lr": lr, **l1_values, **self._method_values(diagnostics, "log")}, rate))
                    if self._diverged():  # every log step and each phase's last step (phase_done)
                        self._account(phase, t_phase)
                        return "diverged"
                dt = self.observers.on_curve_point(self.global_step, phase, self.phase_done)
                t_phase, t_log = t_phase + dt, t_log + dt
                # Step checkpoints: every N steps and/or every N seconds (a clock read, no host sync).
                due = (cfg.checkpoint.every_steps > 0 and self.global_step % cfg.checkpoint.every_steps == 0) \
                    or (every_s > 0 and time.perf_counter() - self._last_checkpoint >= every_s)
                if due and not self.phase_done:
                    t_phase = self._account(phase, t_phase)
                    if self._diverged():
                        return "diverged"
                    self.checkpoint()
            # 6. end of phase: the best validation weights if asked, the method's consolidation
            #    (Fisher, Ω, coresets) at the kept weights, then test every task
            if self.tracker.best is not None:
                restore_weights(self.method, self.tracker.best)
                self.tracker.best = None
            self._account(phase, t_phase)
            self.method.after_phase(phase, tasks)
            self.acc[phase] = [self.evaluate(t) if t in self.tested_after(phase) else np.nan
                               for t in range(self.bench.num_tasks)]
            self.emit(ev.PhaseEvaluated(phase, self.acc[phase].tolist(), float(self.phase_seconds[phase])))
            if self.inference is not None and self.inference.due(self.seen_tasks(phase)):
                for name, row in self.inference.run(self.seen_tasks(phase)).items():
                    self.emit(ev.SeriesPoint(name, self.global_step, row))
            reason = STOP_REASONS.index(self.tracker.stop_reason or "length")
            self.emit(ev.SeriesPoint("phase_steps", self.global_step, self.step_in_phase))
            self.emit(ev.SeriesPoint("phase_stop", self.global_step, reason))
            sizes = [t.size("test") for t in self.bench.tasks]
            self.emit(ev.SeriesPoint(SEEN_ACC.name, self.global_step,
                                     seen_accuracy(self.acc[phase], self.seen_tasks(phase), sizes)))
            for name, value in self._method_values(self.method.phase_diagnostics(phase, tasks), "phase").items():
                self.emit(ev.SeriesPoint(name, self.global_step, value))
            self.observers.on_phase_end(self.global_step, phase)
            self.phase, self.step_in_phase, self.phase_started, self.phase_done = phase + 1, 0, False, False
            if cfg.checkpoint.every_task:
                self.checkpoint()
        self.emit(ev.RunFinished(self.metrics(), self.elapsed))
        return "finished"

    def metrics(self) -> dict[str, float]:
        return summary(self.acc, self.acc_initial if not np.all(np.isnan(self.acc_initial)) else None)
