"""What a listing shows of each run (`RunSummary`), kept in a small index in the runs directory so that
listing many runs opens no run.h5 that did not change, and loads neither numpy nor h5py.

`RunStore.summaries()` (`cltui runs`) and the TUI's store poller (cltui.tui.records.RunPoller) go
through `RunIndex`: each run's summary is kept in `<runs dir>/.run-index.pkl`, keyed by run id with
the run file's stamp (mtime_ns, ctime_ns, size). A run whose stamp changed (it is being written, was
resumed, its status was set) or that is new is read again from its run.h5 (engine.store_read, which
imports h5py and numpy then, and only then); a run that is gone is dropped. The index is never the
source of truth: delete it, damage it, or leave the directory read-only, and everything is read from
the run files as before (a damaged or foreign index is ignored and rebuilt). Liveness is not cached:
`RunSummary.live_status` asks the writer's lock when it is read.

The index holds plain Python values only (str, int, float, tuples, dicts): loading it must not
import numpy (~60 ms), which a pickled array would. Format 1 held whole RunRecords with arrays and
is rebuilt. Pickle, because it is the fastest to load (1000 runs: ~15 ms); the index is only ever
read from the user's own runs directory, like the run files themselves. Torch-, numpy-, h5py-free.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import RunStoreError
from engine.run_header import RunHeader
from engine.store_dir import RUN_FILE

if TYPE_CHECKING:
    from engine.store_read import RunRecord

INDEX_FILE = ".run-index.pkl"
INDEX_VERSION = 2

Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class RunSummary(RunHeader):
    """What the run listings show of a stored run (`cltui runs`, the TUI's Runs screen), in plain values:
    the run's header (shared with engine.store_read.RunRecord) and what listings add to it."""

    metrics: dict[str, float]
    """The metrics to show (engine.presentation.metrics_of of the record): of the accuracy matrix so far
    while the run trains, the stored ones once it has ended."""
    overrides: tuple[str, ...]
    """What the run was started with beyond its preset (engine.provenance.overrides_of)."""


_STORED = tuple(f.name for f in fields(RunSummary) if f.name != "run_dir")
"""The fields an index entry holds (the run dir is the runs dir / run id: a moved runs dir keeps its index)."""


def summary_of(rec: RunRecord) -> RunSummary:
    """The summary of a full record (numpy is loaded by then: the record holds arrays)."""
    from engine.presentation import metrics_of
    from engine.provenance import overrides_of

    return RunSummary(
        run_id=rec.run_id, run_dir=rec.run_dir, created=rec.created, preset=rec.preset, benchmark=rec.benchmark,
        method=rec.method, model=rec.model, seed=int(rec.seed), group=rec.group, status=rec.status, error=rec.error,
        pid=int(rec.pid), progress=(int(rec.progress[0]), int(rec.progress[1])), updated=float(rec.updated),
        elapsed=float(rec.elapsed), metrics={str(k): float(v) for k, v in metrics_of(rec).items()},
        overrides=tuple(overrides_of(rec.environment)),
    )


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _load(path: Path) -> dict[str, Any]:
    """The entries of the index file by run id ({} when it is missing, damaged or of another format)."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except Exception:  # missing, damaged, written by another version: rebuild from the run files
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION or not isinstance(data.get("runs"), dict):
        return {}
    runs: dict[str, Any] = data["runs"]
    return runs


def _save(path: Path, runs: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            pickle.dump({"version": INDEX_VERSION, "runs": runs}, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # readers see the old index or the new one, never half of one
    except OSError:  # a read-only runs directory: no index, the run files still answer
        try:
            tmp.unlink()
        except OSError:
            pass


def _entry(summary: RunSummary, stamp: Stamp) -> dict[str, Any]:
    return {"stamp": stamp, "summary": {k: getattr(summary, k) for k in _STORED}}


def _summary(root: Path, rid: str, entry: Any) -> RunSummary | None:
    """The summary an index entry holds, or None when it is not one this version wrote."""
    try:
        return RunSummary(run_dir=root / rid, **entry["summary"])
    except (TypeError, KeyError):
        return None


class RunIndex:
    """The run index of one runs directory. One instance may be asked again and again (the TUI polls
    it every second): it keeps its entries in memory after the first read of the index file, and
    writes the file back when an ended run's entry changed or runs came or went (not for every step
    of a running run, whose entry is stale again by the next poll anyway)."""

    def __init__(self, root: Path, run_file: str = RUN_FILE) -> None:
        self.root = Path(root)
        self.path = self.root / INDEX_FILE
        self.run_file = run_file
        self._entries: dict[str, Any] | None = None
        self._summaries: dict[str, tuple[Stamp, RunSummary]] = {}

    def summaries(self, run_ids: list[str], skipped: list[str] | None = None,
                  partial: Callable[[list[RunSummary]], None] | None = None, every: float = 0.5) -> list[RunSummary]:
        """The summary of every readable run in `run_ids` (in that order), from the index where it is fresh.

        Reading many runs (a first listing without an index: ~8 ms a run) calls `partial` with the
        summaries so far every `every` seconds, so a view can show them while the rest are read; the
        runs are visited newest id first for that, since ids start with their start time. An exception
        from `partial` stops the listing (what was read is kept in the index file)."""
        entries: dict[str, Any] = _load(self.path) if self._entries is None else self._entries
        fresh: dict[str, Any] = {}
        out: list[RunSummary] = []
        dirty = False
        errors: list[str] = []
        shown = time.monotonic()
        try:
            for rid in reversed(run_ids):
                stamp = _stamp(self.root / rid / self.run_file)
                hit = entries.get(rid)
                if stamp is not None and isinstance(hit, dict) and hit.get("stamp") == stamp:
                    known = self._summaries.get(rid)
                    summary = known[1] if known is not None and known[0] == stamp else _summary(self.root, rid, hit)
                    if summary is not None:
                        out.append(summary)
                        fresh[rid] = hit
                        self._summaries[rid] = (stamp, summary)
                        continue
                from engine.store_read import read_run  # h5py and numpy: only when a run changed

                try:
                    summary = summary_of(read_run(self.root / rid, with_series=False))
                except RunStoreError as e:
                    errors.append(str(e))
                    continue  # never cached: an unreadable run is read (and reported) again next time
                out.append(summary)
                # The stamp from before the read: a write during the read makes the entry stale next time.
                fresh[rid] = _entry(summary, stamp) if stamp is not None else {"stamp": None}
                self._summaries[rid] = (stamp or (0, 0, 0), summary)
                dirty = dirty or summary.live_status != "running"  # a live run changes again by the next listing
                if partial is not None and time.monotonic() - shown >= every:
                    partial(out[::-1])
                    shown = time.monotonic()
        except BaseException:  # stopped by `partial` (the TUI quits): keep what was read for next time
            if dirty:
                _save(self.path, {**entries, **fresh})
            raise
        out.reverse()
        if skipped is not None:
            skipped.extend(reversed(errors))
        gone = set(entries) - set(fresh)
        for rid in gone:
            self._summaries.pop(rid, None)
        self._entries = fresh
        if dirty or gone:
            _save(self.path, fresh)
        return out
