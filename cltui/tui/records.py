"""Plain functions over run records that the TUI's screens share: cached polling of the store,
seed-group statistics, filtering and sorting, progress arithmetic.

No textual here (unit-testable without an app); torch-free (engine.store / engine.metrics only).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from cltui.views import live_metrics
from engine.errors import RunStoreError
from engine.store import RUN_FILE, RunRecord, RunStore, read_run

NAN = math.nan
SORT_KEYS = ("created", "status", "benchmark", "method", "seed", "during", "final", "bwt")
"""Sort orders of the runs list, cycled with `s` (clicking a column header picks one)."""


def metrics_of(rec: RunRecord) -> dict[str, float]:
    """The stored metrics, or for a run still going the metrics of its matrix so far."""
    return live_metrics(rec) or rec.metrics


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


@dataclass(frozen=True)
class GroupStats:
    """A seed group (runs sharing RunRecord.group): who is in it and its metrics as mean ± std."""

    group: str
    runs: list[str]
    statuses: dict[str, int]
    benchmark: str
    method: str
    mean: dict[str, float]
    std: dict[str, float]

    @property
    def status_text(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))


def group_stats(records: list[RunRecord]) -> list[GroupStats]:
    """Mean ± std (population std, as `cltui show GROUP`) of every metric over each group's runs."""
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.group:
            groups.setdefault(r.group, []).append(r)
    out = []
    for g, recs in sorted(groups.items()):
        recs = sorted(recs, key=lambda r: (r.seed, r.run_id))
        ms = [metrics_of(r) for r in recs]
        keys = list(recs[0].metrics)
        mean, std = {}, {}
        for k in keys:
            v = np.array([m.get(k, NAN) for m in ms], dtype=float)
            ok = v[~np.isnan(v)]
            mean[k] = float(ok.mean()) if ok.size else NAN
            std[k] = float(ok.std()) if ok.size else NAN
        out.append(GroupStats(g, [r.run_id for r in recs], dict(Counter(r.live_status for r in recs)),
                              recs[0].benchmark, recs[0].method, mean, std))
    return out


@dataclass(frozen=True)
class Progress:
    """Where a run is: overall and within its current phase, with the step rate and time left."""

    done: int
    total: int
    phase: int
    n_phases: int
    in_phase: int
    phase_total: int
    phase_label: str
    rate: float
    eta: float


def phase_label(rec: RunRecord, phase: int) -> str:
    tasks = rec.phase_tasks[phase]
    return "+".join(rec.task_names[j] for j in tasks) if len(tasks) < 3 else "all"


def recent_rate(steps_per_sec: np.ndarray, window: int = 20) -> float:
    """Steps per second over the last `window` logged intervals: the harmonic mean (total steps over
    total time), so one slow interval (a curve evaluation) does not swing the ETA by minutes."""
    r = steps_per_sec[-window:]
    r = r[~np.isnan(r) & (r > 0)]
    return float(r.size / np.sum(1.0 / r)) if r.size else NAN


def progress(rec: RunRecord) -> Progress:
    done, total = rec.progress
    starts = np.cumsum([0, *rec.phase_steps])
    phase = int(min(max(np.searchsorted(starts, done, side="right") - 1, 0), len(rec.phase_steps) - 1))
    rate = recent_rate(rec.scalar("steps_per_sec")) if rec.scalars.shape[0] else NAN
    running = rec.live_status == "running"
    eta = (total - done) / rate if running and rate > 0 and not math.isnan(rate) else NAN
    return Progress(done, total, phase, len(rec.phase_steps), int(done - starts[phase]), rec.phase_steps[phase],
                    phase_label(rec, phase), rate, eta)


def fmt_seconds(s: float) -> str:
    if math.isnan(s):
        return "—"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


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
