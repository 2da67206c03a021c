"""Counting host syncs: every place Python reads a tensor's value back, instrumented on any device.

On CUDA a read of a device tensor's value (`.item()`, `int()`, `float()`, `bool()`, `.tolist()`,
`.cpu()`, using it as an index) makes the host wait for the GPU; on CPU the same reads cost nothing,
so a CPU-only test cannot see them by timing. `count_host_syncs()` patches those Tensor methods for
the duration of a block and counts every call, whatever the device, so a CPU test catches a sync
that would stall a GPU. `torch.cuda.set_sync_debug_mode` is the CUDA-side check; this one also runs
in CI. Calls made from C++ inside torch (not through these Python methods) are not seen.

Reads of tensors that live on the host even in a CUDA run can be excluded with `ignore` (e.g. the
step counters of PyTorch's non-capturable optimizers, which `Adam.step` reads with `.item()`).
`.numpy()` is not counted: it refuses CUDA tensors, so it can only ever read host memory.

Imports torch; never textual/typer/rich. Used by the bench (engine/bench) and tests, never in runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from engine.loop import Trainer

READS = ("item", "__int__", "__float__", "__bool__", "__index__", "tolist", "cpu")
"""The Tensor methods that read a value back to the host (a device sync when the tensor is on a GPU)."""


@dataclass
class SyncCounter:
    """Counts of host reads while `count_host_syncs` is active; `paused` stops counting inside a block."""

    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    paused: bool = False

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Reads inside this block are not counted (e.g. the bench's own bookkeeping)."""
        old, self.paused = self.paused, True
        try:
            yield
        finally:
            self.paused = old


@contextmanager
def count_host_syncs(ignore: Callable[[Tensor], bool] | None = None) -> Iterator[SyncCounter]:
    """Count every host read of a tensor's value inside the block (see the module doc); not re-entrant."""
    counter = SyncCounter()
    originals: dict[str, Any] = {name: getattr(torch.Tensor, name) for name in READS}
    if any(name in torch.Tensor.__dict__ for name in READS):
        raise RuntimeError("count_host_syncs is already active (or Tensor read methods are patched)")

    def wrap(name: str, fn: Any) -> Any:
        def counted(self: Tensor, *args: Any, **kwargs: Any) -> Any:
            if not counter.paused and not (ignore is not None and ignore(self)):
                counter.total += 1
                counter.by_kind[name] = counter.by_kind.get(name, 0) + 1
            # Nested reads (e.g. tolist calling item) are the same sync: count the outer one only.
            old, counter.paused = counter.paused, True
            try:
                return fn(self, *args, **kwargs)
            finally:
                counter.paused = old

        return counted

    try:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, wrap(name, fn))
        yield counter
    finally:
        for name in READS:
            if name in torch.Tensor.__dict__:
                delattr(torch.Tensor, name)  # the C base class's method shows through again


def optimizer_step_counters(current: Callable[[], torch.optim.Optimizer | None]) -> Callable[[Tensor], bool]:
    """`ignore` for `count_host_syncs`: the per-parameter 'step' tensors of the optimizer `current()`
    returns (host scalars in PyTorch's non-capturable optimizers, so reading them is no device sync)."""

    def is_step(t: Tensor) -> bool:
        opt = current()
        if opt is None:
            return False
        return any(st.get("step") is t for st in opt.state.values())

    return is_step


def syncs_per_step(trainer: Trainer, stop_at_step: int | None = None) -> tuple[str, list[int], SyncCounter]:
    """Train `trainer` (to `stop_at_step`, or the end) counting host reads; return the run's status,
    each step's reads and the counter (totals by kind). The optimizer's host step counters are not
    counted. Step k's reads run from the end of step k-1's `after_step` hook to the end of its own, so
    reads at a log step, an epoch end or a phase end (which come after `after_step`) land on step k+1;
    the first step (with the run's start) is not in the list."""
    marks: list[int] = []
    method = trainer.method
    after_step = method.after_step
    own = vars(method).get("after_step")  # an instance-level hook already there (else the class's)
    with count_host_syncs(ignore=optimizer_step_counters(lambda: trainer.optimizer)) as counter:
        def mark(phase: int, tasks: list[int]) -> None:
            after_step(phase, tasks)
            marks.append(counter.total)

        method.after_step = mark  # type: ignore[method-assign]
        try:
            status = trainer.run(stop_at_step=stop_at_step)
        finally:  # put back exactly what was there
            if own is None:
                del method.after_step
            else:
                method.after_step = own  # type: ignore[method-assign]
    return status, [b - a for a, b in zip(marks, marks[1:])], counter
