"""Reading `run.h5` files of format 2 (declared series) and format 1 (fixed curves/scalars groups).

Both read into the same `RunRecord`: its generic `series` dict (name → steps, values, spec) holds
every stored series, and the fields the UI has always used (curve_steps/curve_acc, scalar_names,
scalar_steps, scalars) are filled from it. The layout itself is documented in engine/store.py.
Torch-free; works while another process writes the file (SWMR).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine.errors import RunStoreError
from engine.run_header import RunHeader
from engine.runlock import lock_held
from engine.series import CURVES, SCALAR_NAMES, TRAINING_SERIES, SeriesSpec
from engine.store_dir import RUN_FILE

DIVERGENCE_FIELDS = ("step", "loss", "last_finite_step", "last_finite_loss")
"""The columns of a run's `divergence` dataset (engine.events.RunDiverged's fields)."""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass(frozen=True)
class Series:
    """One stored series: the global step of each row, the rows, and its declaration."""

    spec: SeriesSpec
    steps: np.ndarray
    """int [N]"""
    values: np.ndarray
    """[N, *spec.shape]"""


@dataclass(frozen=True)
class RunRecord(RunHeader):
    """A snapshot of one stored run, read without cltui-specific objects: its header (RunHeader) and data."""

    config: dict[str, Any]
    environment: dict[str, Any]
    task_names: list[str]
    phase_tasks: list[list[int]]
    phase_steps: list[int]
    acc: np.ndarray
    acc_initial: np.ndarray
    phase_seconds: np.ndarray
    metrics: dict[str, float]
    curve_steps: np.ndarray
    curve_acc: np.ndarray
    scalar_names: list[str]
    scalar_steps: np.ndarray
    scalars: np.ndarray
    format_version: int = 2
    series_specs: dict[str, SeriesSpec] = field(default_factory=dict)
    """Every declared series, by name (also when read without series data)."""
    series: dict[str, Series] = field(default_factory=dict)
    """Every stored series with its rows (empty when read with with_series=False)."""
    divergence: dict[str, float] = field(default_factory=dict)
    """A diverged run's `divergence` dataset by field (step, loss, last_finite_step, last_finite_loss); else {}."""

    def scalar(self, name: str) -> np.ndarray:
        return self.scalars[:, self.scalar_names.index(name)]


def _read_series_v2(f: h5py.File, with_series: bool) -> tuple[dict[str, SeriesSpec], dict[str, Series]]:
    specs: dict[str, SeriesSpec] = {}
    data: dict[str, Series] = {}
    for name in json.loads(_s(f.attrs["series_names"])):
        g = f[f"series/{name}"]
        spec = SeriesSpec.from_attrs(name, g.attrs)
        specs[name] = spec
        if with_series:
            steps, values = g["step"][()], g["value"][()]
            n = min(steps.shape[0], values.shape[0])  # a reader may see one grown before the other
            data[name] = Series(spec, steps[:n], values[:n])
    return specs, data


def _read_series_v1(f: h5py.File, with_series: bool, n_tasks: int) -> tuple[dict[str, SeriesSpec], dict[str, Series]]:
    """Format 1 kept `curves/{step,acc}` and `scalars/{step,values}` (columns named by `scalar_names`)."""
    names = json.loads(_s(f.attrs["scalar_names"]))
    by_name = {s.name: s for s in TRAINING_SERIES}
    specs = {n: by_name.get(n, SeriesSpec(n, source="loop")) for n in names}
    specs[CURVES] = SeriesSpec(CURVES, (n_tasks,), cadence="curve", columns=tuple(json.loads(f.attrs["task_names"])),
                               description="accuracy (%) of every seen task on a fixed test subset", source="analysis/curves")
    data: dict[str, Series] = {}
    if with_series:
        steps, values = f["scalars/step"][()], f["scalars/values"][()]
        n = min(steps.shape[0], values.shape[0])
        for k, name in enumerate(names):
            data[name] = Series(specs[name], steps[:n], values[:n, k])
        steps, acc = f["curves/step"][()], f["curves/acc"][()]
        n = min(steps.shape[0], acc.shape[0])
        data[CURVES] = Series(specs[CURVES], steps[:n], acc[:n])
    return specs, data


