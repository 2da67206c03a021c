"""Refuse a run whose batch cannot fit in the device's memory, before it starts (issue 10 item 7).

`training.batch_size` and `evaluation.batch_size` are capped by the schema (engine/config.py), and
model sizes are checked against the machine's RAM when options are validated (schema.check_fits);
what those cannot know is the model's memory per sample, which depends on the model, its widths and
the sequence length. So once the model and data exist (engine.api.build_trainer), this module
measures it and compares a lower-bound estimate with the memory free on the run's device (host
`MemAvailable` on the CPU, `torch.cuda.mem_get_info` on CUDA):

- training: weights + gradients + optimizer state (2 tensors per weight for Adam/AdamW, 1 for
  RMSprop and SGD with momentum), plus the bytes autograd saves for backward per sample × the batch;
- evaluation (no_grad): the largest single module output per sample × the evaluation batch.

Per-sample bytes are measured, not guessed: one forward of 1 and of 2 training samples of the first
task (model in eval mode, so no dropout draw and no BatchNorm update; the model's mode, the random
streams and the global RNGs are restored),
counting the distinct tensors autograd saves (`saved_tensors_hooks`) and the largest module output;
the difference is what each added sample costs. A lower bound (the real peak also holds temporaries),
so only sizes that cannot fit are refused; the probe costs two tiny forwards.

Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from engine.errors import ConfigError
from engine.rng import rng_state, set_rng_state, stream_seed

if TYPE_CHECKING:
    from engine.loop import Trainer

_OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 0}
"""Optimizer tensors per weight (SGD adds one with momentum, RMSprop another with momentum)."""


@dataclass(frozen=True)
class MemoryEstimate:
    fixed: int
    """weights, gradients and optimizer state (bytes)"""
    train_per_sample: int
    """saved for backward, per training sample"""
    eval_per_sample: int
    """largest module output, per evaluation sample"""


def _probe(model: nn.Module, x: Tensor, lengths: Tensor | None) -> tuple[int, int]:
    """(bytes saved for backward, bytes of the largest module output) of one forward."""
    seen: dict[tuple[int, int], int] = {}
    largest = 0

    def pack(t: Tensor) -> Tensor:
        seen[(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())] = t.untyped_storage().nbytes()
        return t

    def on_output(module: nn.Module, args: Any, out: Any) -> None:
        nonlocal largest
        if isinstance(out, Tensor):
            largest = max(largest, out.numel() * out.element_size())

    hooks = [m.register_forward_hook(on_output) for m in model.modules()]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x, lengths)
    finally:
        for h in hooks:
            h.remove()
    return sum(seen.values()), largest


def estimate(trainer: Trainer) -> MemoryEstimate:
    """Measure the run's memory per sample and its fixed memory (module doc)."""
    model, method, tr = trainer.model, trainer.method, trainer.cfg.training
    params = {id(p): p for p in [*model.parameters(), *method.trainable_parameters()]}
    weights = sum(p.numel() * p.element_size() for p in params.values())
    states = _OPTIMIZER_STATES.get(tr.optimizer, 2) + (1 if tr.momentum > 0 and tr.optimizer in ("sgd", "rmsprop") else 0)
    task = trainer.bench.tasks[0]
    n = min(2, task.size("train"))
    if n < 2:
        return MemoryEstimate(weights * (2 + states), 0, 0)
    was_training = model.training
    # Eval mode: no dropout draw, no BatchNorm statistics update. The random streams and global RNGs
    # are restored too, in case a task draws when it serves a batch (e.g. on-device augmentation).
    streams, rngs = trainer.streams.state_dict(), rng_state()
    model.eval()
    try:
        b1 = task.get("train", torch.arange(1, device=trainer.device))
        b2 = task.get("train", torch.arange(2, device=trainer.device))
        saved1, out1 = _probe(model, b1.x, b1.lengths)
        saved2, out2 = _probe(model, b2.x, b2.lengths)
    finally:
        model.train(was_training)
        trainer.streams.load_state_dict(streams)
        for name in set(trainer.streams.names()) - set(streams["streams"]):  # first used by the probe:
            trainer.streams.get(name).manual_seed(stream_seed(trainer.streams.seed, name))  # fresh again
        set_rng_state(rngs)
    return MemoryEstimate(weights * (2 + states), max(0, saved2 - saved1), max(0, out2 - out1))


def available_bytes(device: torch.device) -> int | None:
    """Memory free for the run on `device`; None where it cannot be read."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(trainer: Trainer) -> None:
    """ConfigError naming the batch size when the run cannot fit in its device's free memory."""
    free = available_bytes(trainer.device)
    if free is None:
        return
    est = estimate(trainer)
    cfg = trainer.cfg
    where = "GPU memory free" if trainer.device.type == "cuda" else "memory available"
    for key, batch, per in (("training.batch_size", cfg.training.batch_size, est.train_per_sample),
                            ("evaluation.batch_size", cfg.evaluation.batch_size, est.eval_per_sample)):
        need = est.fixed + batch * per
        if need > free:
            raise ConfigError(f"{key} = {batch:,} needs at least {_gib(need)} on {trainer.device} "
                              f"({_mib(per)} per sample, {_mib(est.fixed)} for weights and optimizer state), "
                              f"more than the {_gib(free)} of {where}; lower {key}")


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB"
