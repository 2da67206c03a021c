"""Real training processes SIGKILLed at random moments, resumed each time: the finished record must
equal an uninterrupted run's bit for bit (every series, the accuracy matrix, weights, optimizer,
method state and random streams). Kills land anywhere, checkpoint writes included: a checkpoint
every few steps, each write slowed by the test-only CLTUI_TEST_SLOW_CHECKPOINT, and one kill per
method aimed at a write (sent once `checkpoint.pt.tmp` exists). A kill landed inside a write when
the temp file is still there after the process died; the test counts those and requires them."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from engine import api
from engine.checkpoint import CHECKPOINT, SLOW_WRITE_ENV
from engine.executor import LocalExecutor
from engine.planning import PlannedRun
from engine.presets import load_preset
from engine.store import read_run
from tests.conftest import assert_same_final_state, assert_same_series

KILLS_PER_METHOD = 4
AIMED_KILL = 1
"""Which kill (0-based) of each method waits for a checkpoint write to begin."""
METHODS = ("finetune", "ewc", "si", "coresets", "hnet")


def config(method: str):  # noqa: ANN201
    return load_preset("demo", [
        f"method.name={method}", "model.hidden=[64]", "training.steps_per_task=300", "training.log_every=5",
        "analyses.curves.every=25", "analyses.curves.samples=100", "checkpoint.every_steps=7",
        "checkpoint.every_seconds=0", "threads=1",
    ])


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_sigkill_at_random_moments_then_resume_equals_the_uninterrupted_run(method: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(method)
    full = api.run(cfg, tmp_path / "full")
    assert full.status == "finished", full.error
    rng = random.Random(f"kill/{method}")
    monkeypatch.setenv(SLOW_WRITE_ENV, "0.1")  # in the engine processes only: each checkpoint write takes 0.1 s longer
    ex = LocalExecutor(tmp_path / "killed")
    handle = ex.submit(PlannedRun(cfg))
    kills, resumes, in_write = 0, 0, 0
    while True:
        assert handle.proc is not None
        tmp = handle.run_dir / (CHECKPOINT + ".tmp")
        if kills == AIMED_KILL:  # wait for a checkpoint write to be under way
            deadline = time.monotonic() + 30
            while not tmp.exists() and handle.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
        else:
            time.sleep(rng.uniform(0.2, 1.2))  # after the run announced itself: setup, steps or a checkpoint write
        if handle.proc.poll() is not None or kills == KILLS_PER_METHOD:
            break
        os.kill(handle.proc.pid, signal.SIGKILL)
        handle.proc.wait()
        if read_run(handle.run_dir).status == "finished":
            break  # the kill came just after the run's end
        kills += 1
        in_write += tmp.exists()  # the process died between opening the temp file and renaming it
        assert read_run(handle.run_dir).live_status == "interrupted"
        handle = ex.resume(handle.run_dir)
        resumes += 1
    assert handle.proc is not None and handle.proc.wait(timeout=600) in (0, -signal.SIGKILL)
    assert kills >= 2, f"only {kills} kills landed before the run finished; lengthen the run"
    assert in_write >= 1, f"none of {kills} kills landed inside a checkpoint write"
    rec = read_run(handle.run_dir)
    assert rec.status == "finished" and np.array_equal(rec.acc, full.acc, equal_nan=True)
    assert_same_series(full.run_dir, handle.run_dir)  # no gap, no duplicate, same values
    assert_same_final_state(full.run_dir, handle.run_dir)
    print(f"{method}: {kills} kills ({in_write} inside a checkpoint write), {resumes} resumes, every series equal")
