"""Rebuilding a cut-off `run.h5` from what its checkpoint proves (issue 10 item 2), or refusing.

A record shorter than its HDF5 superblock says (a disk that filled up mid-flush before the store
reserved its room, an interrupted copy) reads zeros where bytes are missing, so nothing in it is
taken on trust. What a resumed run needs from it, and how each part is proven:

- the run's attributes (id, preset, task and phase layout, series declarations) and its config:
  the stored config must equal the checkpoint's, and the attributes must parse;
- each series' first `count` rows (the checkpoint's row count): their SHA-256 must equal the
  checkpoint's digest (engine.store: per row, the int64 step then the value's bytes);
- the environment (versions, host): informational; it must parse as JSON;
- everything else (status, progress, accuracy matrix, initial accuracy, phase times, metrics,
  divergence, pid) is rewritten from the checkpoint when the run resumes (engine.api.resume).

Rows past the checkpoint are dropped, as on every resume. If anything cannot be read or proven, or
the checkpoint predates digests, the record is refused with the reason, never rebuilt with zeros.
The rebuilt file replaces `run.h5`; the damaged one is kept beside it as `run.h5.damaged`.

HDF5 can hang on a damaged file (seen while copying a file cut in half), so the damaged file is
read in a child process (`python -m engine.salvage`) with a time limit. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py

from engine.errors import RunStoreError
from engine.series import SeriesSet, SeriesSpec
from engine.store_file import fill_new, row_bytes

TIMEOUT_S = 120.0
DAMAGED_SUFFIX = ".damaged"


def salvage(path: Path, counts: dict[str, int], digests: dict[str, str] | None, config: dict[str, Any]) -> None:
    """Replace the cut-off record `path` by one rebuilt from what the checkpoint proves; RunStoreError
    with the reason when it cannot be (module doc)."""
    if digests is None:
        raise RunStoreError("its checkpoint predates row digests, so no row of it can be proven")
    tmp = path.with_suffix(".h5.rebuilt")
    job = json.dumps({"counts": counts, "digests": digests, "config": config}, default=list)
    try:
        proc = subprocess.run([sys.executable, "-P", "-m", "engine.salvage", str(path), str(tmp)], input=job,
                              capture_output=True, text=True, timeout=TIMEOUT_S,
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    except subprocess.TimeoutExpired:
        tmp.unlink(missing_ok=True)
        raise RunStoreError(f"HDF5 did not finish reading it within {TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        lines = proc.stdout.strip().splitlines() or proc.stderr.strip().splitlines() or ["the rebuild crashed"]
        raise RunStoreError(lines[-1])
    os.replace(path, path.with_name(path.name + DAMAGED_SUFFIX))
    os.replace(tmp, path)


def rebuild(src: Path, dst: Path, counts: dict[str, int], digests: dict[str, str], config: dict[str, Any]) -> None:
    """Read what `src` proves and write it as a fresh record `dst` (runs in the child process)."""
    try:
        with h5py.File(src, "r", libver="latest", swmr=True) as f:
            attrs = dict(f.attrs)
            stored = json.loads(f["config"][()])
            if stored != json.loads(json.dumps(config, default=list)):
                raise RunStoreError("its stored config differs from its checkpoint's")
            environment = json.loads(f["environment"][()])
            names = json.loads(attrs["series_names"])
            specs = [SeriesSpec.from_attrs(n, f[f"series/{n}"].attrs) for n in names]
            rows = {}
            for name in names:
                want = int(counts.get(name, 0))
                steps, vals = f[f"series/{name}/step"][:want], f[f"series/{name}/value"][:want]
                if min(len(steps), len(vals)) < want:
                    raise RunStoreError(f"it holds fewer rows of series {name!r} than its checkpoint counted ({want})")
                if hashlib.sha256(row_bytes(steps, vals)).hexdigest() != digests.get(name):
                    raise RunStoreError(f"its rows of series {name!r} differ from what its checkpoint recorded")
                rows[name] = (steps, vals)
            task_names, phase_tasks = json.loads(attrs["task_names"]), json.loads(attrs["phase_tasks"])
            phase_steps = json.loads(attrs["phase_steps"])
    except RunStoreError:
        raise
    except Exception as e:  # HDF5 and JSON errors on the damaged bytes
        raise RunStoreError(f"it cannot be read ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    with h5py.File(dst, "w", libver="latest") as out:
        fill_new(out, str(attrs["run_id"]), stored, environment, task_names, phase_tasks, phase_steps,
                 SeriesSet(specs), str(attrs["group"]))
        for k, v in attrs.items():  # the originals (created, preset, ...), not fill_new's fresh ones
            out.attrs[k] = v
        for name, (steps, vals) in rows.items():
            ds_steps, ds_vals = out[f"series/{name}/step"], out[f"series/{name}/value"]
            ds_vals.resize(len(vals), axis=0)
            ds_vals[:] = vals
            ds_steps.resize(len(steps), axis=0)
            ds_steps[:] = steps


def main() -> int:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    job = json.loads(sys.stdin.read())
    try:
        rebuild(src, dst, job["counts"], job["digests"], job["config"])
    except RunStoreError as e:
        print(str(e), flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
