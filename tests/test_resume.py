"""Resuming from a checkpoint gives exactly the uninterrupted run's results (task boundary and mid-task)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import api
from engine.errors import RunStoreError
from engine.store import read_run
from tests.conftest import assert_same_final_state, assert_same_series, tiny


@pytest.mark.parametrize("method", ["finetune", "multitask", "scratch"])
@pytest.mark.parametrize("stop", [20, 27])  # 20 = end of task 1 (20 steps per task); 27 = mid-task
def test_resume_equals_uninterrupted(tmp_path: Path, method: str, stop: int) -> None:
    cfg = tiny(method=method)
    full = api.run(cfg, tmp_path / "a")
    part = api.run(cfg, tmp_path / "b", stop_at_step=stop)
    assert full.status == "finished" and part.status == "interrupted"
    assert read_run(part.run_dir).status == "interrupted"
    resumed = api.resume(part.run_id, tmp_path / "b")
    assert resumed.status == "finished"
    assert np.array_equal(resumed.acc, full.acc, equal_nan=True)
    assert resumed.metrics == full.metrics
    assert_same_final_state(full.run_dir, resumed.run_dir)  # weights, optimizer, method, streams too
    # Every stored series is the same too: no duplicate rows from the abandoned continuation.
    assert_same_series(full.run_dir, resumed.run_dir)
    assert read_run(resumed.run_dir).curve_steps.size > 0


def test_resume_twice_from_the_same_run(tmp_path: Path) -> None:
    cfg = tiny()
    full = api.run(cfg, tmp_path / "a")
    part = api.run(cfg, tmp_path / "b", stop_at_step=13)
    mid = api.resume(part.run_id, tmp_path / "b", stop_at_step=41)
    assert mid.status == "interrupted"
    end = api.resume(part.run_id, tmp_path / "b")
    assert np.array_equal(end.acc, full.acc, equal_nan=True)  # NaN: untested (evaluation.upper)


def test_resume_refuses_finished_and_unknown_runs(tmp_path: Path) -> None:
    done = api.run(tiny(steps=5), tmp_path)
    with pytest.raises(RunStoreError, match="already finished"):
        api.resume(done.run_id, tmp_path)
    with pytest.raises(RunStoreError, match="no run 'nope'"):
        api.resume("nope", tmp_path)
