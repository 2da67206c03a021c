"""The runs directory (`RunStore`): finding, listing and deleting stored runs, and the name of a run's file.

Kept apart from engine/store.py (the HDF5 writer) so that what lists runs never loads numpy or h5py:
`cltui runs`, `cltui --help` and the TUI's first screen list runs through `RunStore.summaries()`
(engine/run_index.py), which reads a run file only when it changed since the last listing. h5py and
engine.store_read are imported inside the methods that open run files. Torch-, numpy- and h5py-free
at import (tests/test_start.py checks it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import RunStoreError, suggest
from engine.fsio import StorageError, writing

if TYPE_CHECKING:
    from engine.run_index import RunSummary
    from engine.store_read import RunRecord

RUN_FILE = "run.h5"
"""The record of a run, in its directory (layout: engine/store.py)."""


class RunStore:
    """The runs directory: creates run directories and finds stored runs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def check_writable(self) -> None:
        try:
            with writing(self.root, "the runs directory"):
                self.root.mkdir(parents=True, exist_ok=True)
                probe = self.root / f".write-test-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
        except StorageError as e:
            raise StorageError(f"{e}; choose another with --runs-dir or CLTUI_RUNS_DIR", e.errno) from None
        except OSError as e:
            raise RunStoreError(f"runs directory {self.root} is not writable ({e.strerror}); "
                                "choose another with --runs-dir or CLTUI_RUNS_DIR.") from None

    def run_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / RUN_FILE).is_file())

    def find(self, ref: str) -> Path:
        """A run directory from its id, a unique prefix, or a path."""
        as_path = Path(ref)
        try:
            if (as_path / RUN_FILE).is_file():
                return as_path
        except (OSError, ValueError):  # a name too long for a path, or with a NUL byte: not a path
            pass
        ids = self.run_ids()
        if ref in ids:
            return self.root / ref
        hits = [i for i in ids if i.startswith(ref) or ref in i]
        if len(hits) == 1:
            return self.root / hits[0]
        if len(hits) > 1:
            raise RunStoreError(f"{ref!r} matches {len(hits)} runs ({', '.join(hits[:3])}, ...); give more of the id.")
        raise RunStoreError(f"no run {ref!r} in {self.root}.{suggest(ref, ids)} List runs with: cltui runs")

    def group_members(self, group: str) -> list[Path]:
        """The run directories of seed group `group`; files that are not cltui records are skipped."""
        import h5py

        from engine.store_read import _s

        out = []
        for rid in self.run_ids():
            try:
                with h5py.File(self.root / rid / RUN_FILE, "r", libver="latest", swmr=True) as f:
                    if "format_version" in f.attrs and _s(f.attrs["group"]) == group:  # ours, and in the group
                        out.append(self.root / rid)
            except Exception:  # any unreadable or foreign file (OSError, KeyError, ...) is not a member
                continue
        return out

    def summaries(self, skipped: list[str] | None = None) -> list[RunSummary]:
        """What a listing shows of every readable run (engine.run_index.RunSummary), from the run index:
        only runs whose file changed since the last listing are read. Unreadable runs are skipped,
        never touched; why each was skipped is appended to `skipped` when given."""
        from engine.run_index import RunIndex

        return RunIndex(self.root).summaries(self.run_ids(), skipped)

    def records(self, with_series: bool = False, skipped: list[str] | None = None) -> list[RunRecord]:
        """Every readable run's full record, read from its file (unreadable ones are skipped, never
        touched; why each was skipped is appended to `skipped` when given). For a listing, `summaries()`
        is much cheaper."""
        from engine.store_read import read_run

        out = []
        for rid in self.run_ids():
            try:
                out.append(read_run(self.root / rid, with_series=with_series))
            except RunStoreError as e:
                if skipped is not None:
                    skipped.append(str(e))
        return out

    def delete(self, run_dir: Path) -> None:
        if (Path(run_dir) / RUN_FILE).is_file():
            shutil.rmtree(run_dir)
