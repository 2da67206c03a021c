"""A small cache of run summaries in the runs directory, so listing many runs does not open every run.h5.

`RunStore.records()` (without series) goes through `indexed_records`: each run's summary record
(engine.store_read.RunRecord read with_series=False) is kept in `<runs dir>/.run-index.pkl`, keyed
by run id with the run file's stamp (mtime_ns, ctime_ns, size). A run whose stamp changed (it is
being written, was resumed, its status was set) or that is new is read again from its run.h5; a
run that is gone is dropped. The index is never the source of truth: delete it, damage it, or leave
the directory read-only, and everything is read from the run files as before (a damaged or
foreign index is ignored and rebuilt). Liveness is not cached: `RunRecord.live_status` asks the
writer's lock when it is read.

Pickle, because a record holds numpy arrays and dataclasses; the index is only ever read from the
user's own runs directory, like the run files themselves. Torch-free.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from engine.errors import RunStoreError
from engine.store_read import RunRecord, read_run

INDEX_FILE = ".run-index.pkl"
INDEX_VERSION = 1


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _load(path: Path) -> dict[str, Any]:
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


def indexed_records(root: Path, run_ids: list[str], run_file: str,
                    skipped: list[str] | None = None) -> list[RunRecord]:
    """The summary record of every run in `run_ids` (in that order), from the index where it is fresh."""
    index_path = root / INDEX_FILE
    cached = _load(index_path)
    fresh: dict[str, Any] = {}
    out: list[RunRecord] = []
    changed = False
    for rid in run_ids:
        run_dir = root / rid
        stamp = _stamp(run_dir / run_file)
        hit = cached.get(rid)
        if stamp is not None and isinstance(hit, dict) and hit.get("stamp") == stamp:
            rec = hit["record"]
            if isinstance(rec, RunRecord) and rec.run_dir == run_dir:
                out.append(rec)
                fresh[rid] = hit
                continue
        try:
            rec = read_run(run_dir, with_series=False)
        except RunStoreError as e:
            if skipped is not None:
                skipped.append(str(e))
            continue  # never cached: an unreadable run is read (and reported) again next time
        out.append(rec)
        # The stamp from before the read: a write during the read makes the entry stale next time.
        fresh[rid] = {"stamp": stamp, "record": rec}
        changed = True
    if changed or set(fresh) != set(cached):
        _save(index_path, fresh)
    return out
