"""Fixtures for the TUI tests: run files built with engine.store.RunWriter from synthetic event
streams (no torch), a fake executor that records what it was asked to start, and the app factory."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cltui.tui.app import create_app
from cltui.tui.services import Settings
from engine import events as ev
from engine.executor import LocalExecutor, RunHandle, RunStartError
from engine.metrics import summary
from engine.series import CURVES, TRAINING_SERIES, SeriesSpec
from engine.planning import PlannedRun
from engine.checkpoint import save_checkpoint
from engine.store import RunStore, RunWriter

DEAD_PID = 999_999_999  # above any pid_max: os.kill reports no such process
REFERENCE = {"during": 99.66, "final": 19.9, "source": "Ehret et al. 2021, table 2", "final_meaningful": True}


def acc_value(i: int, j: int, seed: int = 0, forget: float = 8.0) -> float:
    """Synthetic accuracy of task j after phase i: high when learned, decaying with age; chance before."""
    if j > i:
        return round(48.0 + 1.5 * j, 2)
    return round(99.0 - 0.5 * j - forget * (i - j) - 0.7 * seed, 2)


def config(method: str = "ewc", seed: int = 0, preset: str = "split-mnist/ewc", n_tasks: int = 5,
           steps: int = 100) -> dict[str, Any]:
    return {"name": preset, "seed": seed, "device": "cpu", "benchmark": {"name": "split_mnist"},
            "model": {"name": "mlp"}, "method": {"name": method},
            "training": {"steps_per_task": steps}, "reference": dict(REFERENCE)}


@dataclass
class SyntheticRun:
    """A run being written: feed it phases (or single events) while an app reads it."""

    writer: RunWriter
    n_tasks: int
    steps: int
    seed: int
    forget: float
    curve_every: int = 20
    log_every: int = 10
    phase: int = 0
    acc: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def run_dir(self) -> Path:
        return self.writer.path.parent

    def step_events(self, phase: int, upto: int | None = None) -> None:
        """StepLogged and curve-point events of one phase (up to step `upto` inside it)."""
        first = phase * self.steps
        last = self.steps if upto is None else upto
        for s in range(1, last + 1):
            g = first + s
            if s % self.log_every == 0:
                loss = 2.0 * math.exp(-s / 40) + 0.05 * phase
                self.writer(ev.StepLogged(g, phase, {"loss": loss, "task_loss": loss, "penalty": 0.0,
                                                     "train_acc": 100 - 50 * math.exp(-s / 30),
                                                     "grad_norm": 1.0, "lr": 1e-3}, steps_per_sec=250.0))
            if s % self.curve_every == 0:
                row = [acc_value(phase, j, self.seed, self.forget) * min(1.0, s / self.steps + 0.5) if j == phase
                       else (acc_value(phase, j, self.seed, self.forget) if j < phase else math.nan)
                       for j in range(self.n_tasks)]
                self.writer(ev.SeriesPoint(CURVES, g, row))

    def finish_phase(self, phase: int) -> None:
        row = [acc_value(phase, j, self.seed, self.forget) for j in range(self.n_tasks)]
        self.writer(ev.PhaseEvaluated(phase, row, seconds=1.5))
        self.acc[phase] = row
        # A real (minimal) checkpoint file at the task end, as the engine writes one: the UIs read its step.
        save_checkpoint(self.run_dir, {"loop": {"global_step": (phase + 1) * self.steps}})

    def run_phases(self, n: int) -> None:
        for _ in range(n):
            self.step_events(self.phase)
            self.finish_phase(self.phase)
            self.phase += 1
        self.writer.flush(force=True)

    def finish(self) -> None:
        self.writer(ev.RunFinished(summary(self.acc, [10.0] * self.n_tasks), seconds=12.0))
        self.writer.close()


def start_run(root: Path, run_id: str, *, n_tasks: int = 5, steps: int = 100, method: str = "ewc", seed: int = 0,
              group: str = "", forget: float = 8.0, created: str = "2025-01-01T00:00:00",
              preset: str = "split-mnist/ewc") -> SyntheticRun:
    w = RunWriter.create(root / run_id, run_id=run_id, config=config(method, seed, preset, n_tasks, steps),
                         environment={"device": "cpu", "device_name": "test"},
                         task_names=[f"T{k + 1}" for k in range(n_tasks)], phase_tasks=[[k] for k in range(n_tasks)],
                         phase_steps=[steps] * n_tasks, group=group,
                         series=[*TRAINING_SERIES, SeriesSpec(CURVES, (n_tasks,), cadence="curve")])
    w.f.attrs["created"] = created  # fixed, so orderings and snapshots do not depend on the clock
    w(ev.InitialEvaluated([10.0] * n_tasks))
    run = SyntheticRun(w, n_tasks, steps, seed, forget)
    run.acc = np.full((n_tasks, n_tasks), np.nan)
    return run


def finished_run(root: Path, run_id: str, **kw: Any) -> Path:
    run = start_run(root, run_id, **kw)
    run.run_phases(run.n_tasks)
    run.finish()
    return run.run_dir


def dead_run(root: Path, run_id: str, phases: int = 2, **kw: Any) -> Path:
    """A run whose file says 'running' but whose process is gone (killed mid-way)."""
    run = start_run(root, run_id, **kw)
    run.run_phases(phases)
    run.step_events(phases, upto=40)
    run.writer.f["pid"][()] = DEAD_PID
    run.writer.close()
    return run.run_dir


def failed_run(root: Path, run_id: str, error: str, **kw: Any) -> Path:
    run = start_run(root, run_id, **kw)
    run.run_phases(1)
    run.writer(ev.RunFailed(error))
    run.writer.close()
    return run.run_dir


@dataclass
class FakeExecutor:
    """An engine.executor.Executor that records what it was asked to start and writes a synthetic run
    file for it (no torch), or fails like the engine does before a run exists. `stop` is the real
    LocalExecutor's (SIGTERM to the writer of a locked run)."""

    root: Path
    submitted: list[PlannedRun] = field(default_factory=list)
    resumed: list[Path] = field(default_factory=list)
    stopped: list[Path] = field(default_factory=list)
    fail_with: str = ""
    polled: int = 0
    barrier: threading.Barrier | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, run: PlannedRun, stop_at_step: int | None = None) -> RunHandle:
        if self.fail_with:
            raise RunStartError(self.fail_with, "DeviceError")
        if self.barrier is not None:  # seeds of a group are submitted together: wait for all of them
            self.barrier.wait()
        with self.lock:  # (the TUI submits a group's seeds from several threads)
            self.submitted.append(run)
            name = f"launched-{len(self.submitted)}"
        cfg = run.config
        syn = start_run(self.root, name, seed=cfg.seed, method=cfg.method.name, preset=cfg.name, group=run.group)
        syn.run_phases(1)
        syn.writer.close()
        return RunHandle(syn.run_dir.name, syn.run_dir)

    def resume(self, run_dir: Path, stop_at_step: int | None = None) -> RunHandle:
        self.resumed.append(Path(run_dir))
        return RunHandle(Path(run_dir).name, Path(run_dir))

    def poll(self, handle: RunHandle) -> str | None:
        self.polled += 1
        return LocalExecutor(self.root).poll(handle)

    def stop(self, handle: RunHandle) -> None:
        self.stopped.append(handle.run_dir)
        LocalExecutor(self.root).stop(handle)


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture
def executor(runs_dir: Path) -> FakeExecutor:
    return FakeExecutor(runs_dir)


