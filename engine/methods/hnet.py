"""HNET: a task-conditioned hypernetwork generates all main-network weights (von Oswald et al., ICLR 2020).

The main network keeps its own parameters but never uses them: every forward runs it with
W_t = h(e_t, θ_h) (`functional_call(model, W_t, (x, lengths))`, W_t cut from the flat output in
`named_parameters()` order by `params_from_flat`), and the optimizer holds only the
hypernetwork (θ_h, the chunk embeddings and every task embedding, old ones included, as in the
reference). Forgetting is prevented by the "fixed target" output regulariser of the spec §4.5:

* before phase t ≥ 1, the targets W*_j = h(e_j) for every earlier task j are computed once (eval
  mode, no grad) and frozen; they are part of `state_dict`, so a resumed run uses the same ones;
* penalty = β · (1/|S|) · Σ_{j∈S} ‖h(e_j) − W*_j‖², a plain sum of squares (no ½). S is all earlier
  tasks (reg_batch_size = -1, the reference: 1/|S| = 1/t), or a random subset of reg_batch_size of
  them per step drawn from the "hnet/reg_subset" stream (saved in checkpoints); dividing by |S| then keeps
  the penalty an unbiased estimate of the full 1/t average, like hypnettorch's `reg / num_regs`;
* multi-head: the j-th term leaves out the output-layer rows (weight rows and bias entries) of the
  heads of other tasks; when every task has the same head columns (domain/class), all rows count.

Works with any CLModel: it needs only named_parameters, `readout` (which entries are output rows)
and functional_call. Buffers (e.g. BatchNorm statistics) stay the main network's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from engine.methods.base import Method, MethodContext
from engine.methods.hypernet import ChunkedHypernet
from engine.models.base import params_from_flat
from engine.registry import METHODS
from engine.schema import opt
from engine.series import SeriesSpec


@dataclass(frozen=True)
class HnetOptions:
    """Chunked MLP hypernetwork generating all main-network weights; defaults are hypnettorch's hypercl ones (spec §8)."""

    hidden: list[int] = opt([100, 100], "hypernetwork MLP hidden widths (ReLU)")  # noqa: RUF009 (opt copies lists per instance)
    chunk_size: int = opt(750, "weights generated per MLP pass; K = ceil(main params / chunk_size) chunks")
    temb_size: int = opt(8, "task embedding size")
    cemb_size: int = opt(8, "chunk embedding size")
    temb_std: float = opt(1.0, "task embeddings are initialised N(0, temb_std²)")
    cemb_std: float = opt(1.0, "chunk embeddings are initialised N(0, cemb_std²)")
    beta: float = opt(0.01, "output-regulariser strength β: β/|S|·Σ_j ||h(e_j) − h*(e_j)||² over earlier tasks S")
    reg_batch_size: int = opt(-1, "earlier tasks regularised per step, drawn at random; -1 = all (the reference)")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "method." in front.
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden = {self.hidden!r}: every width must be >= 1")
        for n in ("chunk_size", "temb_size", "cemb_size"):
            if getattr(self, n) < 1:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 1")
        for n in ("temb_std", "cemb_std", "beta"):
            if getattr(self, n) < 0:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 0")
        if self.reg_batch_size == 0 or self.reg_batch_size < -1:
            raise ValueError(f"reg_batch_size = {self.reg_batch_size!r} must be -1 (all earlier tasks) or >= 1")
        from engine.schema import check_fits

        # The hypernetwork's own weights (its input, hidden and output layers), ×4 for gradients and
        # Adam's two moments, float32; the generated main network comes on top.
        widths = [self.temb_size + self.cemb_size, *self.hidden, self.chunk_size]
        params = sum(float(a) * b for a, b in zip(widths, widths[1:]))
        key = "chunk_size" if 2 * float(widths[-2]) * self.chunk_size >= params else "hidden"  # the dominant one
        check_fits(key, getattr(self, key), params * 4 * 4, "the hypernetwork's weights")


