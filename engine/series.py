"""Declared series of the run record: what may be written to `run.h5`, with what shape and when.

Before a run starts, the loop, the method and every enabled analysis declare their series
(`SeriesSpec`: name, shape per row, dtype, cadence, optional column names, description). The store
creates one dataset pair per declaration; writing a value nobody declared raises `SeriesError`, so
nothing is ever dropped silently (STYLE §14).

Cadences, a closed set (each says when rows are written, and so which hook writes them):

    step    every optimizer step (an observer's `on_step`; costs a host sync per step, so rare)
    log     every `training.log_every` steps and at each phase's last step (the loop's training
            scalars and the method's penalty diagnostics)
    curve   at an analysis's own cadence: every `every` steps and at each phase's last step
            (`Observer.on_curve_point`, e.g. the forgetting curves)
    epoch   at each epoch end of a phase (and, for validation, at the phase's last step): the
            loop's stop-rule measurements (engine/phases.py)
    phase   once per phase, after its consolidation and evaluation (`Method.phase_diagnostics`,
            `Observer.on_phase_end`)

Torch-free: only numpy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

CADENCES = ("step", "log", "curve", "epoch", "phase")
DTYPES = ("f8", "f4", "i8", "i4", "u1", "b1")
"""Row dtypes a series may have (numpy codes; HDF5 stores each natively)."""
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

CURVES = "curves"
"""The forgetting curves' series (the `curves` analysis): RunRecord.curve_steps/curve_acc read it."""


class SeriesError(ValueError):
    """A series was written without a declaration, declared twice, or written with the wrong shape."""


@dataclass(frozen=True)
class SeriesSpec:
    """One declared series: rows of `shape` written at `cadence`, each with the global step."""

    name: str
    """Lower-case identifier (letters, digits, '_'); the dataset group is `series/<name>`."""
    shape: tuple[int, ...] = ()
    """Shape of one row: () for a scalar, (T,) for one value per task, ..."""
    dtype: str = "f8"
    cadence: str = "log"
    columns: tuple[str, ...] | None = None
    """Names along a row's last axis (e.g. the task names), or None."""
    description: str = ""
    source: str = ""
    """Who declared it: 'loop', 'method' or 'analysis/<name>' (filled in by the loop)."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise SeriesError(f"series name {self.name!r} must be lower-case letters, digits and '_'")
        if self.cadence not in CADENCES:
            raise SeriesError(f"series {self.name!r}: cadence {self.cadence!r} is not one of {', '.join(CADENCES)}")
        if self.dtype not in DTYPES:
            raise SeriesError(f"series {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if any(n < 1 for n in self.shape):
            raise SeriesError(f"series {self.name!r}: shape {self.shape} must have positive sizes")
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(str(c) for c in self.columns))
            if not self.shape or len(self.columns) != self.shape[-1]:
                raise SeriesError(f"series {self.name!r}: {len(self.columns)} column names for shape {self.shape}")

    # -- HDF5 attributes ------------------------------------------------------------------------
    def attrs(self) -> dict[str, Any]:
        """The attributes stored on `series/<name>` (plain strings, readable by any h5py)."""
        return {"shape": json.dumps(list(self.shape)), "dtype": self.dtype, "cadence": self.cadence,
                "columns": json.dumps(None if self.columns is None else list(self.columns)),
                "description": self.description, "source": self.source}

    @classmethod
    def from_attrs(cls, name: str, attrs: Mapping[str, Any]) -> SeriesSpec:
        def s(v: Any) -> str:
            return v.decode() if isinstance(v, bytes) else str(v)

        cols = json.loads(s(attrs["columns"]))
        return cls(name, tuple(json.loads(s(attrs["shape"]))), s(attrs["dtype"]), s(attrs["cadence"]),
                   None if cols is None else tuple(cols), s(attrs["description"]), s(attrs.get("source", "")))

    def row(self, value: Any) -> np.ndarray:
        """`value` as one row of this series; a wrong shape raises SeriesError naming the series."""
        arr = np.asarray(value, dtype=self.dtype)
        if arr.shape != self.shape:
            raise SeriesError(f"series {self.name!r} was declared with rows of shape {self.shape}, "
                              f"got a value of shape {arr.shape}")
        return arr


class SeriesSet:
    """The declarations of one run, by name, in declaration order."""

    def __init__(self, specs: Iterable[SeriesSpec] = ()) -> None:
        self._specs: dict[str, SeriesSpec] = {}
        self.add(specs)

    def add(self, specs: Iterable[SeriesSpec], source: str | None = None) -> None:
        """Declare `specs` (stamped with `source` when given); a name declared twice is an error."""
        for spec in specs:
            if source is not None:
                spec = replace(spec, source=source)
            old = self._specs.get(spec.name)
            if old is not None:
                raise SeriesError(f"series {spec.name!r} declared twice (by {old.source or '?'} and "
                                  f"{spec.source or '?'}); rename one")
            self._specs[spec.name] = spec

    def get(self, name: str, cadence: str | None = None) -> SeriesSpec:
        """The declaration of `name`; undeclared names (or a write at another cadence) raise SeriesError."""
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(self._specs) or "none"
            raise SeriesError(f"value {name!r} was written but no series {name!r} was declared "
                              f"(declare it in declare_series() first; declared: {known})")
        if cadence is not None and spec.cadence != cadence:
            raise SeriesError(f"series {name!r} is declared with cadence {spec.cadence!r} "
                              f"but was written at a {cadence!r} point")
        return spec

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[SeriesSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return list(self._specs)


# The loop's own series (declared by engine/loop.py; torch-free here so tests and readers share them).
TRAINING_SERIES = (
    SeriesSpec("loss", description="task loss (+ L1 activation term) + method penalty of the logged step", source="loop"),
    SeriesSpec("task_loss", description="cross-entropy of the logged step's batch (summed over tasks / batch size)",
               source="loop"),
    SeriesSpec("penalty", description="the method's penalty of the logged step (0 when none)", source="loop"),
    SeriesSpec("train_acc", description="accuracy (%) on the logged step's training batch", source="loop"),
    SeriesSpec("grad_norm", description="global L2 norm of the gradient (before clipping)", source="loop"),
    SeriesSpec("lr", description="learning rate of the logged step", source="loop"),
    SeriesSpec("steps_per_sec", description="training steps per second since the previous log point", source="loop"),
)
SCALAR_NAMES = tuple(s.name for s in TRAINING_SERIES)
