"""SupSup (supermasks in superposition): one learned binary mask per task over fixed random weights.

Needs a supermask model (engine/models/supermask.py): `supermask_mlp`, or `supermask_resnet18`
(GEMResNet18, engine/models/supermask_resnet.py) whose BatchNorm keeps statistics per task. Per task:

* before the task, its scores are drawn afresh (Kaiming-uniform a=√5) from its own stream
  "supsup/scores/<task>", so a task's starting scores depend only on the run seed and the task;
* training optimizes only those scores (the frozen weights are never given to the optimizer);
* after the task, its mask is cached as bits (uint8, 8 edges per byte: `mask_bytes_per_task` =
  ceil(edges / 8)) in `bank` [num_tasks, bytes]; the task's scores are not kept, so a learned mask
  can never change again.

Forward for task t: the live scores while t is being trained; t's cached mask once learned; the mask
of t's starting scores before that (what the untrained task would use, e.g. for the initial
evaluation). Every forward for task t also uses t's BatchNorm statistics (models with per-task BN),
so training a task updates only its own running stats. When a task's head is the first C output units (one shared head, as on Permuted-MNIST),
the softmax runs over all output units, superfluous ones included, as the reference trains.

Task inference (`infer_task`, called by engine/inference.py): SupSup's one-shot procedure. With k
learned masks, α_i = 1/k for each, the network runs with weights W ⊙ Σ_i α_i M_i, the objective of
one example is differentiated once w.r.t. α, and the task is argmin over ALL num_tasks entries of
that gradient, where the entries of tasks not learned are exactly 0 (so, as in the reference, an
unlearned index wins if every learned gradient is positive). Every example gets its own α (the
superposed weights are built per example, [n, out, in], in chunks of `inference_chunk_mib`), which
is exactly n separate one-example inferences. It is refused (`check_task_inference`) for models
with per-task BatchNorm: the superposed network would have no task whose statistics to use (the
reference's GG runs evaluate with the given task only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from engine.errors import ConfigError
from engine.methods.base import Method, MethodContext
from engine.models.supermask import SupermaskNet, binary_mask, pack_bits, unpack_bits
from engine.registry import METHODS
from engine.rng import stream_generator
from engine.schema import opt
from engine.series import SeriesSpec


@dataclass(frozen=True)
class SupsupOptions:
    """SupSup: a binary supermask per task over fixed weights; the task can be inferred at test time."""

    inference_chunk_mib: int = opt(256, "task inference: MiB of per-example superposed weights built at once (a memory bound only; results do not depend on it)")

    def __post_init__(self) -> None:
        if not 1 <= self.inference_chunk_mib <= 1 << 20:
            raise ValueError(f"inference_chunk_mib = {self.inference_chunk_mib!r} must be 1 to 1048576")


@METHODS.register(SupsupOptions)
class Supsup(Method):
    infers_task = True

    def __init__(self, opts: SupsupOptions, ctx: MethodContext) -> None:
        super().__init__(opts, ctx)
        model = ctx.model
        if not isinstance(model, SupermaskNet):
            raise ConfigError(f"method 'supsup' trains masks over fixed weights and needs model.name = "
                              f"'supermask_mlp' or 'supermask_resnet18', not a {type(model).__name__}")
        self.net: SupermaskNet = model
        self.edges = sum(model.edges.values())
        self.mask_bytes = math.ceil(self.edges / 8)
        n_tasks = ctx.benchmark.num_tasks
        if model.bn_tasks and model.bn_tasks < n_tasks:
            raise ConfigError(f"model.tasks = {model.bn_tasks} keeps BatchNorm statistics for fewer tasks than the "
                              f"benchmark's {n_tasks}: set model.tasks = {n_tasks}")
        self.bank = torch.zeros(n_tasks, self.mask_bytes, dtype=torch.uint8, device=ctx.device)
        self.learned = [False] * n_tasks
        self.current: int | None = None  # the task whose scores are being trained
        heads = [ctx.benchmark.head(t).cpu() for t in range(n_tasks)]  # ragged heads cut to size
        self.full_softmax = [bool(torch.equal(c, torch.arange(c.numel()))) for c in heads]
        self._initial: dict[int, Tensor] = {}  # packed masks of starting scores (recomputable, so not saved)
        self._stacks: tuple[tuple[int, ...], dict[str, Tensor]] | None = None

    def trainable_parameters(self) -> list[Tensor]:
        return [layer.scores for layer in self.net.masked.values()]

    # -- masks --------------------------------------------------------------------------------
    def starting_scores(self, task: int) -> list[Tensor]:
        """Task `task`'s scores before training, per layer (CPU draws, so every device gets the same)."""
        gen = stream_generator(self.ctx.seed, f"supsup/scores/{task}")
        out = []
        for layer in self.net.masked.values():
            s = torch.empty(layer.scores.shape)
            nn.init.kaiming_uniform_(s, a=math.sqrt(5), generator=gen)
            out.append(s.to(self.ctx.device))
        return out

    def task_mask(self, task: int) -> Tensor:
        """Bool [edges]: the cached mask of a learned task, else the mask of its starting scores."""
        if self.learned[task]:
            return unpack_bits(self.bank[task], self.edges)
        if task not in self._initial:
            flat = torch.cat([binary_mask(s, layer.rule, layer.keep).flatten().bool()
                              for s, layer in zip(self.starting_scores(task), self.net.masked.values())])
            self._initial[task] = pack_bits(flat)
        return unpack_bits(self._initial[task], self.edges)

    def _layer_masks(self, task: int) -> dict[str, Tensor]:
        dtype = self.net.mask_dtype
        return self.net.split_flat(self.task_mask(task).to(dtype))

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: Tensor, lengths: Tensor | None, task: int) -> Tensor:
        with self.net.using_task(task):  # the task's BatchNorm statistics (no-op without BN)
            if task == self.current and not self.learned[task]:
                return self.model(x, lengths)  # the live scores, straight-through
            with self.net.using_masks(self._layer_masks(task)):
                return self.model(x, lengths)

    def head_logits(self, x: Tensor, lengths: Tensor | None, task: int) -> Tensor:
        if self.full_softmax[task]:  # labels index the first C units: the softmax covers all units
            return self.forward(x, lengths, task)
        return super().head_logits(x, lengths, task)

    # -- hooks --------------------------------------------------------------------------------
    def before_phase(self, phase: int, tasks: list[int]) -> None:
        if len(tasks) != 1:
            raise ConfigError("method 'supsup' learns one mask per task and cannot train tasks together")
        task = tasks[0]
        with torch.no_grad():
            for layer, s in zip(self.net.masked.values(), self.starting_scores(task)):
                layer.scores.copy_(s)
        self.current = task
        self.net.set_task(task)  # forwards outside `forward` (analyses) see the trained task's BN

    def after_phase(self, phase: int, tasks: list[int]) -> None:
        task = tasks[0]
        self.bank[task] = pack_bits(self.net.flat_mask())
        self.learned[task] = True
        self._stacks = None

    def declare_series(self) -> list[SeriesSpec]:
        return [SeriesSpec("mask_density", cadence="phase",
                           description="fraction of edges the task's learned mask keeps (all layers)")]

    def phase_diagnostics(self, phase: int, tasks: list[int]) -> dict[str, Any]:
        return {"mask_density": float(self.task_mask(tasks[0]).float().mean())}

    # -- task inference -----------------------------------------------------------------------
    def check_task_inference(self) -> None:
        if self.net.bn_tasks:
            raise ConfigError(f"task inference needs one network for the superposed masks, but {type(self.net).__name__} "
                              "keeps BatchNorm statistics per task; use evaluation.task_inference = 'given' "
                              "(SupSup's GG setting)")

    def _stacked(self, learned: list[int]) -> dict[str, Tensor]:
        """{layer: float [k, out, in]}: the learned tasks' masks, kept until the next task is learned."""
        key = tuple(learned)
        if self._stacks is None or self._stacks[0] != key:
            self._stacks = None  # free the old stack before building the new one
            flat = unpack_bits(self.bank[list(learned)], self.edges).to(self.net.mask_dtype)
            self._stacks = (key, self.net.split_flat(flat))
        return self._stacks[1]

    def infer_task(self, x: Tensor, lengths: Tensor | None, learned: list[int],
                   objective: Callable[[Tensor], Tensor]) -> Tensor:
        if not learned or not all(self.learned[t] for t in learned):
            raise ValueError(f"task inference over {learned}: only learned tasks have masks")
        k = len(learned)
        stacks = self._stacked(learned)
        # Per example: its superposed masks and weights and their gradients, float32.
        chunk = max(1, (self.opts.inference_chunk_mib << 20) // (self.edges * 4 * 4))
        grads = torch.zeros(x.shape[0], len(self.learned), device=x.device)
        cols = torch.tensor(learned, device=x.device)
        with torch.enable_grad():
            for lo in range(0, x.shape[0], chunk):
                xc = x[lo : lo + chunk]
                alpha = torch.full((xc.shape[0], k), 1.0 / k, device=x.device, requires_grad=True)
                masks = {name: torch.einsum("nk,koi->noi", alpha, s) for name, s in stacks.items()}
                with self.net.using_masks(masks):
                    logits = self.model(xc, None if lengths is None else lengths[lo : lo + chunk])
                (g,) = torch.autograd.grad(objective(logits).sum(), alpha)
                grads[lo : lo + xc.shape[0]].index_copy_(1, cols, g)
        return grads.argmin(1)  # over all num_tasks entries: unlearned ones are exactly 0

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"bank": self.bank.clone(), "learned": list(self.learned), "current": self.current}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bank = state["bank"].to(self.ctx.device)
        self.learned = list(state["learned"])
        self.current = state["current"]
        self._stacks = None
        if self.current is not None:
            self.net.set_task(self.current)

    def describe(self) -> dict[str, Any]:
        return {"masked_edges": self.edges, "mask_bytes_per_task": self.mask_bytes,
                "mask_bytes_all_tasks": int(self.bank.numel() * self.bank.element_size())}
