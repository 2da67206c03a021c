"""`cltui bench --ensemble 1,2,4,8`: throughput of many runs of one preset on one device. Torch-free here.

For each N, seeds seed..seed+N-1 of the preset (its own seed first) are trained two ways, each in fresh processes:
* "ensemble": one process, the N runs as a batched ensemble (engine/ensemble.py);
* "processes": N processes at once, one ordinary run each (what `cltui run --parallel N` does).
Throughput is runs × steps / s of wall time, from the moment the runs' records exist (data loaded,
models built) to the end of the last one, so start-up is left out of both alike. Also reported:
the CPU seconds of all those processes, the speed-up over N = 1, whether the ensemble's forwards
were batched (engine/ensemble.py probes exactness first), and whether each seed's accuracy matrix
from the ensemble equals the same seed's solo run bit for bit (it must on CPU).
The measuring happens in engine/bench/child.py (sides "ensemble" and "cltui").
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from engine.bench import BenchError


def _start(job: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "engine.bench.child", json.dumps(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        raise BenchError(f"bench of {what} failed: {lines[-1] if lines else proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def bench_ensemble(preset: str, sizes: list[int], steps: int | None = None, device: str | None = None,
                   data_dir: str | None = None, overrides: list[str] | None = None,
                   progress: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """One row per (N, mode) for `preset` (see the module doc)."""
    from engine.presets import preset_info

    preset_info(preset)  # a one-line ConfigError for an unknown preset
    base = {"preset": preset, "steps": steps, "device": device, "data_dir": data_dir,
            "overrides": list(overrides or [])}
    rows: list[dict[str, Any]] = []
    solo: dict[int, list[list[float]]] = {}  # seed offset -> accuracy matrix of its solo run
    for n in sizes:
        seeds = list(range(n))  # offsets from the preset's seed
        progress(f"{preset}: {n} run(s) as {n} process(es)")
        procs = [_start({**base, "side": "cltui", "seed_offset": s}) for s in seeds]
        runs = [_wait(p, f"{preset} seed {s}") for p, s in zip(procs, seeds)]
        for s, r in zip(seeds, runs):
            solo.setdefault(s, r["acc"])
        rows.append(_row(n, "processes", runs, None))
        progress(f"{preset}: {n} run(s) as one ensemble")
        ens = _wait(_start({**base, "side": "ensemble", "seed_offsets": seeds}), f"{preset} ensemble of {n}")
        exact = all(_same(a, solo[s]) for s, a in zip(seeds, ens["accs"]))
        rows.append(_row(n, "ensemble", [ens], exact, ens["batched"] if n > 1 else None, ens["note"]))
    one = {r["mode"]: r["runs_steps_per_s"] for r in rows if r["n"] == 1}
    for r in rows:
        r["speedup"] = r["runs_steps_per_s"] / one[r["mode"]] if one.get(r["mode"]) else None
    return rows


def _same(a: list[list[float]], b: list[list[float]]) -> bool:
    """Two accuracy matrices are equal exactly (NaN, an untested entry, equals NaN)."""
    return len(a) == len(b) and all(len(x) == len(y) and all(u == v or (math.isnan(u) and math.isnan(v))
                                                             for u, v in zip(x, y)) for x, y in zip(a, b))


def _row(n: int, mode: str, parts: list[dict[str, Any]], exact: bool | None, batched: bool | None = None,
         note: str = "") -> dict[str, Any]:
    start, end = min(p["t_start"] for p in parts), max(p["t_end"] for p in parts)
    steps = sum(p["steps"] for p in parts)
    return {"n": n, "mode": mode, "wall_s": end - start, "cpu_s": sum(p["cpu_s"] for p in parts),
            "runs_steps_per_s": steps / max(end - start, 1e-9), "peak_host_mib": sum(p["peak_host_mib"] for p in parts),
            "exact": exact, "batched": batched, "note": note}


def ensemble_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the throughput table."""
    header = ["N", "mode", "runs×steps/s", "speed-up vs N=1", "wall s", "CPU s", "peak MiB", "batched",
              "= solo runs"]
    yes = {True: "yes", False: "NO", None: "—"}
    out = [[str(r["n"]), r["mode"], f"{r['runs_steps_per_s']:.1f}",
            "—" if r["speedup"] is None else f"{r['speedup']:.2f}×", f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}",
            f"{r['peak_host_mib']:.0f}", yes[r["batched"]], yes[r["exact"]]] for r in rows]
    return header, out
