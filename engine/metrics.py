"""Continual-learning metrics as pure functions of the accuracy matrix. Torch-free; never mutates input.

Convention: `acc[i, j]` is the accuracy (%) on task j's test set after training phase i (one
task per phase, so i indexes tasks in the usual square case); NaN where not evaluated. A
multitask run has a single row. `initial[j]` is the untrained network's accuracy on task j.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

NAN = float("nan")


def _arr(acc: ArrayLike) -> np.ndarray:
    # np.array copies, so nothing done here can reach the caller's matrix.
    a = np.array(acc, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"accuracy matrix must be 2-D, got shape {a.shape}")
    return a


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else NAN


def is_square(acc: ArrayLike) -> bool:
    a = _arr(acc)
    return bool(a.shape[0] == a.shape[1])  # numpy types shape entries as Any


def average_accuracy(acc: ArrayLike, after: int = -1) -> float:
    """Average accuracy after phase `after` over the tasks seen by then (Chaudhry et al. 2018, A_k).

    In the square case: mean_{j<=k} acc[k, j]. For a single-row (multitask) matrix: the row mean.
    """
    a = _arr(acc)
    k = after % a.shape[0]
    if a.shape[0] == 1:
        return _mean(a[0])
    return _mean(a[k, : k + 1])


def during_accuracy(acc: ArrayLike) -> float:
    """Mean of the diagonal: each task right after it was learned (Ehret et al. 2021, "during").

    NaN when the matrix is not square (multitask has no "during").
    """
    a = _arr(acc)
    return _mean(np.diag(a)) if is_square(a) else NAN


def final_accuracy(acc: ArrayLike) -> float:
    """Mean of the last row: every task after the whole sequence (Ehret et al. 2021, "final")."""
    return _mean(_arr(acc)[-1])


def backward_transfer(acc: ArrayLike) -> float:
    """BWT (Lopez-Paz & Ranzato 2017, GEM): mean_{j<T-1} (acc[T-1, j] - acc[j, j]). Negative = forgetting."""
    a = _arr(acc)
    if not is_square(a) or a.shape[0] < 2:
        return NAN
    t = a.shape[0]
    return _mean(np.array([a[t - 1, j] - a[j, j] for j in range(t - 1)]))


def forward_transfer(acc: ArrayLike, initial: ArrayLike) -> float:
    """FWT (Lopez-Paz & Ranzato 2017): mean_{j>=1} (acc[j-1, j] - b_j), b = untrained accuracy."""
    a = _arr(acc)
    b = np.array(initial, dtype=float)
    if not is_square(a) or a.shape[0] < 2 or b.shape != (a.shape[1],):
        return NAN
    t = a.shape[0]
    return _mean(np.array([a[j - 1, j] - b[j] for j in range(1, t)]))


def forgetting(acc: ArrayLike) -> float:
    """Average forgetting (Chaudhry et al. 2018): mean_{j<T-1} max_{l<T-1} acc[l, j] - acc[T-1, j].

    The max runs over rows l >= j (earlier rows are before task j was learned).
    """
    a = _arr(acc)
    if not is_square(a) or a.shape[0] < 2:
        return NAN
    t = a.shape[0]
    return _mean(np.array([np.nanmax(a[j : t - 1, j]) - a[t - 1, j] for j in range(t - 1)]))


def summary(acc: ArrayLike, initial: ArrayLike | None = None) -> dict[str, float]:
    """All metrics by name, for storage and display. Only complete rows count."""
    a = _arr(acc)
    done = [i for i in range(a.shape[0]) if not np.all(np.isnan(a[i]))]
    if not done:
        return {k: NAN for k in ("during", "final", "average", "bwt", "fwt", "forgetting")}
    last = done[-1]
    complete = a[: last + 1]
    finished = last == a.shape[0] - 1
    out = {
        "during": _mean(np.diag(complete)) if a.shape[0] == a.shape[1] else NAN,
        "final": final_accuracy(a) if finished else NAN,
        "average": _mean(a[last, : last + 1]) if a.shape[0] == a.shape[1] else _mean(a[last]),
        "bwt": backward_transfer(a) if finished else NAN,
        "fwt": forward_transfer(a, initial) if finished and initial is not None else NAN,
        "forgetting": forgetting(a) if finished else NAN,
    }
    return {k: (NAN if v is None or math.isnan(v) else round(v, 6)) for k, v in out.items()}


METRIC_NAMES = ("during", "final", "average", "bwt", "fwt", "forgetting")


def seen_accuracy(row: ArrayLike, seen: list[int], sizes: list[int]) -> float:
    """Accuracy (%) over the pooled test images of the `seen` tasks, given one row of the accuracy
    matrix and every task's test-set size: Σ_j∈seen acc[j]·n_j / Σ_j∈seen n_j.

    Class-incremental with one shared head, this is the accuracy over all classes seen so far
    (the §11 forgetting study's "val acc"; predicting only the last task's two classes gives about
    2/(2t) after task t). Unlike `average_accuracy` it weights tasks by their number of images.
    """
    r = np.array(row, dtype=float)
    if not seen:
        return NAN
    n = np.array([sizes[j] for j in seen], dtype=float)
    return float((r[seen] * n).sum() / n.sum())
