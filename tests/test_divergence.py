"""Divergence: a non-finite loss stops the run as 'diverged' at that step, with the exact first bad
step and the last finite loss in the record, no training or checkpoint after it; the CLI says so in
one line and exits non-zero; resuming before it reaches the same divergence; a diverged run is not resumed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cltui.cli import app
from engine import api
from engine import events as ev
from engine.divergence import DivergenceWatch
from engine.errors import RunStoreError
from engine.presentation import divergence_text, resume_of
from engine.checkpoint import checkpoint_step
from engine.store import read_run

from .conftest import assert_same_series, tiny

# EWC with a huge (finite) lambda: task 1 trains normally (no penalty yet); the first step of task 2
# (global step 21 of 20-step tasks) has an infinite penalty, so its loss is non-finite.
EWC_BLOWUP = ("method.ewc_lambda=1e300", "checkpoint.every_task=true")


def test_watch_finds_the_first_bad_step_and_the_last_finite_loss() -> None:
    import torch

    w = DivergenceWatch()
    for step, v in enumerate([3.0, 2.0, 1.5], start=1):
        w.add(step, torch.tensor(v))
    assert w.check() is None and (w.last_finite_step, w.last_finite_loss) == (3, 1.5)
    for step, v in enumerate([1.0, float("inf"), float("nan"), 0.5], start=4):
        w.add(step, torch.tensor(v))
    div = w.check()
    assert div == ev.RunDiverged(5, math.inf, 4, 1.0)
    # A window longer than FOLD (a huge log_every) is joined on the device and read back the same.
    for step in range(8, 8 + 2500):
        w.add(step, torch.tensor(float(step)))
    w.add(2508, torch.tensor(float("nan")))
    div = w.check()
    assert div is not None and (div.step, div.last_finite_step, div.last_finite_loss) == (2508, 2507, 2507.0)
    assert math.isnan(div.loss) and w.check() is None
    assert divergence_text({"step": 5, "loss": math.inf, "last_finite_step": 4, "last_finite_loss": 1.0}) \
        == "diverged at step 5: loss = inf; last finite loss 1 at step 4"


def first_nonfinite_loss_step(run_dir: Path) -> int:
    """The first non-finite row of the loss series of a run logged at every step."""
    loss = read_run(run_dir).series["loss"]
    bad = np.flatnonzero(~np.isfinite(loss.values))
    return int(loss.steps[bad[0]])


def test_diverged_run_stops_at_the_first_bad_step_found_at_the_next_log_step(tmp_path: Path) -> None:
    # Logged at every step, the loss series itself shows the first non-finite step.
    every = api.run(tiny(*EWC_BLOWUP, "method.name=ewc", "training.log_every=1"), tmp_path / "every")
    assert every.status == "diverged"
    bad = first_nonfinite_loss_step(every.run_dir)
    assert bad == 21
    # Logged every 6 steps: found at step 24, yet the record names step 21 and the loss before it.
    res = api.run(tiny(*EWC_BLOWUP, "method.name=ewc", "training.log_every=6"), tmp_path / "sparse")
    assert res.status == "diverged"
    rec = read_run(res.run_dir)
    assert rec.status == rec.live_status == "diverged"
    div = rec.divergence
    assert div["step"] == bad and math.isnan(div["loss"]) and div["last_finite_step"] == bad - 1
    assert div["last_finite_loss"] == read_run(every.run_dir).divergence["last_finite_loss"]
    assert math.isfinite(div["last_finite_loss"])
    # No training after it: progress and every series stop at the step where it was found.
    assert rec.progress[0] == 24
    assert all(s.steps.size == 0 or s.steps.max() <= 24 for s in rec.series.values())
    # Task 1 evaluated (itself and, with evaluation.upper = 'next', task 2), nothing after
    assert not np.isnan(rec.acc[0, :2]).any() and np.isnan(rec.acc[0, 2:]).all() and np.isnan(rec.acc[1:]).all()
    assert all(math.isnan(v) for v in rec.metrics.values())  # a diverged run has no final metrics
    assert checkpoint_step(res.run_dir) == 20  # the last checkpoint is the one before it
    assert not resume_of(rec).possible
    with pytest.raises(RunStoreError, match="diverged; resuming would diverge again"):
        api.resume(rec.run_id, tmp_path / "sparse")


def test_a_diverged_state_is_never_checkpointed(tmp_path: Path) -> None:
    # A step checkpoint due at step 22 finds the divergence first (checked before every checkpoint).
    res = api.run(tiny(*EWC_BLOWUP, "method.name=ewc", "training.log_every=10", "checkpoint.every_steps=22"),
                  tmp_path)
    rec = read_run(res.run_dir)
    assert res.status == "diverged" and rec.divergence["step"] == 21 and rec.progress[0] == 20
    assert checkpoint_step(res.run_dir) == 20


@pytest.mark.parametrize("stop", [13, 20])  # 20: the last finite loss comes from the checkpoint
def test_resumed_run_diverges_at_the_same_step_with_the_same_record(tmp_path: Path, stop: int) -> None:
    cfg = tiny(*EWC_BLOWUP, "method.name=ewc", "training.log_every=6")
    full = api.run(cfg, tmp_path / "full")
    part = api.run(cfg, tmp_path / "part", stop_at_step=stop)
    assert part.status == "interrupted"
    resumed = api.resume(part.run_id, tmp_path / "part")
    assert full.status == resumed.status == "diverged"
    a, b = read_run(full.run_dir).divergence, read_run(resumed.run_dir).divergence
    assert a.keys() == b.keys() and np.array_equal(list(a.values()), list(b.values()), equal_nan=True)
    assert a["step"] == 21 and a["last_finite_step"] == 20
    assert_same_series(full.run_dir, resumed.run_dir)


def test_cli_says_where_it_diverged_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    runner = CliRunner()
    rd = str(tmp_path)
    r = runner.invoke(app, ["run", "demo", "--runs-dir", rd, "--no-live", "--set", "training.optimizer=sgd",
                            "--set", "training.lr=1e6", "--set", "training.steps_per_task=20",
                            "--set", "training.log_every=5"],
                      catch_exceptions=False)
    assert r.exit_code == 4, r.output
    (run_id,) = [p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    div = read_run(tmp_path / run_id).divergence
    line = (f"run {run_id} diverged at step {int(div['step'])}: loss = nan; "
            f"last finite loss {div['last_finite_loss']:.4g} at step {int(div['last_finite_step'])}")
    assert line in r.output and "Traceback" not in r.output
    assert "diverged" in runner.invoke(app, ["runs", "--runs-dir", rd]).output
    shown = runner.invoke(app, ["show", run_id, "--runs-dir", rd]).output
    assert "[diverged]" in shown and line.removeprefix(f"run {run_id} ") in shown
    r = runner.invoke(app, ["resume", run_id, "--runs-dir", rd])
    assert r.exit_code != 0 and "diverged; resuming would diverge again" in r.output
