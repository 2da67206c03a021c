"""The HDF5 run store: one directory per run holding `run.h5` (and the checkpoint).

Layout of `run.h5` (readable with plain h5py; documented in the README):

    attrs    format_version, run_id, created, preset, benchmark, method, model, seed, group,
             task_names (JSON), phase_tasks (JSON), phase_steps (JSON), scalar_names (JSON),
             metric_names (JSON)
    config        JSON string: the resolved run config
    environment   JSON string: versions, git commit, device, host
    status        'running' | 'finished' | 'interrupted' | 'failed'
    error         error text of a failed run ('' otherwise)
    pid           int: process writing the run (what `stop` signals; liveness comes from the lock)
    progress      int [2]: steps done, total steps
    times         float [2]: unix time of the last update, training seconds so far
    acc           float [P, T]: acc[i, j] = test accuracy (%) on task j after phase i; NaN = not yet
    acc_initial   float [T]: the untrained network on every task
    phase_seconds float [P]: wall time of each phase's training
    metrics       float [len(metric_names)]: during, final, average, bwt, fwt, forgetting
    curves/step   int [N]; curves/acc float [N, T]: fixed-subset accuracy of seen tasks (NaN unseen)
    scalars/step  int [M]; scalars/values float [M, len(scalar_names)]

Beside it, engine.runlock keeps `writer.lock` (held by the writing process: a 'running' run whose
lock is free is interrupted) and `checkpoint.json` (the step of the last checkpoint).

Every dataset exists from creation and only changes value or grows, which is what HDF5's
single-writer/multiple-reader (SWMR) mode requires: a second process opens the file with
`h5py.File(path, "r", libver="latest", swmr=True)` and reads it while it is being written.
Torch-free.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine import events as ev
from engine.errors import RunStoreError, suggest
from engine.metrics import METRIC_NAMES
from engine.runlock import WriterLock, liveness, lock_held

FORMAT_VERSION = 1
RUN_FILE = "run.h5"
SCALAR_NAMES = ("loss", "task_loss", "penalty", "train_acc", "grad_norm", "lr", "steps_per_sec")
STATUSES = ("running", "finished", "interrupted", "failed")
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

    # -- creation / reopening ------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, *, run_id: str, config: dict[str, Any], environment: dict[str, Any],
               task_names: list[str], phase_tasks: list[list[int]], phase_steps: list[int],
               group: str = "") -> RunWriter:
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
        a["scalar_names"] = json.dumps(list(SCALAR_NAMES))
        a["metric_names"] = json.dumps(list(METRIC_NAMES))
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
        f.create_dataset("curves/step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(256,))
        f.create_dataset("curves/acc", shape=(0, t), maxshape=(None, t), dtype="f8", chunks=(256, t))
        k = len(SCALAR_NAMES)
        f.create_dataset("scalars/step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
        f.create_dataset("scalars/values", shape=(0, k), maxshape=(None, k), dtype="f8", chunks=(1024, k))
        f.swmr_mode = True
        return cls(path, f, lock)

    @classmethod
    def reopen(cls, run_dir: Path, n_curves: int, n_scalars: int) -> RunWriter:
        """Reopen for resuming; drop curve/scalar rows logged after the checkpoint being resumed."""
        path = run_dir / RUN_FILE
        lock = WriterLock.acquire(run_dir)  # RunLockedError while another process writes it
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
        for name, n in (("curves", n_curves), ("scalars", n_scalars)):
            for ds in f[name].values():
                ds.resize(min(n, ds.shape[0]), axis=0)
        f["status"][()] = "running"
        f["error"][()] = ""
        f["pid"][()] = os.getpid()
        f.swmr_mode = True
        return cls(path, f, lock)

    # -- writing ------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """Rows in curves and scalars (stored in checkpoints so resume can truncate to them)."""
        return int(self.f["curves/step"].shape[0]), int(self.f["scalars/step"].shape[0])

    def _append(self, group: str, step: int, row: list[float]) -> None:
        steps, vals = self.f[f"{group}/step"], self.f[f"{group}/{'acc' if group == 'curves' else 'values'}"]
        n = steps.shape[0]
        steps.resize(n + 1, axis=0)
        vals.resize(n + 1, axis=0)
        steps[n] = step
        vals[n] = row

    def flush(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_flush > 0.5:  # readers see new data within half a second
            self.f["times"][0] = now
            self.f.flush()
            self._last_flush = now

    def __call__(self, event: Any) -> None:
        """Event sink: store what each event says."""
        f = self.f
        if isinstance(event, ev.StepLogged):
            row = [float(event.values.get(n, np.nan)) for n in SCALAR_NAMES[:-1]] + [event.steps_per_sec]
            self._append("scalars", event.step, row)
            f["progress"][0] = event.step
            self.flush()
        elif isinstance(event, ev.CurvePoint):
            self._append("curves", event.step, event.accuracy)
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
            self.set_status("interrupted")
        elif isinstance(event, ev.RunFailed):
            f["error"][()] = event.error
            self.set_status("failed")

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


# -- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    """A snapshot of one stored run, read without cltui-specific objects."""

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
    config: dict[str, Any]
    environment: dict[str, Any]
    task_names: list[str]
    phase_tasks: list[list[int]]
    phase_steps: list[int]
    progress: tuple[int, int]
    updated: float
    elapsed: float
    acc: np.ndarray
    acc_initial: np.ndarray
    phase_seconds: np.ndarray
    metrics: dict[str, float]
    curve_steps: np.ndarray
    curve_acc: np.ndarray
    scalar_names: list[str]
    scalar_steps: np.ndarray
    scalars: np.ndarray

    @property
    def live_status(self) -> str:
        """`status`, except that a 'running' run nobody writes reads 'interrupted' (engine.runlock:
        the writer's lock, else the heartbeat `times[0]`)."""
        if self.status != "running":
            return self.status
        return liveness(self.status, lock_held(self.run_dir), self.updated)

    def scalar(self, name: str) -> np.ndarray:
        return self.scalars[:, self.scalar_names.index(name)]


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_run(run_dir: Path, with_series: bool = True) -> RunRecord:
    """Read a run's record; works while another process is writing it (SWMR)."""
    path = Path(run_dir) / RUN_FILE
    last: Exception | None = None
    for _ in range(5):  # a reader can race the writer's very first flush; retry briefly
        try:
            with h5py.File(path, "r", libver="latest", swmr=True) as f:
                a = f.attrs
                empty_t = np.zeros((0, len(json.loads(a["task_names"]))))
                return RunRecord(
                    run_id=_s(a["run_id"]), run_dir=Path(run_dir), created=_s(a["created"]), preset=_s(a["preset"]),
                    benchmark=_s(a["benchmark"]), method=_s(a["method"]), model=_s(a["model"]), seed=int(a["seed"]),
                    group=_s(a["group"]), status=_s(f["status"][()]), error=_s(f["error"][()]), pid=int(f["pid"][()]),
                    config=json.loads(_s(f["config"][()])), environment=json.loads(_s(f["environment"][()])),
                    task_names=json.loads(a["task_names"]), phase_tasks=json.loads(a["phase_tasks"]),
                    phase_steps=json.loads(a["phase_steps"]),
                    progress=(int(f["progress"][0]), int(f["progress"][1])),
                    updated=float(f["times"][0]), elapsed=float(f["times"][1]),
                    acc=f["acc"][()], acc_initial=f["acc_initial"][()], phase_seconds=f["phase_seconds"][()],
                    metrics=dict(zip(json.loads(a["metric_names"]), map(float, f["metrics"][()]))),
                    curve_steps=f["curves/step"][()] if with_series else np.zeros(0, int),
                    curve_acc=f["curves/acc"][()] if with_series else empty_t,
                    scalar_names=json.loads(a["scalar_names"]),
                    scalar_steps=f["scalars/step"][()] if with_series else np.zeros(0, int),
                    scalars=f["scalars/values"][()] if with_series else np.zeros((0, len(SCALAR_NAMES))),
                )
        except (OSError, KeyError) as e:
            last = e
            time.sleep(0.05)
    raise RunStoreError(f"cannot read run {run_dir}: {last}. Is it a cltui run directory?")


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
        if (as_path / RUN_FILE).is_file():
            return as_path
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
        out = []
        for rid in self.run_ids():
            try:
                with h5py.File(self.root / rid / RUN_FILE, "r", libver="latest", swmr=True) as f:
                    if _s(f.attrs["group"]) == group:
                        out.append(self.root / rid)
            except OSError:
                continue
        return out

    def records(self, with_series: bool = False) -> list[RunRecord]:
        """Every readable run (unreadable ones are skipped, never touched)."""
        out = []
        for rid in self.run_ids():
            try:
                out.append(read_run(self.root / rid, with_series=with_series))
            except RunStoreError:
                continue
        return out

    def delete(self, run_dir: Path) -> None:
        if (Path(run_dir) / RUN_FILE).is_file():
            shutil.rmtree(run_dir)
