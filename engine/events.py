"""Typed progress events: the engine's only way of reporting what it does.

The training loop emits these to sinks (the run store, the console view, tests). Nobody parses
log text. Torch-free, plain dataclasses with plain-Python fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    run_dir: str
    config: dict[str, Any]
    task_names: list[str]
    phase_tasks: list[list[int]]
    """Tasks trained in each phase (one task per phase, except multitask)."""
    phase_steps: list[int]
    device: str
    resumed_at_step: int = 0
    notes: tuple[str, ...] = ()
    """Things a person should know about this start, e.g. a damaged checkpoint that was skipped."""


@dataclass(frozen=True)
class PhaseStarted:
    phase: int
    tasks: list[int]
    steps: int
    first_step: int
    """Global step index at which this phase starts."""


@dataclass(frozen=True)
class StepLogged:
    step: int
    """Global step (1-based count of optimizer steps done)."""
    phase: int
    values: dict[str, float]
    """One value per declared log-cadence series: the loop's training scalars and the method's diagnostics."""
    steps_per_sec: float


@dataclass(frozen=True)
class SeriesPoint:
    """One row of a declared series (engine/series.py), e.g. a forgetting-curve point or a phase diagnostic."""

    name: str
    step: int
    """Global step at which the row was taken."""
    value: Any
    """A float, a (nested) list or a numpy array of the series' row shape."""


@dataclass(frozen=True)
class InitialEvaluated:
    accuracy: list[float]
    """Untrained network on every task (the b_j of forward transfer)."""


@dataclass(frozen=True)
class PhaseEvaluated:
    phase: int
    accuracy: list[float]
    """Row `phase` of the accuracy matrix: every task's full test set, in %."""
    seconds: float
    """Wall time of the phase's training."""


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str


@dataclass(frozen=True)
class RunFinished:
    metrics: dict[str, float]
    seconds: float


@dataclass(frozen=True)
class RunInterrupted:
    step: int
    checkpoint: str | None


@dataclass(frozen=True)
class RunFailed:
    error: str


@dataclass(frozen=True)
class RunDiverged:
    """The training loss became non-finite: the run stops there with status 'diverged'."""

    step: int
    """Global step of the first non-finite loss (exact, though found at the next log step)."""
    loss: float
    """That loss (NaN or ±inf)."""
    last_finite_step: int
    """Global step of the last finite loss before it (0 = none)."""
    last_finite_loss: float
    """That loss (NaN when there was none)."""


Event = (
    RunStarted | PhaseStarted | StepLogged | SeriesPoint | InitialEvaluated | PhaseEvaluated
    | CheckpointSaved | RunFinished | RunInterrupted | RunFailed | RunDiverged
)
Sink = Callable[[Any], None]


@dataclass
class Recorder:
    """A sink that keeps every event (tests, replay)."""

    events: list[Any] = field(default_factory=list)

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
