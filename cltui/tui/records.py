"""Plain functions over runs that the TUI's screens share: the store poller (through the run index),
filtering and sorting, the mean seen-task curve. (Progress, group statistics and metric rows are
engine.presentation's, shared with the CLI's views.)

The runs list works on engine.run_index.RunSummary (plain values, from the index); the other screens
read full RunRecords. Filtering and sorting take either. No textual here (unit-testable without an
app); torch-free, and numpy/h5py-free at import: the Runs screen is the first one drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from engine.presentation import metrics_of
from engine.provenance import overrides_of
from engine.run_index import RunIndex, RunSummary
from engine.store_dir import RunStore

if TYPE_CHECKING:
    import numpy as np

    from engine.store_read import RunRecord

NAN = math.nan
R = TypeVar("R", "RunRecord", RunSummary)
SORT_KEYS = ("created", "status", "benchmark", "method", "seed", "during", "final", "bwt")
"""Sort orders of the runs list, cycled with `s` (clicking a column header picks one)."""


class RunPoller:
    """Lists every run in the store as a RunSummary, re-reading only run files that changed.

    It keeps one engine.run_index.RunIndex: the first poll reads the index file (one file, no numpy
    or h5py, whatever the number of runs), each later one costs a `stat` per run plus an HDF5 read of
    each run that changed (~1 ms; a running run, about once a second). Unchanged runs keep their
    summary object from poll to poll.
    """

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.index = RunIndex(store.root)

    def poll(self, partial: Callable[[list[RunSummary]], None] | None = None) -> list[RunSummary]:
        """Every readable run (an unreadable one, being created or not a run, is skipped, never touched);
        `partial` gets the runs read so far while many are read (RunIndex.summaries)."""
        return self.index.summaries(self.store.run_ids(), partial=partial)


def matches(rec: RunRecord | RunSummary, query: str) -> bool:
    """Every word of `query` is a substring of the run's id, status, preset, benchmark, method, seed or group."""
    hay = " ".join((rec.run_id, rec.live_status, rec.preset, rec.benchmark, rec.method, f"s{rec.seed}",
                    rec.group)).lower()
    return all(word in hay for word in query.lower().split())


def sort_records(records: list[R], key: str, reverse: bool = False) -> list[R]:
    """Sorted by `key` (one of SORT_KEYS); runs without the metric always go last."""
    if key in ("during", "final", "bwt"):
        have = [r for r in records if not math.isnan(metrics_of(r).get(key, NAN))]
        lack = [r for r in records if math.isnan(metrics_of(r).get(key, NAN))]
        return sorted(have, key=lambda r: metrics_of(r)[key], reverse=not reverse) + lack
    attr = {"created": lambda r: (r.created, r.run_id), "status": lambda r: (r.live_status, r.run_id),
            "benchmark": lambda r: (r.benchmark, r.method, r.seed), "method": lambda r: (r.method, r.benchmark, r.seed),
            "seed": lambda r: (r.seed, r.run_id)}[key]
    return sorted(records, key=attr, reverse=reverse)


def mean_seen_curve(rec: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """Steps and the mean accuracy over the tasks seen so far at each curve point (for comparisons)."""
    import numpy as np

    if rec.curve_acc.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    acc = rec.curve_acc
    seen = ~np.isnan(acc)
    counts = seen.sum(axis=1)
    sums = np.where(seen, acc, 0.0).sum(axis=1)
    keep = counts > 0
    return rec.curve_steps[keep].astype(float), sums[keep] / counts[keep]


def _overrides(rec: RunRecord | RunSummary) -> list[str]:
    return list(rec.overrides) if isinstance(rec, RunSummary) else overrides_of(rec.environment)


def group_overrides(recs: list[RunRecord] | list[RunSummary], width: int = 30) -> str:
    """What a group's runs were started with beyond their preset (the overrides all share), cut to
    `width` characters; '—' for none."""
    if not recs:
        return "—"
    common = set(_overrides(recs[0]))
    for r in recs[1:]:
        common &= set(_overrides(r))
    text = " ".join(o for o in _overrides(recs[0]) if o in common)
    return (text[:width - 1] + "…" if len(text) > width else text) or "—"
