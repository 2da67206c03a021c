"""`cltui bench`: cltui's training cost against a bare hand-written loop, per preset. Torch-free here.

For each preset, `repeats` rounds are run; in each round the bare loop (engine/bench/bare.py) and
a real cltui run (engine.api.run, store and all) each run once in a fresh process, alternating
which goes first, so a busy machine slows both alike. Reported per side: min and median CPU time
(the fair number on a shared machine), wall time and steps/s; the overhead ratio bare/cltui of the
CPU-time minima and medians (1.0 = no overhead; > 1 = cltui is cheaper); cltui's share of CPU time
in evaluation, consolidation (e.g. EWC's Fisher), checkpoints and logging; peak host (and device)
memory; and host syncs per training step from one extra short counting run (engine/syncs.py).

The measuring code runs in child processes (engine/bench/child.py), which import torch; this
module only starts them and formats the results, so the CLI can import it at no cost.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import CltuiError

DEFAULT_PRESETS = ("split-mnist/finetune", "split-mnist/ewc", "ssmnist/finetune-m1", "ssmnist/ewc-m1")
"""The presets the overhead goal is stated for (issue 14)."""
BARE_METHODS = ("finetune", "ewc")
"""Methods the bare loop (engine/bench/bare.py) implements; other presets are benched without one."""


class BenchError(CltuiError):
    """A bench child failed (its last error line is the message)."""


@dataclass
class PresetBench:
    """Every measurement of one preset."""

    preset: str
    cltui: list[dict[str, Any]] = field(default_factory=list)
    bare: list[dict[str, Any]] = field(default_factory=list)
    syncs: dict[str, Any] | None = None
    bare_note: str = ""

    def summary(self) -> dict[str, Any]:
        """The reported numbers (see the module doc); None where a side was not measured."""
        out: dict[str, Any] = {"preset": self.preset}
        for side in ("cltui", "bare"):
            rows = getattr(self, side)
            if not rows:
                out[side] = None
                continue
            cpu = [r["cpu_s"] for r in rows]
            wall = [r["wall_s"] for r in rows]
            steps = rows[0]["steps"]
            out[side] = {"cpu_min_s": min(cpu), "cpu_median_s": statistics.median(cpu), "wall_min_s": min(wall),
                         "wall_median_s": statistics.median(wall), "steps": steps,
                         "steps_per_cpu_s": steps / max(min(cpu), 1e-9),
                         "steps_per_s": steps / max(statistics.median(wall), 1e-9),
                         "peak_host_mib": max(r["peak_host_mib"] for r in rows),
                         "peak_device_mib": rows[0].get("peak_device_mib"), "cpu_all_s": cpu}
        c, b = out["cltui"], out["bare"]
        out["overhead_min"] = b["cpu_min_s"] / c["cpu_min_s"] if c and b else None
        out["overhead_median"] = b["cpu_median_s"] / c["cpu_median_s"] if c and b else None
        if c:
            best = min(self.cltui, key=lambda r: r["cpu_s"])
            out["cltui_share"] = {k: v / max(best["cpu_s"], 1e-9) for k, v in best["cpu_by"].items()}
        out["syncs_per_step"] = self.syncs["syncs_per_step"] if self.syncs else None
        out["syncs"] = self.syncs
        out["bare_note"] = self.bare_note
        return out


def _child(job: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "engine.bench.child", json.dumps(job)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise BenchError(f"bench of {job['preset']} ({job['side']}) failed: {lines[-1] if lines else proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def bench_presets(presets: list[str], steps: int | None = None, device: str | None = None,
                  data_dir: Path | None = None, repeats: int = 3, overrides: list[str] | None = None,
                  syncs: bool = True, progress: Callable[[str], None] = lambda s: None,
                  done: Callable[[list[PresetBench]], None] = lambda r: None) -> list[PresetBench]:
    """Measure each preset (see the module doc); `steps` overrides steps_per_task (None = the preset's).
    `done` gets the presets measured so far after each one (a long bench keeps what it has)."""
    from engine.presets import preset_info

    out = []
    for name in presets:
        info = preset_info(name)  # raises a one-line ConfigError for an unknown preset
        job = {"preset": name, "steps": steps, "device": device,
               "data_dir": str(data_dir) if data_dir else None, "overrides": list(overrides or [])}
        pb = PresetBench(name)
        bare_ok = info.method in BARE_METHODS
        if not bare_ok:
            pb.bare_note = f"no bare loop for method {info.method!r} (it has {', '.join(BARE_METHODS)})"
        for r in range(repeats):
            order = ["bare", "cltui"] if r % 2 == 0 else ["cltui", "bare"]
            for side in order:
                if side == "bare" and not bare_ok:
                    continue
                progress(f"{name}: {side} {r + 1}/{repeats}")
                getattr(pb, side).append(_child({**job, "side": side}))
        if syncs:
            progress(f"{name}: counting host syncs")
            pb.syncs = _child({**job, "side": "syncs"})
        out.append(pb)
        done(out)
    return out


def _f(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def table_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the bench table (one row per preset), from `PresetBench.summary()` dicts."""
    header = ["preset", "cltui CPU s (min/med)", "bare CPU s (min/med)", "bare/cltui (min/med)", "cltui steps/s",
              "eval %", "consol. %", "ckpt %", "log %", "peak MiB", "syncs/step"]
    rows = []
    for s in results:
        c, b, share = s["cltui"], s["bare"], s.get("cltui_share") or {}
        rows.append([
            s["preset"],
            f"{c['cpu_min_s']:.2f}/{c['cpu_median_s']:.2f}" if c else "—",
            f"{b['cpu_min_s']:.2f}/{b['cpu_median_s']:.2f}" if b else "—",
            f"{_f(s['overhead_min'], '.3f')}/{_f(s['overhead_median'], '.3f')}",
            _f(c["steps_per_s"] if c else None, ".1f"),
            *(_f(100 * share[k] if k in share else None, ".1f") for k in ("evaluation", "consolidation",
                                                                          "checkpoints", "logging")),
            _f(c["peak_host_mib"] if c else None, ".0f"),
            _f(s["syncs_per_step"], ".3f"),
        ])
    return header, rows


def write_json(path: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps({"meta": meta, "presets": results}, indent=1))
    except OSError as e:
        raise BenchError(f"cannot write {path}: {e.strerror}") from None
