"""What the views show of a run's task inference (engine/inference.py): one row per inference point.

Computed once here, torch-free (numpy only), and rendered by both `cltui show` (cltui/views.py) and
the TUI's Live screen. A run without the series (task_inference = "given") has no rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.store_read import RunRecord

TASK_SERIES, CLASS_SERIES = "inferred_task_acc", "inference_acc"


@dataclass(frozen=True)
class InferencePoint:
    """Means over the tasks learned at one inference point (%)."""

    learned: int
    step: int
    task_acc: float
    """Test batches whose task was inferred correctly."""
    inferred_acc: float
    """Test images classified correctly with the inferred task (wrongly inferred batches count wrong)."""
    given_acc: float
    """The same tasks with the true task given (the accuracy matrix's row of that phase; NaN if unknown)."""


def _mean(row: np.ndarray) -> float:
    seen = row[~np.isnan(row)]
    return float(seen.mean()) if seen.size else math.nan


def inference_points(rec: RunRecord) -> list[InferencePoint]:
    tasks, classes = rec.series.get(TASK_SERIES), rec.series.get(CLASS_SERIES)
    if tasks is None or classes is None:
        return []
    ends = rec.series.get("phase_steps")  # written at each phase's end, at the phase's last global step
    end_steps = ends.steps.tolist() if ends is not None else []
    out = []
    for step, t_row, c_row in zip(tasks.steps.tolist(), tasks.values, classes.values):
        learned = ~np.isnan(t_row)
        given = math.nan
        if step in end_steps:
            phase = end_steps.index(step)
            given = _mean(np.where(learned, rec.acc[phase], np.nan))
        out.append(InferencePoint(int(learned.sum()), int(step), _mean(t_row), _mean(c_row), given))
    return out
