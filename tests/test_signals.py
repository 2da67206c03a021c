"""Signals to real `cltui run` / `cltui resume` processes (`python -m cltui`, the console script's code):
SIGTERM or SIGINT to cltui alone or to its whole process group (a terminal's Ctrl-C) stops the
training child with a checkpoint, and cltui waits for it and says so; a second one kills the child at
once and says what it lost; every such run resumes to exactly the uninterrupted run's record.
`cltui watch` only detaches."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.planning import plan
from engine.checkpoint import checkpoint_step
from engine.runlock import lock_held
from engine.store import RunStore, read_run

from .conftest import assert_same_series

# Three tasks of 200 steps on the embedded data: long enough that a signal sent after step 60 lands
# well before the end on a busy machine, short enough to run whole for the reference.
SETS = ["benchmark.num_tasks=3", "model.hidden=[32]", "training.steps_per_task=200", "training.batch_size=32",
        "training.log_every=5", "checkpoint.every_steps=50", "analyses.curves.every=25", "analyses.curves.samples=50"]
ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1")


def cltui(*args: str) -> subprocess.Popen[str]:
    """`cltui ARGS` in a new session, so the test can signal its process group as a terminal would."""
    return subprocess.Popen([sys.executable, "-m", "cltui", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, start_new_session=True)


def start(runs_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return cltui("run", "demo", "--runs-dir", str(runs_dir), "--no-live", *[a for s in SETS for a in ("--set", s)],
                 *extra)


def wait_until_training(runs_dir: Path, proc: subprocess.Popen[str], n_runs: int = 1, step: int = 60) -> list[Path]:
    """The run directories once each has logged `step` steps (fails if cltui exits first)."""
    deadline = time.time() + 240
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the runs never got going"
        dirs = [runs_dir / i for i in RunStore(runs_dir).run_ids()]
        try:
            if len(dirs) == n_runs and all(read_run(d, with_series=False).progress[0] >= step for d in dirs):
                return dirs
        except Exception:  # noqa: BLE001 - a reader may race the writer's first flush
            pass
        time.sleep(0.05)


def wait_for_handler(proc: subprocess.Popen[str], sig: int, timeout: float = 120.0) -> None:
    """Until `proc` catches `sig` (Linux: the SigCgt mask in /proc/PID/status)."""
    deadline = time.time() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (sig - 1)):
            return
        assert time.time() < deadline, f"process never installed a handler for signal {sig}"
        time.sleep(0.05)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run of the same planned config, in this process."""
    from engine import api

    (run,) = plan("demo", SETS)
    res = api.run(run.config, tmp_path_factory.mktemp("reference"), overrides=run.overrides)
    assert res.status == "finished", res.error
    return res.run_dir


def resume_to_the_end(run_dir: Path, reference: Path) -> None:
    proc = cltui("resume", run_dir.name, "--runs-dir", str(run_dir.parent), "--no-live")
    code, err = finish(proc)
    assert code == 0, err
    assert read_run(run_dir).status == "finished"
    assert_same_series(reference, run_dir)


def assert_stopped_cleanly(run_dir: Path, err: str) -> None:
    """The child checkpointed where it stopped, marked the run interrupted and exited before cltui did."""
    rec = read_run(run_dir, with_series=False)
    assert lock_held(run_dir) is False  # the training process is gone
    assert rec.status == "interrupted"  # written by the child itself, not inferred from a dead lock
    n = rec.progress[0]
    assert checkpoint_step(run_dir) == n
    assert "stopping: each run writes a checkpoint; Ctrl-C again kills without waiting" in err
    assert f"{rec.run_id}: stopped at step {n}; checkpoint at step {n}; resume with: cltui resume {rec.run_id}" in err