def _scalar_table(specs: dict[str, SeriesSpec], data: dict[str, Series]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The loop's training scalars side by side, on the steps of the longest one (NaN where one has no row).

    The loop writes them all at the same log steps; aligning by step keeps a table consistent while a
    reader races the writer, or when a writer logged only some of them.
    """
    names = [n for n in SCALAR_NAMES if n in specs]
    cols = [data.get(n) for n in names]
    present = [c for c in cols if c is not None]
    if not present:
        return names, np.zeros(0, dtype="i8"), np.zeros((0, len(names)))
    steps = max(present, key=lambda c: c.steps.shape[0]).steps
    table = np.full((steps.shape[0], len(names)), np.nan)
    for k, c in enumerate(cols):
        if c is None or c.steps.shape[0] == 0:
            continue
        pos = np.searchsorted(steps, c.steps)
        ok = (pos < steps.shape[0]) & (steps[np.minimum(pos, steps.shape[0] - 1)] == c.steps)
        table[pos[ok], k] = c.values[ok]
    return names, steps, table


def read_run(run_dir: Path, with_series: bool = True) -> RunRecord:
    """Read a run's record (format 1 or 2); works while another process is writing it (SWMR).

    Anything that is not a readable cltui record (an empty or text file named run.h5, another
    program's HDF5 file, a damaged record) raises RunStoreError with one line naming the file, never
    another exception: listings skip it and show the runs beside it."""
    path = Path(run_dir) / RUN_FILE
    if not lock_held(Path(run_dir)):  # a live writer's file may be shorter than its superblock says
        cut = truncation(path)
        if cut:
            raise RunStoreError(cut)
    for attempt in range(5):
        try:
            with h5py.File(path, "r", libver="latest", swmr=True) as f:
                return _read(f, Path(run_dir), with_series)
        except RunStoreError:
            raise
        except Exception as e:  # h5py raises OSError, KeyError, ValueError, TypeError... for bad files
            # A reader can race the writer's very first flush: retry briefly, but only while a writer
            # holds the run (a foreign or damaged file would otherwise cost every listing 0.25 s).
            if attempt < 4 and lock_held(Path(run_dir)):
                time.sleep(0.05)
                continue
            raise RunStoreError(_unreadable(path, e)) from None
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def truncation(path: Path) -> str | None:
    """A line saying that `path` was cut off (shorter than the end of file its HDF5 superblock
    records), or None. HDF5 itself would read the missing part as zeros, or hang copying it.

    Superblock versions 2 and 3 (what libver='latest' writes): signature [8], version, size of
    offsets O, size of lengths, flags, then base address, extension address, end-of-file address
    (O bytes each, little-endian). Other versions are not checked."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(48)
        size = path.stat().st_size
    except OSError:
        return None  # the caller's own read reports it
    if head[:8] != b"\x89HDF\r\n\x1a\n" or len(head) < 12 or head[8] not in (2, 3):
        return None
    o = head[9]
    if o not in (4, 8) or len(head) < 12 + 3 * o:
        return None
    eof = int.from_bytes(head[12 + 2 * o: 12 + 3 * o], "little")
    if size < eof:
        return (f"{path} is damaged: cut off at {size:,} of its {eof:,} bytes (disk full or an incomplete copy?); "
                "it cannot be read or resumed as it is")
    return None


def _unreadable(path: Path, e: Exception) -> str:
    """One line on why `path` is not a readable run record."""
    try:
        size = path.stat().st_size
    except OSError as st:
        return f"cannot read run {path}: {st.strerror}"
    if size == 0:
        return f"{path} is empty (0 bytes), not a cltui run record"
    if not os.access(path, os.R_OK):
        return f"cannot read run {path}: permission denied"
    if isinstance(e, OSError):
        try:
            hdf5 = h5py.is_hdf5(path)
        except OSError:
            hdf5 = False
        if not hdf5:
            return f"{path} is not an HDF5 file, so not a cltui run record"
    if isinstance(e, KeyError):
        return f"{path} is an HDF5 file without cltui's run layout, not a cltui run record"
    detail = " ".join(str(e).split())[:200]
    return f"cannot read run record {path} ({type(e).__name__}: {detail}); it may be damaged"


def _read(f: h5py.File, run_dir: Path, with_series: bool) -> RunRecord:
    a = f.attrs
    version = int(a["format_version"])
    task_names = json.loads(_s(a["task_names"]))
    if version == 1:
        specs, data = _read_series_v1(f, with_series, len(task_names))
    elif version == 2:
        specs, data = _read_series_v2(f, with_series)
    else:
        raise RunStoreError(f"run {run_dir} has run-file format {version}; this cltui reads formats 1 and 2.")
    curves = data.get(CURVES)
    scalar_names, scalar_steps, scalars = _scalar_table(specs, data)
    return RunRecord(
        run_id=_s(a["run_id"]), run_dir=run_dir, created=_s(a["created"]), preset=_s(a["preset"]),
        benchmark=_s(a["benchmark"]), method=_s(a["method"]), model=_s(a["model"]), seed=int(a["seed"]),
        group=_s(a["group"]), status=_s(f["status"][()]), error=_s(f["error"][()]), pid=int(f["pid"][()]),
        config=json.loads(_s(f["config"][()])), environment=json.loads(_s(f["environment"][()])),
        task_names=task_names, phase_tasks=json.loads(_s(a["phase_tasks"])),
        phase_steps=json.loads(_s(a["phase_steps"])),
        progress=(int(f["progress"][0]), int(f["progress"][1])),
        updated=float(f["times"][0]), elapsed=float(f["times"][1]),
        acc=f["acc"][()], acc_initial=f["acc_initial"][()], phase_seconds=f["phase_seconds"][()],
        metrics=dict(zip(json.loads(_s(a["metric_names"])), map(float, f["metrics"][()]))),
        curve_steps=curves.steps if curves is not None else np.zeros(0, dtype="i8"),
        curve_acc=curves.values.astype(float) if curves is not None else np.zeros((0, len(task_names))),
        scalar_names=scalar_names, scalar_steps=scalar_steps, scalars=scalars,
        format_version=version, series_specs=specs, series=data, divergence=_divergence(f),
    )


def _divergence(f: h5py.File) -> dict[str, float]:
    """The `divergence` row by field name, {} when the run did not diverge (or predates the dataset)."""
    if "divergence" not in f:
        return {}
    row = f["divergence"][()]
    if np.isnan(row[0]):
        return {}
    return dict(zip(DIVERGENCE_FIELDS, map(float, row)))
