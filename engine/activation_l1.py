"""The L1 activation penalty (training.l1_activation = λ): λ·Σ_layers mean|h_layer| added to the loss.

Usable with any method and any model of the engine/models/base.py contract: the unit layers
(`model.unit_layers`, each a submodule whose forward returns that layer's activations, e.g. the
MLP's h1, h2 after the nonlinearity and before dropout) are read with forward hooks during the
step's own training forward, so the penalty costs no second forward. mean|h| of a layer is taken
over every element the layer produced in the step (all task groups of a mixed batch together), so
for one batch it is exactly `h.abs().mean()` (the §11 study's `λ·(mean|h1| + mean|h2|)`).

Hooks live only inside `capture()`: evaluations, observers and a method's own forwards (EWC's
Fisher, OGD's gradient pass) never touch them. Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from engine.series import SeriesSpec

SERIES = "l1_activation"
"""The training scalar recording λ·Σ mean|h| of the logged step (declared only when λ > 0)."""


class ActivationL1:
    """Collects Σ|h| and element counts per unit layer while `capture()` is open; `term()` → the penalty."""

    def __init__(self, model: nn.Module, lam: float) -> None:
        self.lam = lam
        names: list[str] = list(getattr(model, "unit_layers", {}))
        self.layers = [(name, model.get_submodule(name)) for name in names] if lam > 0 else []
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.lam > 0

    def declare_series(self) -> list[SeriesSpec]:
        if not self.enabled:
            return []
        return [SeriesSpec(SERIES, description=f"L1 activation penalty λ·Σ_layers mean|h| of the logged step "
                                               f"(λ = {self.lam:g}; included in loss, not in task_loss)")]

    def _hook(self, name: str, module: nn.Module, args: Any, out: Tensor) -> None:
        s = out.abs().sum()
        self._sums[name] = s if name not in self._sums else self._sums[name] + s
        self._counts[name] = self._counts.get(name, 0) + out.numel()

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Record the unit layers' activations of the forwards inside the block (nothing when λ = 0)."""
        self._sums, self._counts = {}, {}
        handles = [layer.register_forward_hook(lambda m, a, o, n=name: self._hook(n, m, a, o))
                   for name, layer in self.layers]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def term(self) -> Tensor | None:
        """λ·Σ_layers mean|h| of the captured forwards (part of the graph), or None when off."""
        if not self.enabled or not self._sums:
            return None
        total: Tensor | None = None
        for name, s in self._sums.items():
            mean = s / self._counts[name]
            total = mean if total is None else total + mean
        assert total is not None
        return self.lam * total
