"""The HDF5 run store: one directory per run holding `run.h5` (and the checkpoint).

Layout of `run.h5`, format 2 (readable with plain h5py; documented in the README):

    attrs    format_version (2), run_id, created, preset, benchmark, method, model, seed, group,
             task_names (JSON), phase_tasks (JSON), phase_steps (JSON), metric_names (JSON),
             series_names (JSON: every declared series, in declaration order)
    config        JSON string: the resolved run config
    environment   JSON string: versions, git commit, device, host
    status        'running' | 'finished' | 'interrupted' | 'failed' | 'diverged'
    error         error text of a failed run ('' otherwise)
    pid           int: process writing the run (what `stop` signals; liveness comes from the lock)
    progress      int [2]: steps done, total steps
    times         float [2]: unix time of the last update, training seconds so far
    acc           float [P, T]: acc[i, j] = test accuracy (%) on task j after phase i; NaN = not yet
    acc_initial   float [T]: the untrained network on every task
    phase_seconds float [P]: wall time of each phase's training
    metrics       float [len(metric_names)]: during, final, average, bwt, fwt, forgetting
    divergence    float [4] (DIVERGENCE_FIELDS): step of the first non-finite loss, that loss, step
                  and value of the last finite loss before it (0/NaN: none); all NaN unless diverged
    series/<name>/step   int [N]: global step of each row
    series/<name>/value  dtype [N, *shape]: the rows
    series/<name> attrs  shape (JSON), dtype, cadence (step|log|curve|phase), columns (JSON list
                         naming the last axis, or null), description, source (loop|method|analysis/<name>)

Series are created from the declarations of the loop, the method and the enabled analyses
(engine/series.py) when the run starts; writing an undeclared one raises SeriesError. The loop's
training scalars are the series loss, task_loss, penalty, train_acc, grad_norm, lr, steps_per_sec
(cadence log); the forgetting curves are `series/curves` ([T] per row, NaN = task not seen yet).

Format 1 (read by engine/store_read.py, never written) had `curves/step`, `curves/acc`,
`scalars/step`, `scalars/values` [M, len(scalar_names)] and a `scalar_names` attribute instead.

Beside it, engine.runlock keeps `writer.lock` (held by the writing process: a 'running' run whose
lock is free is interrupted).

Every dataset exists from creation and only changes value or grows, which is what HDF5's
single-writer/multiple-reader (SWMR) mode requires: a second process opens the file with
`h5py.File(path, "r", libver="latest", swmr=True)` and reads it while it is being written.
The writer's row counts per series (`RunWriter.counts()`) go into each checkpoint, with a SHA-256
of each series' rows so far (`RunWriter.digests()`: per row, its int64 step then the value's bytes).
Resuming rebuilds the record to what that checkpoint proves (`RunWriter.reopen`): rows past the
checkpoint are dropped, the rows before it are kept only if they hash to its digest, and a record
missing or contradicting counted rows is refused, never filled with zeros.

A full disk or a read-only file system (engine/fsio.py): each flush first reserves the room HDF5 may
need, so a failed write leaves run.h5 as its last flush left it (readable, listed, resumable once
there is space) and raises StorageError with one line; the writer never touches the file again.
Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine import events as ev
from engine.errors import RunStoreError
from engine.fsio import StorageError, fault_point, reserve, trim_to_superblock, writing
from engine.metrics import METRIC_NAMES
from engine.series import SCALAR_NAMES, SeriesSet, SeriesSpec
from engine.store_dir import RUN_FILE, RunStore  # the runs directory: numpy/h5py-free for listings
from engine.store_read import DIVERGENCE_FIELDS, RunRecord, Series, _s, read_run, truncation
from engine.runlock import WriterLock
from engine.salvage import salvage
from engine.store_file import FORMAT_VERSION, fill_new, rewrite_clean, row_bytes

__all__ = ["DIVERGENCE_FIELDS", "FORMAT_VERSION", "RUN_FILE", "SCALAR_NAMES", "RunRecord", "RunStore", "RunWriter", "Series",
           "read_run"]

STATUSES = ("running", "finished", "interrupted", "failed", "diverged")


_ABANDONED: list[h5py.File] = []
"""Files a writer stopped touching after a storage error: kept referenced so that garbage collection
never closes them (closing flushes, into a full disk); on disk they stay as their last flush left them."""


def _forget_abandoned(path: Path) -> None:
    """Close this process's abandoned handle of `path` before it is reopened (an in-process resume
    after a storage error: HDF5 refuses a second open of a file it holds). What it flushes now is
    what the file missed; the resume's checks then judge the file as they would any other."""
    for f in [f for f in _ABANDONED if f.id.valid and Path(f.filename).resolve() == path.resolve()]:
        _ABANDONED.remove(f)
        try:
            f.close()
        except Exception:  # noqa: S110 - a failed close leaves the file as it was; the checks below decide
            pass


