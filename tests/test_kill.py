"""Real training processes SIGKILLed at random moments, resumed each time: the finished record must
equal an uninterrupted run's bit for bit (every series, the accuracy matrix, weights, optimizer,
method state and random streams). Kills land anywhere, checkpoint writes included (a checkpoint
every few steps makes that likely)."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from engine import api
from engine.executor import LocalExecutor
from engine.planning import PlannedRun
from engine.presets import load_preset
from engine.store import read_run
from tests.conftest import assert_same_final_state, assert_same_series

KILLS_PER_METHOD = 4
METHODS = ("finetune", "ewc", "si", "coresets", "hnet")


def config(method: str):  # noqa: ANN201
    return load_preset("demo", [
        f"method.name={method}", "model.hidden=[64]", "training.steps_per_task=300", "training.log_every=5",
        "analyses.curves.every=25", "analyses.curves.samples=100", "checkpoint.every_steps=7",
        "checkpoint.every_seconds=0", "threads=1",
    ])


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_sigkill_at_random_moments_then_resume_equals_the_uninterrupted_run(method: str, tmp_path: Path) -> None:
    cfg = config(method)
    full = api.run(cfg, tmp_path / "full")
    assert full.status == "finished", full.error
    rng = random.Random(f"kill/{method}")
    ex = LocalExecutor(tmp_path / "killed")
    handle = ex.submit(PlannedRun(cfg))
    kills, resumes = 0, 0
    while True:
        assert handle.proc is not None
        time.sleep(rng.uniform(0.2, 1.2))  # after the run announced itself: setup, steps or a checkpoint write
        if handle.proc.poll() is not None or kills == KILLS_PER_METHOD:
            break
        os.kill(handle.proc.pid, signal.SIGKILL)
        handle.proc.wait()
        if read_run(handle.run_dir).status == "finished":
            break  # the kill came just after the run's end
        kills += 1
        assert read_run(handle.run_dir).live_status == "interrupted"
        handle = ex.resume(handle.run_dir)
        resumes += 1
    assert handle.proc is not None and handle.proc.wait(timeout=600) in (0, -signal.SIGKILL)
    assert kills >= 2, f"only {kills} kills landed before the run finished; lengthen the run"
    rec = read_run(handle.run_dir)
    assert rec.status == "finished" and np.array_equal(rec.acc, full.acc, equal_nan=True)
    assert_same_series(full.run_dir, handle.run_dir)  # no gap, no duplicate, same values
    assert_same_final_state(full.run_dir, handle.run_dir)
    print(f"{method}: {kills} kills, {resumes} resumes, every series equal")
