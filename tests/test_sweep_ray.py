"""The Ray executor against a real local Ray instance: a 2 × 2 sweep (grid × seeds) where one worker is
SIGKILLed mid-run still ends with 4 finished runs, each equal (every series, matrix and final checkpoint)
to the same run done by the local executor. Skipped only where Ray is not installed (`pip install
"cltui[ray]"`; the dev extra installs it, so CI runs this)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.executor import LocalExecutor, RunHandle
from engine.groups import group_dir, load_group
from engine.planning import PlannedRun, parse_grid
from engine.store import read_run
from engine.sweep import plan_sweep, run_sweep
from tests.conftest import assert_same_final_state, assert_same_series

ray = pytest.importorskip("ray")

# Slow enough (2 × 600 steps) that the kill lands inside the second task (a 500-step window), after a checkpoint.
SWEEP = ["benchmark.num_tasks=2", "model.hidden=[16]", "training.steps_per_task=600", "training.batch_size=16",
         "analyses.curves.every=100", "analyses.curves.samples=20", "training.log_every=10", "threads=1",
         "checkpoint.every_steps=50", "checkpoint.every_seconds=0"]
GRID = ["training.lr=0.001,0.01"]


@pytest.fixture
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _kill_when_past(run_dir: Path, step: int, killed: list[int]) -> None:
    """SIGKILL the worker writing `run_dir` once its record shows `step` (no checkpoint, no clean exit)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            rec = read_run(run_dir, with_series=False)
        except Exception:  # being created
            time.sleep(0.05)
            continue
        if rec.progress[0] >= step and rec.live_status == "running":
            os.kill(rec.pid, signal.SIGKILL)
            killed.append(rec.progress[0])
            return
        if rec.live_status != "running" and rec.progress[0] > 0:
            return  # finished before we got there: the test's assertion on `killed` says so
        time.sleep(0.02)


def test_ray_sweep_survives_a_killed_worker_and_equals_local_runs(local_ray: None, tmp_path: Path) -> None:
    from engine.executor_ray import RayExecutor

    grid = parse_grid(GRID)
    gid, runs, slots = plan_sweep("demo", SWEEP, 2, grid)
    ray_dir = tmp_path / "ray"
    executor = RayExecutor(ray_dir, group_dir(ray_dir, gid) / "members")
    killed: list[int] = []
    threads: list[threading.Thread] = []

    def on_start(run: PlannedRun, handle: RunHandle) -> None:
        if not threads:  # the first run's worker dies mid-run
            t = threading.Thread(target=_kill_when_past, args=(handle.run_dir, 700, killed), daemon=True)
            t.start()
            threads.append(t)

    outcomes = run_sweep(executor, ray_dir, gid, "demo", SWEEP, grid, runs, slots, 2, "ray", on_start=on_start)
    threads[0].join()
    assert killed, "the first run ended before its worker could be killed"
    assert [o.status for o in outcomes] == ["finished"] * 4, [(o.status, o.error) for o in outcomes]
    g = load_group(ray_dir, gid)
    assert g.status == "finished" and g.counts == {"finished": 4}
    assert sorted(m.attempts for m in g.members) == [1, 1, 1, 2]  # the killed one was resumed once

    # The same four runs through the local executor, uninterrupted.
    local_dir = tmp_path / "local"
    lgid = gid + "-local"
    local = run_sweep(LocalExecutor(local_dir), local_dir, lgid, "demo", SWEEP, grid, runs, slots, 2, "local")
    assert [o.status for o in local] == ["finished"] * 4
    lg = load_group(local_dir, lgid)
    for a, b in zip(g.members, lg.members, strict=True):
        assert (a.point, a.seed) == (b.point, b.seed)
        assert a.record is not None and b.record is not None
        assert_same_series(a.record.run_dir, b.record.run_dir)
        assert_same_final_state(a.record.run_dir, b.record.run_dir)
