"""What every view of a stored run has: `RunHeader`, the base of the full record (engine.store_read.
RunRecord) and of the listing's summary (engine.run_index.RunSummary), with its live status.

Plain values only, so listings never import numpy or h5py. Torch-, numpy-, h5py-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.runlock import liveness, lock_held


@dataclass(frozen=True)
class RunHeader:
    """A stored run's identity, status and progress (the run file's attributes and small datasets)."""

    run_id: str
    run_dir: Path
    created: str
    preset: str
    benchmark: str
    method: str
    model: str
    seed: int
    group: str
    status: str
    error: str
    pid: int
    progress: tuple[int, int]
    updated: float
    elapsed: float

    @property
    def live_status(self) -> str:
        """`status`, except that a 'running' run nobody writes reads 'interrupted' (engine.runlock:
        the writer's lock, else the heartbeat `updated`)."""
        if self.status != "running":
            return self.status
        return liveness(self.status, lock_held(self.run_dir), self.updated)
