"""Making, copying and hashing `run.h5` files (the layout is documented in engine/store.py).

`fill_new` writes every dataset of a new format-2 record; `create_series` one declared series;
`rewrite_clean` copies a file a killed writer left flagged open; `row_bytes` is what a series'
digest covers. Torch-free.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine.metrics import METRIC_NAMES
from engine.series import SeriesSet, SeriesSpec
from engine.store_read import DIVERGENCE_FIELDS

FORMAT_VERSION = 2
_STR = h5py.string_dtype()


def plain(obj: Any) -> Any:
    """JSON fallback for numpy scalars and arrays in environment facts."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def row_bytes(steps: Any, values: Any) -> bytes:
    """The bytes a series' digest covers for these rows: per row its int64 step, then the value."""
    st = np.ascontiguousarray(np.asarray(steps, dtype="<i8")).view(np.uint8).reshape(-1, 8)
    n = st.shape[0]
    if n == 0:
        return b""
    vals = np.ascontiguousarray(np.asarray(values)).reshape(n, -1)
    return np.concatenate([st, vals.view(np.uint8)], axis=1).tobytes()


def fill_new(f: h5py.File, run_id: str, config: dict[str, Any], environment: dict[str, Any],
              task_names: list[str], phase_tasks: list[list[int]], phase_steps: list[int], specs: SeriesSet,
              group: str) -> None:
    """Every dataset and attribute of a new format-2 record, then SWMR mode."""
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
    f.create_dataset("environment", data=json.dumps(environment, indent=1, default=plain), dtype=_STR)
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
        create_series(f, spec)
    f.swmr_mode = True


def create_series(f: h5py.File, spec: SeriesSpec) -> None:
    """`series/<name>/{step,value}`, empty and growable, with the declaration as attributes."""
    g = f.create_group(f"series/{spec.name}")
    for k, v in spec.attrs().items():
        g.attrs[k] = v
    row = int(np.prod(spec.shape)) if spec.shape else 1
    rows = max(1, min(1024, (1 << 16) // row))  # chunks of ~64k values: small appends, bounded chunk size
    g.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
    g.create_dataset("value", shape=(0, *spec.shape), maxshape=(None, *spec.shape), dtype=spec.dtype,
                     chunks=(rows, *spec.shape))


def rewrite_clean(path: Path) -> None:
    """Copy every object of a file left open by a dead writer into a fresh file, then swap it in
    (a failure, e.g. a full disk, leaves the original untouched and no temp file behind)."""
    tmp = path.with_suffix(".h5.tmp")
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as src, h5py.File(tmp, "w", libver="latest") as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            for name in src:
                src.copy(src[name], dst, name=name)
            # Resizable datasets must stay resizable; h5py's copy keeps maxshape and chunks.
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
