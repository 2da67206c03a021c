"""Sweeps: a preset × grid × seeds planned once (engine.planning), recorded as a group (engine.groups), and
driven through any executor (engine.executor's LocalExecutor, engine.executor_ray's RayExecutor).

`plan_sweep` returns the group id, the planned runs and their slots; `run_sweep` writes the group record,
starts the runs K at a time (engine.executor.run_all), records each started run as a member (unless the
executor's workers do it themselves, as Ray's do so that a retried task finds its run) and marks the group
finished or incomplete at the end. Torch-free.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.executor import Executor, Outcome, RunHandle, run_all
from engine.groups import create_group, end_group, group_dir, member_key, write_member
from engine.planning import PlannedRun, format_value, plan
from engine.runlock import WriterLock, slug


def sweep_id(name: str, n_points: int, n_seeds: int, stamp: str | None = None) -> str:
    """`<stamp>-<preset>-sweep<points>x<seeds>-<4 random hex>` (random part: two sweeps in one second)."""
    return f"{stamp or time.strftime('%Y%m%d-%H%M%S')}-{slug(name)}-sweep{n_points}x{n_seeds}-{secrets.token_hex(2)}"


def plan_sweep(preset: str, overrides: Sequence[str], seeds: int, grid: Mapping[str, Sequence[Any]],
               seed: int | None = None, device: str | None = None) -> tuple[str, list[PlannedRun], list[dict[str, Any]]]:
    """(group id, runs, slots): every grid point × seed of `preset`; each slot names its point and seed."""
    runs = plan(preset, overrides, seeds, grid, seed=seed, device=device)
    n_points = max(1, len(runs) // max(1, seeds))
    gid = sweep_id(runs[0].config.name, n_points, seeds)
    slots = []
    for r in runs:
        point = {k: next(o.partition("=")[2] for o in reversed(r.overrides) if o.partition("=")[0].strip() == k)
                 for k in grid}
        slots.append({"key": member_key(r.overrides, r.config.seed), "point": point, "seed": r.config.seed,
                      "seed_group": r.group})
    return gid, runs, slots


def run_sweep(executor: Executor, runs_dir: Path, group: str, preset: str, overrides: Sequence[str],
              grid: Mapping[str, Sequence[Any]], runs: Sequence[PlannedRun], slots: Sequence[Mapping[str, Any]],
              parallel: int, executor_name: str,
              on_start: Callable[[PlannedRun, RunHandle], None] | None = None,
              on_end: Callable[[Outcome], None] | None = None,
              halt: Callable[[], bool] | None = None) -> list[Outcome]:
    """Record the group, run every planned run (K at a time, the others go on after one fails), and mark
    the group's end. The executor may already write members (`writes_members`, e.g. Ray's workers)."""
    seeds = list(dict.fromkeys(r.config.seed for r in runs))
    create_group(runs_dir, group, preset, overrides, {k: [format_value(v) for v in vs] for k, vs in grid.items()},
                 seeds, slots, executor_name)
    members = group_dir(runs_dir, group) / "members"
    # Held while this driver starts runs: a reader tells a sweep still going from one whose driver died.
    lock = WriterLock.acquire(group_dir(runs_dir, group))
    self_recording = bool(getattr(executor, "writes_members", False))

    def started(run: PlannedRun, handle: RunHandle) -> None:
        if not self_recording:
            write_member(members / f"{member_key(run.overrides, run.config.seed)}.json", handle.run_id)
        if on_start is not None:
            on_start(run, handle)

    outcomes: list[Outcome] = []
    try:
        outcomes = run_all(executor, runs, parallel, on_start=started, on_end=on_end, keep_going=True, halt=halt)
    finally:
        done = len(outcomes) == len(runs) and all(o.status == "finished" for o in outcomes)
        end_group(runs_dir, group, "finished" if done else "incomplete")
        lock.release()
    return outcomes
