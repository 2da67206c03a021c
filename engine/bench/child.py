"""One bench measurement in a fresh process: `python -m engine.bench.child '<json job>'` → one JSON line.

A job is {"preset", "side", "steps", "device", "data_dir", "overrides"}; `side` is
* "cltui": a real run through engine.api.run (store, events, checkpoints, observers, evaluation)
  into a temporary runs directory. CPU and wall time are taken from the RunStarted event (after
  data, model and store are set up) to the run's return, and split by category: evaluation (the
  accuracy matrix, validation and curve points), consolidation (the method's end-of-phase work,
  e.g. EWC's Fisher), checkpoints, and logging (the run store's event handling).
* "bare": engine/bench/bare.py on the same benchmark and model, timed the same way.
* "syncs": a short cltui run of the first phase with engine.syncs counting host reads per step.

Each measurement runs in its own process so that its peak memory (ru_maxrss) is its own and no
side warms caches for the other. Category times are exclusive (a checkpoint's store flush counts
as checkpoint, not also as logging). Imports torch.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

CATEGORIES = ("evaluation", "consolidation", "checkpoints", "logging")


class Clock:
    """Exclusive CPU and wall seconds per category (nested categories are charged to the inner one)."""

    def __init__(self) -> None:
        self.cpu = dict.fromkeys(CATEGORIES, 0.0)
        self.wall = dict.fromkeys(CATEGORIES, 0.0)
        self._stack: list[tuple[str, float, float]] = []

    def wrap(self, category: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._push(category)
            try:
                return fn(*args, **kwargs)
            finally:
                self._pop()

        return timed

    def _push(self, category: str) -> None:
        c, w = time.process_time(), time.perf_counter()
        if self._stack:  # pause the outer category
            outer, c0, w0 = self._stack[-1]
            self.cpu[outer] += c - c0
            self.wall[outer] += w - w0
        self._stack.append((category, c, w))

    def _pop(self) -> None:
        c, w = time.process_time(), time.perf_counter()
        cat, c0, w0 = self._stack.pop()
        self.cpu[cat] += c - c0
        self.wall[cat] += w - w0
        if self._stack:  # resume the outer one from now
            outer, _, _ = self._stack[-1]
            self._stack[-1] = (outer, c, w)


@contextmanager
def _patched(targets: list[tuple[Any, str, Callable[..., Any]]]) -> Iterator[None]:
    """Replace class attributes for the block (this process is the bench's own; nothing else runs here)."""
    old = [(obj, name, obj.__dict__[name]) for obj, name, _ in targets]
    try:
        for obj, name, fn in targets:
            setattr(obj, name, fn)
        yield
    finally:
        for obj, name, fn in old:
            setattr(obj, name, fn)


def _config(job: dict[str, Any], seed_offset: int | None = None) -> Any:
    from dataclasses import replace

    from engine.presets import load_preset

    overrides = ["threads=1", *job.get("overrides", [])]  # one thread unless the bench is told otherwise
    if job.get("steps"):
        overrides.append(f"training.steps_per_task={int(job['steps'])}")
    cfg = load_preset(job["preset"], overrides, device=job.get("device") or None)
    offset = job.get("seed_offset", 0) if seed_offset is None else seed_offset
    return replace(cfg, seed=cfg.seed + offset) if offset else cfg


def _peaks(device: torch.device) -> dict[str, Any]:
    # ru_maxrss is KiB on Linux: the process's peak, so data loading and torch itself are in it.
    out: dict[str, Any] = {"peak_host_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    out["peak_device_mib"] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return out


def measure_cltui(job: dict[str, Any]) -> dict[str, Any]:
    from engine import api
    from engine import events as ev
    from engine.analyses.base import Observers
    from engine.loop import Trainer
    from engine.methods.base import Method
    from engine.store import RunWriter

    cfg = _config(job)
    clock = Clock()
    start: dict[str, float] = {}

    def sink(e: Any) -> None:
        if isinstance(e, ev.RunStarted):
            start["cpu"], start["wall"], start["t"] = time.process_time(), time.perf_counter(), time.time()

    from engine.registry import METHODS

    methods = [c for c in METHODS.get(cfg.method.name).impl.__mro__ if issubclass(c, Method)]
    targets = [(Trainer, "evaluate", clock.wrap("evaluation", Trainer.evaluate)),
               (Observers, "on_curve_point", clock.wrap("evaluation", Observers.on_curve_point)),
               (Trainer, "checkpoint", clock.wrap("checkpoints", Trainer.checkpoint)),
               (RunWriter, "__call__", clock.wrap("logging", RunWriter.__call__))]
    targets += [(c, "after_phase", clock.wrap("consolidation", c.__dict__["after_phase"]))
                for c in methods if "after_phase" in c.__dict__]
    with tempfile.TemporaryDirectory() as tmp, _patched(targets):
        result = api.run(cfg, Path(tmp), job.get("data_dir"), sinks=[sink])
        cpu, wall = time.process_time() - start["cpu"], time.perf_counter() - start["wall"]
    device = torch.device("cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    return {"side": "cltui", "status": result.status, "cpu_s": cpu, "wall_s": wall, "t_start": start["t"],
            "t_end": start["t"] + wall,
            "steps": int(result.acc.shape[0]) * cfg.training.steps_per_task,
            "cpu_by": clock.cpu, "wall_by": clock.wall, "acc": result.acc.tolist(), **_peaks(device)}


def measure_bare(job: dict[str, Any]) -> dict[str, Any]:
    from engine.api import build_trainer
    from engine.bench.bare import bare_run
    from engine.data.paths import resolve_data_dir

    cfg = _config(job)
    # The same data, model and initialisation as the cltui run (build_trainer seeds and builds them);
    # only its benchmark and model are used: the bare loop has its own everything else.
    trainer, device = build_trainer(cfg, resolve_data_dir(job.get("data_dir")), lambda e: None)
    out = bare_run(cfg, trainer.bench, trainer.model, device)
    return {"side": "bare", "status": "finished", **out, **_peaks(device)}


def measure_syncs(job: dict[str, Any]) -> dict[str, Any]:
    """Host reads per training step over (at most 200 steps of) the first phase."""
    from engine.api import build_trainer
    from engine.data.paths import resolve_data_dir
    from engine.syncs import syncs_per_step

    cfg = _config(job)
    trainer, device = build_trainer(cfg, resolve_data_dir(job.get("data_dir")), lambda e: None)
    _, diffs, counter = syncs_per_step(trainer, stop_at_step=min(200, trainer.plan[0].steps))
    log_every = cfg.training.log_every
    return {"side": "syncs", "steps": len(diffs), "syncs_per_step": sum(diffs) / max(1, len(diffs)),
            "steps_with_syncs": sum(1 for d in diffs if d), "log_every": log_every,
            "by_kind": counter.by_kind, "device": str(device)}


def measure_ensemble(job: dict[str, Any]) -> dict[str, Any]:
    """The seeds `job["seed_offsets"]` as one batched ensemble (engine/ensemble.py), timed from the
    moment every member's record exists to the end of the last member."""
    from engine import events as ev
    from engine.ensemble import EnsembleRun, run_ensemble

    cfgs = [_config(job, o) for o in job["seed_offsets"]]
    start: dict[str, float] = {}
    notes: list[str] = []

    def sink(e: Any) -> None:
        if isinstance(e, ev.RunStarted) and "t" not in start:
            start["cpu"], start["wall"], start["t"] = time.process_time(), time.perf_counter(), time.time()
            notes.extend(e.notes)

    with tempfile.TemporaryDirectory() as tmp:
        results = run_ensemble([EnsembleRun(c) for c in cfgs], Path(tmp), job.get("data_dir"), sinks=[sink])
        cpu, wall = time.process_time() - start["cpu"], time.perf_counter() - start["wall"]
        from engine.store import read_run

        batched = bool(read_run(results[0].run_dir, with_series=False).environment["ensemble"]["batched"])
    dev = cfgs[0].device
    device = torch.device("cuda" if dev == "cuda" or (dev == "auto" and torch.cuda.is_available()) else "cpu")
    bad = [r for r in results if r.status != "finished"]
    if bad:
        raise RuntimeError(f"ensemble member {bad[0].run_id} ended {bad[0].status}: {bad[0].error}")
    return {"side": "ensemble", "cpu_s": cpu, "wall_s": wall, "t_start": start["t"], "t_end": start["t"] + wall,
            "steps": sum(int(r.acc.shape[0]) * c.training.steps_per_task for r, c in zip(results, cfgs)),
            "accs": [r.acc.tolist() for r in results], "batched": batched, "note": "; ".join(notes),
            **_peaks(device)}


def main(argv: list[str]) -> None:
    job = json.loads(argv[1])
    torch.set_num_threads(1)
    fn = {"cltui": measure_cltui, "bare": measure_bare, "syncs": measure_syncs, "ensemble": measure_ensemble}[job["side"]]
    print(json.dumps(fn(job)))


if __name__ == "__main__":
    main(sys.argv)