class RunWriter:
    """Owns one run's `run.h5` for writing, in SWMR mode; also an event sink."""

    def __init__(self, path: Path, file: h5py.File, lock: WriterLock | None = None) -> None:
        self.path = path
        self.f = file
        self.lock = lock  # engine.runlock: held from open to close, so readers can tell we are alive
        self._last_flush = 0.0
        self._progress: int | None = None  # steps done, written with the next flush (an HDF5 write costs ~0.2 ms)
        names = json.loads(_s(file.attrs["series_names"]))
        self.specs = SeriesSet(SeriesSpec.from_attrs(n, file[f"series/{n}"].attrs) for n in names)
        self._datasets = {n: (file[f"series/{n}/step"], file[f"series/{n}/value"]) for n in names}
        # Rows wait here until the next flush (at most half a second): one resize per series and
        # flush instead of one per row measured 8.6 → ~1 ms per logged step with 8 series.
        self._pending: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._hashes = {n: hashlib.sha256() for n in names}  # of the rows written so far (digests())
        # Bytes of one chunk of each series' two datasets: a flush may allocate one new chunk of each.
        self._chunk_bytes = {n: sum(int(np.prod(ds.chunks)) * ds.dtype.itemsize for ds in pair)
                             for n, pair in self._datasets.items()}
        self.broken: StorageError | None = None
        """Set when a write failed for lack of space or permission: the file is never written again."""

    # -- creation / reopening ------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, *, run_id: str, config: dict[str, Any], environment: dict[str, Any],
               task_names: list[str], phase_tasks: list[list[int]], phase_steps: list[int],
               series: Iterable[SeriesSpec], group: str = "") -> RunWriter:
        """A new run file with one (empty) dataset pair per declared series."""
        specs = SeriesSet(series)  # duplicate names fail here, before anything is written
        run_dir.mkdir(parents=True, exist_ok=True)  # usually claimed already (engine.runlock.claim_run_dir)
        lock = WriterLock.acquire(run_dir)  # before run.h5 exists, so no reader sees an unlocked 'running'
        path = run_dir / RUN_FILE
        try:
            with writing(path, "creating the run record"):
                fault_point("store", path)
                f = h5py.File(path, "w-", libver="latest")  # never overwrite another run's record
                try:
                    fill_new(f, run_id, config, environment, task_names, phase_tasks, phase_steps, specs, group)
                    f.flush()  # a complete record on disk before any later write can fail
                except BaseException:
                    f.close()
                    path.unlink(missing_ok=True)  # a half-made record is no record: the run never started
                    raise
        except BaseException:
            lock.release()
            raise
        return cls(path, f, lock)

    @classmethod
    def reopen(cls, run_dir: Path, counts: dict[str, int], digests: dict[str, str] | None = None,
               config: dict[str, Any] | None = None) -> RunWriter:
        """Reopen for resuming, rebuilding the record to what the checkpoint being resumed proves.

        Every series is truncated to its row count in the checkpoint (a series the checkpoint does not
        name had no rows then: emptied). The rows kept must hash to the checkpoint's digest (a
        checkpoint written before digests existed gives None: counts only). Fewer rows than counted,
        or rows that differ, cannot be rebuilt: RunStoreError, never zeros in their place. A cut-off
        file is rebuilt from what the checkpoint (`config`, counts, digests) proves: engine/salvage.py.
        """
        path = run_dir / RUN_FILE
        lock = WriterLock.acquire(run_dir)  # RunLockedError while another process writes it
        _forget_abandoned(path)
        cut = truncation(path)  # never train on a cut-off record as it is (HDF5 reads zeros or hangs)
        if cut:
            try:
                if config is None:
                    raise RunStoreError("no checkpoint config to prove it against")
                with writing(path, "rebuilding the damaged run record"):
                    salvage(path, counts, digests, config)
            except RunStoreError as e:
                lock.release()
                raise RunStoreError(f"{cut}; it cannot be rebuilt from its checkpoint: {e}") from None
        try:
            with writing(path, "reopening the run record to resume it"):
                try:
                    f = h5py.File(path, "r+", libver="latest")
                except OSError:
                    # A writer killed mid-run leaves HDF5's "open for writing" flag set; rebuild a clean copy.
                    rewrite_clean(path)
                    f = h5py.File(path, "r+", libver="latest")
        except BaseException:
            lock.release()
            raise
        try:
            return cls._rebuilt(path, f, lock, counts, digests)
        except BaseException:
            f.close()
            lock.release()
            raise

    @classmethod
    def _rebuilt(cls, path: Path, f: h5py.File, lock: WriterLock, counts: dict[str, int],
                 digests: dict[str, str] | None) -> RunWriter:
        """`reopen`'s checks and truncation (module doc: what a checkpoint proves)."""
        run_dir = path.parent
        version = int(f.attrs["format_version"])
        if version != FORMAT_VERSION:
            raise RunStoreError(f"run {run_dir} has run-file format {version}; "
                                f"only format {FORMAT_VERSION} runs can be resumed.")
        w = cls(path, f, lock)
        for name in w.specs.names():
            want = int(counts.get(name, 0))
            steps, vals = w._datasets[name]
            have = min(steps.shape[0], vals.shape[0])
            if have < want:  # the file lost rows the checkpoint counted: never continue with a gap
                raise RunStoreError(f"run {run_dir}: run.h5 holds fewer rows of series {name!r} ({have}) "
                                    f"than its checkpoint counted ({want}); the record is damaged and cannot be "
                                    "resumed exactly")
            h = hashlib.sha256(row_bytes(steps[:want], vals[:want]))
            if digests is not None and name in digests and h.hexdigest() != digests[name]:
                raise RunStoreError(f"run {run_dir}: run.h5's first {want} rows of series {name!r} differ from "
                                    "what its checkpoint recorded (checksum mismatch); the record is damaged and "
                                    "cannot be resumed exactly")
            w._hashes[name] = h
        with writing(path, "rebuilding the run record to its checkpoint"):
            fault_point("store", path)
            reserve(w._fd(), f.id.get_filesize(), 1 << 20)  # the writes below must not meet a full disk
            for name in w.specs.names():
                for ds in w._datasets[name]:  # rows past the checkpoint belong to an abandoned continuation
                    ds.resize(int(counts.get(name, 0)), axis=0)
            f["status"][()] = "running"
            f["error"][()] = ""
            f["pid"][()] = os.getpid()
            if "divergence" not in f:  # a record made before divergence was recorded (SWMR allows no new datasets later)
                f.create_dataset("divergence", data=np.full(len(DIVERGENCE_FIELDS), np.nan))
            f.swmr_mode = True
        return w

    def _fd(self) -> int:
        """The OS file descriptor HDF5 writes run.h5 through (its default 'sec2' driver)."""
        fd: int = self.f.id.get_vfd_handle()
        return fd

    # -- writing ------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Rows per series (stored in checkpoints so that resume can truncate to them). Writes the
        pending rows and flushes the file first, so every row counted is in run.h5 before the
        checkpoint that counts it exists (a kill -9 after the checkpoint loses none)."""
        self.flush(force=True)
        return {name: int(steps.shape[0]) for name, (steps, _) in self._datasets.items()}

    def digests(self) -> dict[str, str]:
        """SHA-256 of each series' rows so far, as stored (call right after counts(): none pending)."""
        return {name: h.hexdigest() for name, h in self._hashes.items()}

    def append(self, name: str, step: int, value: Any) -> None:
        """Add one row to series `name` (written at the next flush); undeclared names and wrong shapes
        raise SeriesError here, at once."""
        row = self.specs.get(name).row(value)
        self._pending.setdefault(name, []).append((int(step), row))

    def _write_pending(self) -> None:
        for name, rows in self._pending.items():
            steps, vals = self._datasets[name]
            n, k = steps.shape[0], len(rows)
            new_vals = np.stack([r for _, r in rows])
            new_steps = np.array([st for st, _ in rows], dtype="i8")
            vals.resize(n + k, axis=0)
            vals[n:] = new_vals
            steps.resize(n + k, axis=0)  # the steps last: a reader trims to the shorter of the two
            steps[n:] = new_steps
            self._hashes[name].update(row_bytes(new_steps, new_vals))
        self._pending.clear()

    def _headroom(self) -> int:
        """Bytes a flush of the pending rows may add to the file: the rows, one new chunk of each
        series written, and 64 KiB of metadata (object headers, chunk indexes, the superblock)."""
        need = 1 << 16
        for name, rows in self._pending.items():
            need += len(rows) * (8 + rows[0][1].nbytes) + self._chunk_bytes[name]
        return need

    def flush(self, force: bool = False, change: Callable[[], None] | None = None) -> None:
        """Write the pending rows and flush (at most every half second unless `force` or `change`).

        Room is reserved first, so a full disk fails here (StorageError) before HDF5 writes a byte.
        `change` runs after the reservation: variable-length strings (status, error) go to HDF5's
        global heap, and a string written without the flush that stores its heap would leave the
        record unreadable if that flush then failed."""
        if self.broken is not None:
            raise self.broken
        now = time.time()
        if force or change is not None or now - self._last_flush > 0.5:  # readers see new data within 0.5 s
            try:
                with writing(self.path, "flushing the run record"):
                    fault_point("store", self.path)
                    reserve(self._fd(), self.f.id.get_filesize(), self._headroom())
                    if change is not None:
                        change()
                    if self._progress is not None:
                        self.f["progress"][0] = self._progress
                        self._progress = None
                    self._write_pending()
                    self.f["times"][0] = now
                    self.f.flush()
            except StorageError as e:
                self.broken = e
                raise
            self._last_flush = now

    def __call__(self, event: Any) -> None:
        """Event sink: store what each event says."""
        if self.broken is not None:
            return  # the run is stopping on its storage error (engine.api); nothing more is written
        f = self.f
        if isinstance(event, ev.StepLogged):
            for name, value in event.values.items():
                self.append(name, event.step, value)
            self.append("steps_per_sec", event.step, event.steps_per_sec)
            self._progress = event.step
            self.flush()
        elif isinstance(event, ev.SeriesPoint):
            self.append(event.name, event.step, event.value)
            self.flush()
        elif isinstance(event, ev.InitialEvaluated):
            f["acc_initial"][:] = event.accuracy
            self.flush(force=True)
        elif isinstance(event, ev.PhaseEvaluated):
            f["acc"][event.phase] = event.accuracy
            f["phase_seconds"][event.phase] = event.seconds
            self.flush(force=True)
        elif isinstance(event, ev.RunFinished):
            f["metrics"][:] = [event.metrics.get(n, np.nan) for n in METRIC_NAMES]
            f["times"][1] = event.seconds
            self._progress = int(f["progress"][1])
            self.set_status("finished")
        elif isinstance(event, ev.RunInterrupted):
            self._progress = event.step  # where it stopped (progress otherwise moves at log steps)
            self.set_status("interrupted")
        elif isinstance(event, ev.RunFailed):
            self.set_status("failed", event.error)
        elif isinstance(event, ev.RunDiverged):
            f["divergence"][:] = [getattr(event, k) for k in DIVERGENCE_FIELDS]
            self.set_status("diverged")

    def set_elapsed(self, seconds: float) -> None:
        if self.broken is None:
            self.f["times"][1] = seconds

    def set_metrics(self, metrics: dict[str, float]) -> None:
        self.f["metrics"][:] = [metrics.get(n, np.nan) for n in METRIC_NAMES]

    def set_status(self, status: str, error: str | None = None) -> None:
        def change() -> None:
            if error is not None:
                self.f["error"][()] = error
            self.f["status"][()] = status

        self.flush(change=change)

    def stopped_by(self, error: StorageError) -> None:
        """The run stops on a storage error: record it as interrupted (resumable) with the error's
        line, if the record can still be written; else leave the file as its last flush left it
        (status 'running' with a free lock: readers show it interrupted)."""
        if self.broken is not None:
            return
        try:
            self.set_status("interrupted", str(error))
        except StorageError:
            pass  # self.broken is set: close() leaves the file alone

    def close(self) -> None:
        if self.f.id.valid:
            if self.broken is None:
                try:
                    self.flush(force=True)
                except StorageError:
                    pass  # self.broken is set now
            if self.broken is None:
                self.f.close()
                trim_to_superblock(self.path)  # the reserved room it did not use
            else:
                _ABANDONED.append(self.f)  # never closed here: closing flushes, into a full disk
        if self.lock is not None:
            self.lock.release()