def test_sigterm_to_cltui_stops_the_child_with_a_checkpoint_and_resumes_exactly(tmp_path: Path, reference: Path) -> None:
    proc = start(tmp_path)
    (run_dir,) = wait_until_training(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)  # cltui alone: the child hears of it only through cltui
    code, err = finish(proc)
    assert code == 3, err
    assert_stopped_cleanly(run_dir, err)
    n = read_run(run_dir, with_series=False).progress[0]
    assert n < 600
    # `cltui resume` behaves the same: Ctrl-C to its process group stops it with a checkpoint.
    proc = cltui("resume", run_dir.name, "--runs-dir", str(tmp_path), "--no-live")
    wait_until_training(tmp_path, proc, step=n + 60)
    os.killpg(proc.pid, signal.SIGINT)
    code, err = finish(proc)
    assert code == 3, err
    assert_stopped_cleanly(run_dir, err)
    assert n < read_run(run_dir, with_series=False).progress[0] < 600
    resume_to_the_end(run_dir, reference)


def test_ctrl_c_to_the_process_group_stops_the_child_and_resumes_exactly(tmp_path: Path, reference: Path) -> None:
    proc = start(tmp_path)
    (run_dir,) = wait_until_training(tmp_path, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: cltui and the child both get it
    code, err = finish(proc)
    assert code == 3, err
    assert_stopped_cleanly(run_dir, err)
    resume_to_the_end(run_dir, reference)


def test_second_ctrl_c_kills_without_waiting_says_what_was_lost_and_resumes_exactly(tmp_path: Path,
                                                                                     reference: Path) -> None:
    proc = start(tmp_path)
    (run_dir,) = wait_until_training(tmp_path, proc)
    os.killpg(proc.pid, signal.SIGINT)
    # Two signals sent at once merge into one pending signal: send the second once cltui has handled
    # the first, as a person pressing Ctrl-C twice would (the child is then still checkpointing/exiting).
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("stopping:"), first
    os.killpg(proc.pid, signal.SIGINT)
    code, err = finish(proc)
    err = first + err
    assert code == 3, err
    assert lock_held(run_dir) is False
    rec = read_run(run_dir, with_series=False)
    assert rec.live_status == "interrupted"
    assert "killed without waiting for a checkpoint" in err
    n, m = rec.progress[0], checkpoint_step(run_dir)
    assert m is not None and n < 600
    lost = f"{rec.run_id}: killed after step {n}: lost the steps since its checkpoint at step {m}; " \
           f"resume with: cltui resume {rec.run_id}"
    # The kill normally lands before the stop's own checkpoint; if the child was quicker, nothing was lost.
    kept = f"{rec.run_id}: killed after step {n}, with its checkpoint at step {m}: nothing lost; " \
           f"resume with: cltui resume {rec.run_id}"
    assert (m < n and lost in err) or (m == n and kept in err), err
    resume_to_the_end(run_dir, reference)


def test_a_signal_stops_every_parallel_run_and_starts_no_more(tmp_path: Path) -> None:
    proc = start(tmp_path, "--seeds", "3", "--parallel", "2", "--set", "training.steps_per_task=5000")
    dirs = wait_until_training(tmp_path, proc, n_runs=2, step=20)
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 3, err
    assert len(RunStore(tmp_path).run_ids()) == 2  # the third seed never started
    for d in dirs:
        assert_stopped_cleanly(d, err)


def test_watch_only_detaches(tmp_path: Path) -> None:
    # Long enough that the run cannot finish before the watcher detaches (5000 steps/task once did, in CI).
    run = start(tmp_path, "--set", "training.steps_per_task=200000")
    try:
        (run_dir,) = wait_until_training(tmp_path, run, step=20)
        watch = cltui("watch", run_dir.name, "--runs-dir", str(tmp_path))
        wait_for_handler(watch, signal.SIGTERM)  # a fixed sleep raced cltui's start on a loaded machine
        watch.send_signal(signal.SIGTERM)
        out, _ = watch.communicate(timeout=60)
        assert f"stopped watching; the run goes on. Again: cltui watch {run_dir.name}" in out
        assert run.poll() is None and lock_held(run_dir) is True
    finally:
        run.send_signal(signal.SIGTERM)
        code, err = finish(run)
    assert code == 3 and re.search(r"stopped at step \d+; checkpoint at step \d+", err), err
