"""The HDF5 run store: round trip, plain-h5py readability, a reader beside a live writer, crash recovery."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import h5py
import numpy as np

from engine import events as ev
from engine.store import RunStore, RunWriter, read_run

CONFIG = {"name": "unit", "seed": 3, "benchmark": {"name": "b"}, "method": {"name": "m"}, "model": {"name": "x"}}


def make(run_dir: Path) -> RunWriter:
    return RunWriter.create(run_dir, run_id=run_dir.name, config=CONFIG, environment={"device": "cpu"},
                            task_names=["a", "b"], phase_tasks=[[0], [1]], phase_steps=[5, 5], group="g1")


def test_round_trip(tmp_path: Path) -> None:
    w = make(tmp_path / "r1")
    w(ev.InitialEvaluated([50.0, 51.0]))
    for s in range(1, 4):
        w(ev.StepLogged(s, 0, {"loss": 1.0 / s, "task_loss": 1.0 / s, "penalty": 0.0, "train_acc": 60.0}, 10.0))
    w(ev.CurvePoint(3, [70.0, math.nan]))
    w(ev.PhaseEvaluated(0, [90.0, 40.0], 1.5))
    w(ev.PhaseEvaluated(1, [80.0, 95.0], 1.5))
    w(ev.RunFinished({"during": 92.5, "final": 87.5}, 3.0))
    w.close()
    r = read_run(tmp_path / "r1")
    assert r.status == "finished" and r.seed == 3 and r.group == "g1" and r.config == CONFIG
    assert np.array_equal(r.acc, [[90.0, 40.0], [80.0, 95.0]])
    assert r.metrics["final"] == 87.5 and math.isnan(r.metrics["bwt"])
    assert list(r.scalar_steps) == [1, 2, 3] and r.scalar("loss")[2] == 1.0 / 3
    assert r.curve_steps.tolist() == [3] and math.isnan(r.curve_acc[0, 1])
    assert r.progress == (10, 10) and r.acc_initial.tolist() == [50.0, 51.0]


def test_plain_h5py_reads_the_documented_layout(tmp_path: Path) -> None:
    w = make(tmp_path / "r1")
    w(ev.PhaseEvaluated(0, [90.0, 40.0], 1.0))
    w.close()
    with h5py.File(tmp_path / "r1" / "run.h5", "r") as f:
        assert f["status"][()].decode() == "running"
        assert f["acc"].shape == (2, 2) and f["acc"][0, 0] == 90.0
        assert f.attrs["method"] == "m"
        for name in ("config", "environment", "curves/step", "curves/acc", "scalars/step", "scalars/values", "metrics"):
            assert name in f


def _writer_process(run_dir: str, n: int) -> None:
    w = make(Path(run_dir))
    for s in range(1, n + 1):
        w(ev.StepLogged(s, 0, {"loss": float(s)}, 1.0))
        w.flush(force=True)
        time.sleep(0.01)
    w(ev.PhaseEvaluated(0, [1.0, 2.0], 1.0))
    w.close()


def test_second_process_reads_while_the_run_is_written(tmp_path: Path) -> None:
    run_dir = tmp_path / "live"
    proc = mp.get_context("spawn").Process(target=_writer_process, args=(str(run_dir), 150))
    proc.start()
    seen: list[int] = []
    deadline = time.time() + 60
    while proc.is_alive() and time.time() < deadline:
        if (run_dir / "run.h5").exists():
            try:
                r = read_run(run_dir)
            except Exception:  # only the very first open may race the file's creation
                continue
            n = r.scalar_steps.shape[0]
            assert r.scalar_steps.tolist() == list(range(1, n + 1))  # consistent prefix, never garbage
            seen.append(n)
        time.sleep(0.02)
    proc.join(30)
    assert proc.exitcode == 0
    assert len({s for s in seen if 0 < s < 150}) >= 2, f"never saw the run mid-way: {seen[:10]}"
    assert read_run(run_dir).scalar_steps.shape[0] == 150


def _killed_writer(run_dir: str) -> None:
    w = make(Path(run_dir))
    w(ev.StepLogged(1, 0, {"loss": 1.0}, 1.0))
    w.flush(force=True)
    os.kill(os.getpid(), signal.SIGKILL)


def test_reopen_after_writer_was_killed(tmp_path: Path) -> None:
    run_dir = tmp_path / "dead"
    proc = mp.get_context("spawn").Process(target=_killed_writer, args=(str(run_dir),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    r = read_run(run_dir)
    assert r.status == "running" and r.live_status == "interrupted"
    w = RunWriter.reopen(run_dir, 0, 1)  # recovers the file HDF5 still marks as open
    w(ev.StepLogged(2, 0, {"loss": 2.0}, 1.0))
    w.close()
    assert read_run(run_dir).scalar_steps.tolist() == [1, 2]


def test_store_finds_runs_by_prefix_and_group(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for name in ("20260101-000000-unit-s0", "20260101-000000-unit-s1"):
        make(tmp_path / name).close()
    assert store.find("20260101-000000-unit-s1").name.endswith("s1")
    assert len(store.group_members("g1")) == 2
    assert [r.run_id for r in store.records()] == store.run_ids()
