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
The writer's row counts per series (`RunWriter.counts()`) go into each checkpoint, so a resumed
run truncates every series to what existed when its checkpoint was taken.
Torch-free.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine import events as ev
from engine.errors import RunStoreError, suggest
from engine.metrics import METRIC_NAMES
from engine.series import SCALAR_NAMES, SeriesSet, SeriesSpec
from engine.store_read import DIVERGENCE_FIELDS, RUN_FILE, RunRecord, Series, _s, read_run, truncation
from engine.runlock import WriterLock

__all__ = ["DIVERGENCE_FIELDS", "FORMAT_VERSION", "RUN_FILE", "SCALAR_NAMES", "RunRecord", "RunStore", "RunWriter", "Series",
           "read_run"]

FORMAT_VERSION = 2
STATUSES = ("running", "finished", "interrupted", "failed", "diverged")
_STR = h5py.string_dtype()


def _plain(obj: Any) -> Any:
    """JSON fallback for numpy scalars and arrays in environment facts."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


class RunWriter:
    """Owns one run's `run.h5` for writing, in SWMR mode; also an event sink."""

    def __init__(self, path: Path, file: h5py.File, lock: WriterLock | None = None) -> None:
        self.path = path
        self.f = file
        self.lock = lock  # engine.runlock: held from open to close, so readers can tell we are alive
        self._last_flush = 0.0
        names = json.loads(_s(file.attrs["series_names"]))
        self.specs = SeriesSet(SeriesSpec.from_attrs(n, file[f"series/{n}"].attrs) for n in names)
        self._datasets = {n: (file[f"series/{n}/step"], file[f"series/{n}/value"]) for n in names}
        # Rows wait here until the next flush (at most half a second): one resize per series and
        # flush instead of one per row measured 8.6 → ~1 ms per logged step with 8 series.
        self._pending: dict[str, list[tuple[int, np.ndarray]]] = {}

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
            f = h5py.File(path, "w-", libver="latest")  # never overwrite another run's record
        except BaseException:
            lock.release()
            raise
        t, p = len(task_names), len(phase_tasks)
        a = f.attrs
        a["format_version"] = FORMAT_VERSION
        a["run_id"] = run_id
        a["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        a["preset"] = config.get("name", "")
        a["benchmark"] = config["benchmark"]["name"]
        a["method"] = config["method"]["name"]
        a["model"] = config["model"]["name"]
        a["seed"] = int(config["seed"])
        a["group"] = group
        a["task_names"] = json.dumps(task_names)
        a["phase_tasks"] = json.dumps(phase_tasks)
        a["phase_steps"] = json.dumps(phase_steps)
        a["metric_names"] = json.dumps(list(METRIC_NAMES))
        a["series_names"] = json.dumps(specs.names())
        f.create_dataset("config", data=json.dumps(config, indent=1), dtype=_STR)
        f.create_dataset("environment", data=json.dumps(environment, indent=1, default=_plain), dtype=_STR)
        f.create_dataset("status", data="running", dtype=_STR)
        f.create_dataset("error", data="", dtype=_STR)
        f.create_dataset("pid", data=os.getpid(), dtype="i8")
        f.create_dataset("progress", data=np.array([0, sum(phase_steps)], dtype="i8"))
        f.create_dataset("times", data=np.array([time.time(), 0.0]))
        f.create_dataset("acc", data=np.full((p, t), np.nan))
        f.create_dataset("acc_initial", data=np.full(t, np.nan))
        f.create_dataset("phase_seconds", data=np.full(p, np.nan))
        f.create_dataset("metrics", data=np.full(len(METRIC_NAMES), np.nan))
        f.create_dataset("divergence", data=np.full(len(DIVERGENCE_FIELDS), np.nan))
        for spec in specs:
            _create_series(f, spec)
        f.swmr_mode = True
        return cls(path, f, lock)

    @classmethod
    def reopen(cls, run_dir: Path, counts: dict[str, int]) -> RunWriter:
        """Reopen for resuming; truncate every series to its row count in the checkpoint being resumed.

        A series the checkpoint does not name had no rows then, so it is emptied.
        """
        path = run_dir / RUN_FILE
        lock = WriterLock.acquire(run_dir)  # RunLockedError while another process writes it
        cut = truncation(path)  # never rebuild or train on a cut-off record (HDF5 reads zeros or hangs)
        if cut:
            lock.release()
            raise RunStoreError(cut)
        try:
            try:
                f = h5py.File(path, "r+", libver="latest")
            except OSError:
                # A writer killed mid-run leaves HDF5's "open for writing" flag set; rebuild a clean copy.
                _rewrite_clean(path)
                f = h5py.File(path, "r+", libver="latest")
        except BaseException:
            lock.release()
            raise
        version = int(f.attrs["format_version"])
        if version != FORMAT_VERSION:
            f.close()
            lock.release()
            raise RunStoreError(f"run {run_dir} has run-file format {version}; "
                                f"only format {FORMAT_VERSION} runs can be resumed.")
        w = cls(path, f, lock)
        for name in w.specs.names():
            want = int(counts.get(name, 0))
            short = {k: ds.shape[0] for k, ds in f[f"series/{name}"].items() if ds.shape[0] < want}
            if short:  # the file lost rows the checkpoint counted: never continue with a gap
                w.close()
                raise RunStoreError(f"run {run_dir}: run.h5 holds fewer rows of series {name!r} ({min(short.values())}) "
                                    f"than its checkpoint counted ({want}); the record is damaged and cannot be "
                                    "resumed exactly")
            for ds in f[f"series/{name}"].values():
                ds.resize(want, axis=0)
        f["status"][()] = "running"
        f["error"][()] = ""
        f["pid"][()] = os.getpid()
        if "divergence" not in f:  # a record made before divergence was recorded (SWMR allows no new datasets later)
            f.create_dataset("divergence", data=np.full(len(DIVERGENCE_FIELDS), np.nan))
        f.swmr_mode = True
        return w

    # -- writing ------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Rows per series (stored in checkpoints so that resume can truncate to them). Writes the
        pending rows and flushes the file first, so every row counted is in run.h5 before the
        checkpoint that counts it exists (a kill -9 after the checkpoint loses none)."""
        self._write_pending()
        self.flush(force=True)
        return {name: int(steps.shape[0]) for name, (steps, _) in self._datasets.items()}

    def append(self, name: str, step: int, value: Any) -> None:
        """Add one row to series `name` (written at the next flush); undeclared names and wrong shapes
        raise SeriesError here, at once."""
        row = self.specs.get(name).row(value)
        self._pending.setdefault(name, []).append((int(step), row))

    def _write_pending(self) -> None:
        for name, rows in self._pending.items():
            steps, vals = self._datasets[name]
            n, k = steps.shape[0], len(rows)
            vals.resize(n + k, axis=0)
            vals[n:] = np.stack([r for _, r in rows])
            steps.resize(n + k, axis=0)  # the steps last: a reader trims to the shorter of the two
            steps[n:] = [st for st, _ in rows]
        self._pending.clear()

    def flush(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_flush > 0.5:  # readers see new data within half a second
            self._write_pending()
            self.f["times"][0] = now
            self.f.flush()
            self._last_flush = now

    def __call__(self, event: Any) -> None:
        """Event sink: store what each event says."""
        f = self.f
        if isinstance(event, ev.StepLogged):
            for name, value in event.values.items():
                self.append(name, event.step, value)
            self.append("steps_per_sec", event.step, event.steps_per_sec)
            f["progress"][0] = event.step
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
            f["progress"][0] = f["progress"][1]
            self.set_status("finished")
        elif isinstance(event, ev.RunInterrupted):
            f["progress"][0] = event.step  # where it stopped (progress otherwise moves at log steps)
            self.set_status("interrupted")
        elif isinstance(event, ev.RunFailed):
            f["error"][()] = event.error
            self.set_status("failed")
        elif isinstance(event, ev.RunDiverged):
            f["divergence"][:] = [getattr(event, k) for k in DIVERGENCE_FIELDS]
            self.set_status("diverged")

    def set_elapsed(self, seconds: float) -> None:
        self.f["times"][1] = seconds

    def set_metrics(self, metrics: dict[str, float]) -> None:
        self.f["metrics"][:] = [metrics.get(n, np.nan) for n in METRIC_NAMES]

    def set_status(self, status: str) -> None:
        self.f["status"][()] = status
        self.flush(force=True)

    def close(self) -> None:
        if self.f.id.valid:
            self.flush(force=True)
            self.f.close()
        if self.lock is not None:
            self.lock.release()


def _create_series(f: h5py.File, spec: SeriesSpec) -> None:
    """`series/<name>/{step,value}`, empty and growable, with the declaration as attributes."""
    g = f.create_group(f"series/{spec.name}")
    for k, v in spec.attrs().items():
        g.attrs[k] = v
    row = int(np.prod(spec.shape)) if spec.shape else 1
    rows = max(1, min(1024, (1 << 16) // row))  # chunks of ~64k values: small appends, bounded chunk size
    g.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
    g.create_dataset("value", shape=(0, *spec.shape), maxshape=(None, *spec.shape), dtype=spec.dtype,
                     chunks=(rows, *spec.shape))


def _rewrite_clean(path: Path) -> None:
    """Copy every object of a file left open by a dead writer into a fresh file, then swap it in."""
    tmp = path.with_suffix(".h5.tmp")
    with h5py.File(path, "r", libver="latest", swmr=True) as src, h5py.File(tmp, "w", libver="latest") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for name in src:
            src.copy(src[name], dst, name=name)
        # Resizable datasets must stay resizable; h5py's copy keeps maxshape and chunks.
    os.replace(tmp, path)


class RunStore:
    """The runs directory: creates run directories and finds stored runs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
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
        out = []
        for rid in self.run_ids():
            try:
                with h5py.File(self.root / rid / RUN_FILE, "r", libver="latest", swmr=True) as f:
                    if "format_version" in f.attrs and _s(f.attrs["group"]) == group:  # ours, and in the group
                        out.append(self.root / rid)
            except Exception:  # any unreadable or foreign file (OSError, KeyError, ...) is not a member
                continue
        return out

    def records(self, with_series: bool = False, skipped: list[str] | None = None) -> list[RunRecord]:
        """Every readable run (unreadable ones are skipped, never touched); why each was skipped is
        appended to `skipped` when given. Summaries come through the run index (engine/run_index.py),
        which reads only the runs that changed since the last listing."""
        if not with_series:
            from engine.run_index import indexed_records

            return indexed_records(self.root, self.run_ids(), RUN_FILE, skipped)
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
