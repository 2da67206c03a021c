"""engine.runlock: unique run directories under races, the writer's lock as liveness, and resume
refusing a run that is being written."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from engine import events as ev
from engine.runlock import (
    HEARTBEAT_STALE_S,
    LOCK_FILE,
    RunLockedError,
    WriterLock,
    claim_run_dir,
    liveness,
    lock_held,
)
from engine.series import TRAINING_SERIES
from engine.store import RunWriter, read_run

CONFIG = {"name": "split-mnist/ewc", "seed": 0, "benchmark": {"name": "b"}, "method": {"name": "m"},
          "model": {"name": "x"}}
STAMP = "20260101-000000"  # every claimant in the same second


def make(run_dir: Path) -> RunWriter:
    return RunWriter.create(run_dir, run_id=run_dir.name, config=CONFIG, environment={}, task_names=["a"],
                            phase_tasks=[[0]], phase_steps=[5], series=TRAINING_SERIES)


def test_threads_claiming_the_same_preset_seed_and_second_get_distinct_ids(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    got: list[str] = []

    def claim() -> None:
        barrier.wait()
        run_id, run_dir = claim_run_dir(tmp_path, "split-mnist/ewc", 0, "3fa2", stamp=STAMP)
        make(run_dir).close()  # the claimed directory is usable by its writer
        got.append(run_id)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 8
    assert f"{STAMP}-split-mnist-ewc-s0-3fa2" in got
    assert all(g.startswith(f"{STAMP}-split-mnist-ewc-s0-3fa2") for g in got)


def _claim_in_process(root: str, start: float, out: mp.Queue) -> None:
    time.sleep(max(0.0, start - time.time()))
    out.put(claim_run_dir(Path(root), "split-mnist/ewc", 0, "3fa2", stamp=STAMP)[0])


def test_processes_claiming_at_once_get_distinct_ids(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start = time.time() + 3.0  # spawned interpreters take a moment; all claim at this instant
    procs = [ctx.Process(target=_claim_in_process, args=(str(tmp_path), start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    ids = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert len(set(ids)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ids)


def test_a_live_writer_reads_running_and_a_closed_one_interrupted(tmp_path: Path) -> None:
    w = make(tmp_path / "r")
    assert lock_held(tmp_path / "r") is True
    rec = read_run(tmp_path / "r")
    assert rec.status == "running" and rec.live_status == "running"
    w.close()  # closed without a final status, as a crashed writer leaves it
    assert lock_held(tmp_path / "r") is False
    assert read_run(tmp_path / "r").live_status == "interrupted"


def test_liveness_ignores_the_pid(tmp_path: Path) -> None:
    w = make(tmp_path / "r")
    w.f["pid"][()] = 999_999_999  # a pid that does not exist: the lock still says running
    w.flush(force=True)
    assert read_run(tmp_path / "r").live_status == "running"
    w.f["pid"][()] = os.getppid()  # a live process that is not the writer: after close, interrupted
    w.close()
    assert read_run(tmp_path / "r").live_status == "interrupted"


def _writer_then_sleep(run_dir: str) -> None:
    w = make(Path(run_dir))
    w(ev.StepLogged(1, 0, {"loss": 1.0}, 1.0))
    w.flush(force=True)
    time.sleep(120)


def test_sigkilled_writer_reads_interrupted_and_can_be_resumed(tmp_path: Path) -> None:
    run_dir = tmp_path / "k"
    proc = mp.get_context("spawn").Process(target=_writer_then_sleep, args=(str(run_dir),))
    proc.start()
    try:
        deadline = time.time() + 60
        while not (run_dir / "run.h5").exists() or read_run(run_dir).progress[0] < 1:
            assert time.time() < deadline, "writer never started"
            time.sleep(0.05)
        assert read_run(run_dir).live_status == "running"
        with pytest.raises(RunLockedError, match=f"is still running \\(pid {proc.pid} on "):
            RunWriter.reopen(run_dir, {"loss": 1})  # resume must not touch a run someone is writing
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        assert read_run(run_dir).live_status == "interrupted"
        w = RunWriter.reopen(run_dir, {"loss": 1})  # the kernel released the dead writer's lock
        assert read_run(run_dir).live_status == "running"
        w.close()
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()


def test_second_lock_in_the_same_process_is_refused_then_granted(tmp_path: Path) -> None:
    first = WriterLock.acquire(tmp_path)
    with pytest.raises(RunLockedError):
        WriterLock.acquire(tmp_path, wait=0.1)
    first.release()
    WriterLock.acquire(tmp_path, wait=0.1).release()


def test_without_a_lock_file_the_heartbeat_decides(tmp_path: Path) -> None:
    make(tmp_path / "r").close()
    (tmp_path / "r" / LOCK_FILE).unlink()  # e.g. a record written before locks existed
    assert lock_held(tmp_path / "r") is None
    now = 1_000_000.0
    assert liveness("running", None, now - 10, now) == "running"
    assert liveness("running", None, now - HEARTBEAT_STALE_S - 1, now) == "interrupted"
    assert liveness("running", True, 0.0, now) == "running"  # a held lock wins over an old heartbeat
    assert liveness("running", False, now, now) == "interrupted"
    assert liveness("finished", True, now, now) == "finished"