@METHODS.register(HnetOptions)
class Hnet(Method):
    def __init__(self, opts: HnetOptions, ctx: MethodContext) -> None:
        super().__init__(opts, ctx)
        self.n_main = self.model.num_params()
        self.hnet = ChunkedHypernet(
            self.n_main, ctx.benchmark.num_tasks, opts.hidden, opts.chunk_size, opts.temb_size, opts.cemb_size,
            opts.temb_std, opts.cemb_std).to(ctx.device)
        self.keep = self._head_masks()
        # Task ids live on the device once, so a step slices them instead of copying from the host.
        self._ids = torch.arange(ctx.benchmark.num_tasks, device=ctx.device)
        self._set_target_tasks([])
        self.targets: Tensor | None = None  # [len(target_tasks), n_main], frozen h(e_j)
        # task → (parameter versions, generated weights): evaluation reuses W_j while θ_h is unchanged.
        self._cache: dict[int, tuple[tuple[int, ...], dict[str, Tensor]]] = {}

    def _head_masks(self) -> Tensor | None:
        """Float [T, n_main]: 1 where task j's regulariser term counts; None when all tasks share their head."""
        bench = self.ctx.benchmark
        heads = [bench.head(j) for j in range(bench.num_tasks)]  # ragged heads (head_sizes) cut to size
        if all(h.shape == heads[0].shape and bool((h == heads[0]).all()) for h in heads):
            return None
        keep = torch.ones(len(heads), self.n_main, device=self.ctx.device)
        offset = 0
        readout = self.model.readout + "."
        for name, p in self.model.named_parameters():
            shape, size = p.shape, p.numel()
            if name.startswith(readout):  # the read-out's weight rows and bias entries are output units
                for j, head in enumerate(heads):
                    rows = keep[j, offset: offset + size].view(shape)  # a view: writes land in `keep`
                    other = torch.ones(shape[0], dtype=torch.bool, device=self.ctx.device)
                    other[head] = False
                    rows[other] = 0.0
            offset += size
        return keep

    # -- weights ------------------------------------------------------------------------------
    def generate(self, tasks: Tensor) -> Tensor:
        """Long [n] task ids on the device → [n, n_main] flat main-network weights (differentiable)."""
        flat: Tensor = self.hnet(tasks)
        return flat

    def weights_for(self, task: int) -> dict[str, Tensor]:
        """Main-network parameters for `task`, by name (views of one generated flat vector).

        With grad enabled (training) they are generated afresh: one hnet pass per task per step.
        Without grad (evaluation) they are cached until any hnet parameter changes in place
        (optimizer step, load_state_dict), which the tensors' version counters reveal.
        """
        if torch.is_grad_enabled():
            return params_from_flat(self.model, self.generate(self._ids[task : task + 1])[0])
        key = tuple(p._version for p in self.hnet.parameters())
        hit = self._cache.get(task)
        if hit is None or hit[0] != key:
            hit = (key, params_from_flat(self.model, self.generate(self._ids[task : task + 1])[0]))
            self._cache[task] = hit
        return hit[1]

    def trainable_parameters(self) -> list[Tensor]:
        return list(self.hnet.parameters())

    def forward(self, x: Tensor, lengths: Tensor | None, task: int) -> Tensor:
        logits: Tensor = functional_call(self.model, self.weights_for(task), (x, lengths))
        return logits

    # -- regulariser --------------------------------------------------------------------------
    def _earlier_tasks(self, phase: int, tasks: list[int]) -> list[int]:
        plan = self.schedule(self.ctx.benchmark.num_tasks, self.ctx.training.steps_per_task)
        return sorted({t for ts, _ in plan[:phase] for t in ts} - set(tasks))

    def _set_target_tasks(self, tasks: list[int]) -> None:
        self.target_tasks = list(tasks)
        self._target_ids = torch.tensor(self.target_tasks, dtype=torch.long, device=self.ctx.device)

    def before_phase(self, phase: int, tasks: list[int]) -> None:
        self._set_target_tasks(self._earlier_tasks(phase, tasks))
        self.targets = None
        if self.target_tasks:
            was_training = self.hnet.training
            self.hnet.eval()
            with torch.no_grad():
                self.targets = self.generate(self._target_ids).clone()
            self.hnet.train(was_training)

    def penalty(self, phase: int, tasks: list[int]) -> tuple[Tensor | None, dict[str, Tensor | float]]:
        if self.targets is None or self.opts.beta == 0:
            return None, {}
        ids, target = self._target_ids, self.targets
        n = len(self.target_tasks)
        if 0 < self.opts.reg_batch_size < n:
            rows = torch.randperm(n, generator=self.ctx.generator("hnet/reg_subset"))[: self.opts.reg_batch_size].sort().values.to(self.ctx.device)
            ids, target = ids[rows], target[rows]
        sq = (self.generate(ids) - target).square()
        if self.keep is not None:
            sq = sq * self.keep[ids]
        reg = self.opts.beta * sq.sum() / ids.numel()
        return reg, {"hnet_reg": reg.detach()}

    def declare_series(self) -> list[SeriesSpec]:
        return [*super().declare_series(),
                SeriesSpec("hnet_reg", description="β·(1/|S|)·Σ_j ‖h(e_j) − W*_j‖² of the logged step (from task 2 on)")]

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "hnet": {k: v.detach().clone() for k, v in self.hnet.state_dict().items()},
            "target_tasks": list(self.target_tasks),
            "targets": None if self.targets is None else self.targets.detach().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.hnet.load_state_dict(state["hnet"])
        self._set_target_tasks(state["target_tasks"])
        t = state["targets"]
        self.targets = None if t is None else t.to(self.ctx.device)
        self._cache.clear()

    def describe(self) -> dict[str, Any]:
        """hnet_params counts the MLP weights and biases, all K chunk and all T task embeddings (the spec's convention)."""
        hnet_params = self.hnet.num_params()
        return {"hnet_params": hnet_params, "main_params": self.n_main, "num_chunks": self.hnet.num_chunks,
                "compression_ratio": hnet_params / self.n_main}
