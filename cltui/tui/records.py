"""Plain functions over run records that the TUI's screens share: cached polling of the store,
filtering and sorting, the mean seen-task curve. (Progress, group statistics and metric rows are
engine.presentation's, shared with the CLI's views.)

No textual here (unit-testable without an app); torch-free (engine.store / engine.metrics only).
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import RunStoreError
from engine.presentation import metrics_of
from engine.provenance import overrides_of
from engine.store import RUN_FILE, RunRecord, RunStore, read_run

NAN = math.nan
SORT_KEYS = ("created", "status", "benchmark", "method", "seed", "during", "final", "bwt")
"""Sort orders of the runs list, cycled with `s` (clicking a column header picks one)."""


class RunPoller:
    """Reads every run in the store without series, re-reading only files that changed.

    A file is re-read when its (mtime, size) changes; a store of 100 finished runs then costs
    100 `stat` calls per poll instead of 100 HDF5 opens (~1 ms each).
    """

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._cache: dict[str, tuple[tuple[int, int], RunRecord]] = {}

    def poll(self) -> list[RunRecord]:
        out: list[RunRecord] = []
        seen: dict[str, tuple[tuple[int, int], RunRecord]] = {}
        for rid in self.store.run_ids():
            path = self.store.root / rid / RUN_FILE
            try:
                st = path.stat()
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            hit = self._cache.get(rid)
            if hit is not None and hit[0] == key:
                rec = hit[1]
            else:
                try:
                    rec = read_run(self.store.root / rid, with_series=False)
                except RunStoreError:
                    continue  # unreadable (being created, or not a run): skipped, never touched
            seen[rid] = (key, rec)
            out.append(rec)
        self._cache = seen
        return out


def matches(rec: RunRecord, query: str) -> bool:
    """Every word of `query` is a substring of the run's id, status, preset, benchmark, method, seed or group."""
    hay = " ".join((rec.run_id, rec.live_status, rec.preset, rec.benchmark, rec.method, f"s{rec.seed}",
                    rec.group)).lower()
    return all(word in hay for word in query.lower().split())


def sort_records(records: list[RunRecord], key: str, reverse: bool = False) -> list[RunRecord]:
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
    if rec.curve_acc.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    acc = rec.curve_acc
    seen = ~np.isnan(acc)
    counts = seen.sum(axis=1)
    sums = np.where(seen, acc, 0.0).sum(axis=1)
    keep = counts > 0
    return rec.curve_steps[keep].astype(float), sums[keep] / counts[keep]


def group_overrides(recs: list[RunRecord], width: int = 30) -> str:
    """What a group's runs were started with beyond their preset (the overrides all share), cut to
    `width` characters; '—' for none."""
    if not recs:
        return "—"
    common = set(overrides_of(recs[0].environment))
    for r in recs[1:]:
        common &= set(overrides_of(r.environment))
    text = " ".join(o for o in overrides_of(recs[0].environment) if o in common)
    return (text[:width - 1] + "…" if len(text) > width else text) or "—"
