"""engine.executor: real tiny runs through the local executor (from a working directory holding a
bogus `engine/` package), structured errors before and after the run record exists, stop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.executor import (
    LocalExecutor,
    RunHandle,
    RunStartError,
    engine_command,
    exit_code,
    run_all,
)
from engine.planning import plan
from engine.presentation import error_summary, resume_of
from engine.series import TRAINING_SERIES
from engine.store import RunWriter, read_run

TINY = ["benchmark.num_tasks=2", "model.hidden=[16]", "training.steps_per_task=10", "training.batch_size=16",
        "analyses.curves.every=5", "analyses.curves.samples=20", "training.log_every=5"]


@pytest.fixture
def bogus_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory whose `engine/` package would win over the real one on a plain `python -m`."""
    cwd = tmp_path / "work"
    (cwd / "engine").mkdir(parents=True)
    (cwd / "engine" / "__init__.py").write_text("")
    (cwd / "engine" / "__main__.py").write_text('print(\'{"run_id": "bogus", "run_dir": "/nonexistent"}\')\n')
    monkeypatch.chdir(cwd)
    return cwd


def test_bogus_engine_in_cwd_shadows_a_plain_python_m(bogus_cwd: Path) -> None:
    """The control for the next test: without -P the user's folder really would be run."""
    out = subprocess.run([sys.executable, "-m", "engine"], capture_output=True, text=True, timeout=60, check=False)
    assert "bogus" in out.stdout
    if sys.version_info >= (3, 11):
        assert engine_command()[1] == "-P"


def test_seed_group_runs_in_parallel_through_the_local_executor(bogus_cwd: Path, tmp_path: Path) -> None:
    runs = plan("demo", TINY, 2)
    executor = LocalExecutor(tmp_path / "runs")
    started: list[RunHandle] = []
    outcomes = run_all(executor, runs, parallel=2, on_start=lambda run, h: started.append(h))
    assert [o.status for o in outcomes] == ["finished", "finished"], [o.error for o in outcomes]
    assert exit_code(outcomes) == 0
    ids = sorted(h.run_id for h in started)
    assert len(set(ids)) == 2 and all(re.fullmatch(rf"\d{{8}}-\d{{6}}-demo-s[01]-{runs[0].tag}", i) for i in ids)
    recs = [read_run(h.run_dir) for h in started]
    assert {r.group for r in recs} == {runs[0].group} and sorted(r.seed for r in recs) == [0, 1]
    assert all(r.environment["overrides"] == TINY for r in recs)
    assert all(r.live_status == "finished" and r.acc.shape == (2, 2) for r in recs)
    assert resume_of(recs[0]).text == "already finished; nothing to resume"


def test_error_before_the_run_exists_is_structured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLTUI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # offline: no mirror answers
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    (run,) = plan("split-mnist/finetune", ["training.steps_per_task=5"])
    with pytest.raises(RunStartError) as e:
        LocalExecutor(tmp_path / "runs").submit(run)
    assert e.value.kind == "DataError" and "MNIST files missing in" in str(e.value)
    assert "\n" not in str(e.value)
    assert list((tmp_path / "runs").iterdir()) == []  # the claimed directory was given back


def test_resume_of_a_run_being_written_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "busy"
    w = RunWriter.create(run_dir, run_id="busy", config={"name": "x", "seed": 0, "benchmark": {"name": "b"},
                                                         "method": {"name": "m"}, "model": {"name": "x"}},
                         environment={}, task_names=["a"], phase_tasks=[[0]], phase_steps=[5], series=TRAINING_SERIES)
    try:
        with pytest.raises(RunStartError) as e:
            LocalExecutor(tmp_path / "runs").resume(run_dir)
        assert e.value.kind == "RunLockedError" and "still running" in str(e.value)
        assert f"(pid {os.getpid()} on " in str(e.value)  # says who holds it
    finally:
        w.close()


def test_a_child_that_dies_without_its_error_line_names_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Fatal Python error: something broke' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(RunStartError) as e:
        LocalExecutor(tmp_path, python=str(fake)).resume(tmp_path / "x")
    assert e.value.kind == "EngineCrashed" and "exited with code 1" in str(e.value)
    log = Path(str(e.value).rsplit(" ", 1)[-1])
    assert "something broke" in log.read_text()
    log.unlink()


def test_failure_during_training_is_recorded_as_kind_and_message(tmp_path: Path) -> None:
    from engine import api
    from engine import events as ev

    def explode(event: object) -> None:
        if isinstance(event, ev.StepLogged) and event.step >= 5:
            raise RuntimeError("disk full\nsecond line")

    (run,) = plan("demo", TINY)
    res = api.run(run.config, tmp_path, sinks=[explode], overrides=run.overrides)
    assert res.status == "failed"
    rec = read_run(res.run_dir)
    assert rec.status == "failed" and rec.live_status == "failed"
    assert error_summary(rec.error) == "RuntimeError: disk full"
    assert "Traceback" in rec.error  # the full text stays in the record


def test_stop_asks_a_running_child_to_checkpoint(tmp_path: Path) -> None:
    (run,) = plan("demo", [*TINY, "training.steps_per_task=100000", "analyses.curves.enabled=false"])
    executor = LocalExecutor(tmp_path)
    h = executor.submit(run)
    try:
        deadline = time.time() + 120
        while read_run(h.run_dir, with_series=False).progress[0] < 10:
            assert time.time() < deadline
            time.sleep(0.1)
        assert executor.poll(h) is None
        executor.stop(RunHandle(h.run_id, h.run_dir))  # as a viewer that did not start it would
        assert h.proc is not None and h.proc.wait(120) == 3
        assert executor.poll(h) == "interrupted"
        info = resume_of(read_run(h.run_dir))
        assert info.possible and re.fullmatch(r"resumes from step \d+ \(last checkpoint\)", info.text)
    finally:
        if h.proc is not None and h.proc.poll() is None:
            h.proc.kill()