@pytest.fixture
def make_app(runs_dir: Path, executor: FakeExecutor):  # type: ignore[no-untyped-def]
    def make(**settings: Any):  # type: ignore[no-untyped-def]
        base: dict[str, Any] = {"runs_dir": runs_dir, "data_dir": "/data", "runs_poll": 0.1, "live_poll": 0.05}
        base.update(settings)
        return create_app(RunStore(runs_dir), executor, Settings(**base))

    return make


# -- reading the screen ------------------------------------------------------------------------
def screen_text(app: Any) -> str:
    """The current screen as plain text, exactly as the compositor would draw it."""
    import io

    from rich.console import Console

    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system="truecolor", legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


async def wait_for(pilot: Any, cond: Any, timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until `cond()` holds (polls and workers are asynchronous)."""
    import time

    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            text = screen_text(pilot.app)
            raise AssertionError(f"timed out waiting for {what or cond}; screen:\n{text}")
        await pilot.pause(0.05)


async def wait_text(pilot: Any, needle: str, timeout: float = 10.0) -> str:
    await wait_for(pilot, lambda: needle in screen_text(pilot.app), timeout, repr(needle))
    return screen_text(pilot.app)


TEST_PRESETS = {
    "split-mnist/ewc": """description = "EWC on Split-MNIST (test preset)"
[benchmark]
name = "split_mnist"
[method]
name = "ewc"
[training]
steps_per_task = 50
[reference]
during = 99.12
final = 97.5
source = "Test et al. 2020, table 1"
""",
    "split-mnist/finetune": """description = "Fine-tuning on Split-MNIST (test preset)"
[benchmark]
name = "split_mnist"
[method]
name = "finetune"
""",
    "permuted-mnist/si": """description = "SI on Permuted-MNIST (test preset)"
[benchmark]
name = "permuted_mnist"
[method]
name = "si"
""",
}


@pytest.fixture
def test_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fixed presets folder (the shipped ones change as presets are added)."""
    import engine.presets

    root = tmp_path / "presets"
    for name, text in TEST_PRESETS.items():
        path = root / f"{name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setattr(engine.presets, "presets_root", lambda: root)
    return root


# -- async tests without a plugin ----------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests in a fresh event loop (Pilot needs one; no pytest-asyncio required)."""
    import asyncio
    import inspect

    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**args))
    return True
