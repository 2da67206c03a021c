"""Executors start planned runs somewhere and observe them; `run_all` drives a plan through one.

The `Executor` protocol is deliberately small, so another backend (Ray, a cluster queue) only has
to implement four calls:

- `submit(run)` starts a `PlannedRun` and returns a `RunHandle` once the run's record exists (it
  may block for seconds: the engine imports torch and loads data first). A failure before the record
  exists raises `RunStartError` carrying the engine's structured error (message and kind).
- `resume(run_dir)` does the same for continuing a stored run from its checkpoint.
- `poll(handle)` is None while the run goes on, else its final status ('finished', 'failed',
  'interrupted', 'diverged'), read from the run record, the one source of truth every backend shares.
- `stop(handle)` asks the run to write a checkpoint and stop (it then reads 'interrupted').

`LocalExecutor` also stops or kills every child it started at once (`stop_all`, `kill_all`): what
the CLI does on a first and a second Ctrl-C / SIGTERM, whether the signal reached only `cltui` or
its whole process group (the children get it too, and a stop request is idempotent).

`LocalExecutor` runs `python -P -m engine run|resume` as child processes (detached for the TUI, so
runs outlive it; attached for the CLI, so Ctrl-C reaches them). `-P` keeps an `engine/` folder in
the user's working directory from shadowing the installed engine. The child's stdout is a one-line
JSON channel (engine.__main__); nothing here parses stderr or a log.

Torch-free.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import CltuiError, RunStoreError
from engine.runlock import lock_held

if TYPE_CHECKING:  # engine.config loads every component's options (~30 ms): only submit needs it
    from engine.planning import PlannedRun

EXIT_STATUS = {0: "finished", 1: "failed", 3: "interrupted", 4: "diverged"}
STATUS_EXIT = {"finished": 0, "failed": 1, "interrupted": 3, "diverged": 4, "not started": 2}
"""Exit codes of `python -m engine` and of `cltui run`/`resume` for each final status."""


class RunStartError(CltuiError):
    """A run stopped before its record existed; `kind` is the engine's error class (DataError, ...)."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class RunHandle:
    """A started run: its id and directory, plus whatever the executor needs to reach it."""

    run_id: str
    run_dir: Path
    proc: subprocess.Popen[str] | None = field(default=None, repr=False, compare=False)
    notes: tuple[str, ...] = ()
    """What the engine said a person should know about this start (e.g. a damaged checkpoint skipped)."""
    error: str = ""
    """Set by `poll` once the run ended, when the engine said why on its channel (a run stopped by a
    full disk or a read-only file system, whose record may not hold the line)."""


class Executor(Protocol):
    """Starts and observes runs (see the module docstring for each call's contract)."""

    def submit(self, run: PlannedRun, stop_at_step: int | None = None) -> RunHandle: ...

    def resume(self, run_dir: Path, stop_at_step: int | None = None) -> RunHandle: ...

    def poll(self, handle: RunHandle) -> str | None: ...

    def stop(self, handle: RunHandle) -> None: ...


def engine_command(python: str = sys.executable) -> list[str]:
    """The interpreter and flags that start the engine without the working directory on sys.path."""
    if sys.version_info >= (3, 11):
        return [python, "-P", "-m", "engine"]
    # 3.10 has no -P: drop sys.path[0] (the working directory for -c) before importing the engine.
    code = ("import runpy, sys; del sys.path[0]; sys.argv[0] = 'engine'; "
            "runpy.run_module('engine', run_name='__main__', alter_sys=True)")
    return [python, "-c", code]


def record_status(run_dir: Path) -> str | None:
    """The run's status from its record (lock-aware); None while it is running or unreadable."""
    from engine.store_read import read_run  # h5py: not at import (the TUI imports this module to start)

    try:
        st = read_run(run_dir, with_series=False).live_status
    except RunStoreError:
        return None
    return None if st == "running" else st


class LocalExecutor:
    """Runs each planned run in a `python -m engine` child process on this machine."""

    def __init__(self, runs_dir: Path, data_dir: str | Path | None = None, detach: bool = False,
                 python: str = sys.executable) -> None:
        self.runs_dir = Path(runs_dir).absolute()  # the child may resolve paths from elsewhere
        self.data_dir = str(Path(data_dir).absolute()) if data_dir else None
        self.detach = detach
        self.python = python
        self._children: list[subprocess.Popen[str]] = []

    # -- starting ------------------------------------------------------------------------------
    def submit(self, run: PlannedRun, stop_at_step: int | None = None) -> RunHandle:
        from engine.config import config_to_dict

        fd, path = tempfile.mkstemp(prefix="cltui-config-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(config_to_dict(run.config), f)
        args = ["run", "--config", path]
        if run.group:
            args += ["--group", run.group]
        for o in run.overrides:
            args += [f"--override={o}"]
        try:
            return self._start(args, stop_at_step)
        finally:
            Path(path).unlink(missing_ok=True)  # the child removes it once read; this covers a crash

    def submit_ensemble(self, runs: Sequence[PlannedRun], stop_at_step: int | None = None) -> list[RunHandle]:
        """Start `runs` in one child as a batched ensemble (engine/ensemble.py): one handle per run,
        all sharing that process (stopping one stops them all)."""
        from engine.config import config_to_dict

        fd, path = tempfile.mkstemp(prefix="cltui-config-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump([{"config": config_to_dict(r.config), "group": r.group, "overrides": list(r.overrides)}
                       for r in runs], f)
        try:
            return self._start_many(["ensemble", "--spec", path], stop_at_step, len(runs))
        finally:
            Path(path).unlink(missing_ok=True)

    def resume(self, run_dir: Path, stop_at_step: int | None = None) -> RunHandle:
        return self._start(["resume", str(Path(run_dir).absolute())], stop_at_step)

    def _start(self, args: list[str], stop_at_step: int | None) -> RunHandle:
        return self._start_many(args, stop_at_step, 1)[0]

    def _start_many(self, args: list[str], stop_at_step: int | None, count: int) -> list[RunHandle]:
        args = [*args, "--runs-dir", str(self.runs_dir)]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        if stop_at_step is not None:
            args += ["--stop-at-step", str(stop_at_step)]
        # Until the run exists the child's stderr goes to a private temp file: kept (and named in the
        # error) only when the child dies without its structured error line; the child moves its
        # stderr into the run directory once the run exists.
        log_fd, log_path = tempfile.mkstemp(prefix="cltui-engine-", suffix=".log")
        try:
            proc = subprocess.Popen(
                [*engine_command(self.python), *args], stdout=subprocess.PIPE, stderr=log_fd, text=True,
                env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=self.detach,
            )
        finally:
            os.close(log_fd)
        self._children.append(proc)
        assert proc.stdout is not None
        handles: list[RunHandle] = []
        info: dict[str, Any] = {}
        while len(handles) < count:
            line = proc.stdout.readline()
            try:
                info = json.loads(line) if line.strip() else {}
            except json.JSONDecodeError:
                info = {}
            if "run_id" not in info:
                break
            handles.append(RunHandle(info["run_id"], Path(info["run_dir"]), proc, tuple(info.get("notes", ()))))
        if len(handles) == count:
            os.unlink(log_path)
            return handles
        code = proc.wait()
        if "error" in info:
            os.unlink(log_path)
            raise RunStartError(str(info["error"]), str(info.get("kind", "")))
        raise RunStartError(f"the engine exited with code {code} before its run existed; its output is in {log_path}",
                            "EngineCrashed")

    # -- observing -----------------------------------------------------------------------------
    def poll(self, handle: RunHandle) -> str | None:
        if handle.proc is not None:
            code = handle.proc.poll()
            if code is None:
                return None
            handle.error = handle.error or _channel_error(handle.proc)
            self.reap()
            # The record knows best (a SIGKILLed child leaves 'running' with a free lock: interrupted).
            return record_status(handle.run_dir) or EXIT_STATUS.get(code, "failed")
        return record_status(handle.run_dir)

    def stop(self, handle: RunHandle) -> None:
        """SIGTERM: the engine checkpoints and stops. A run this executor did not start is signalled
        through the pid in its record, and only while its writer lock is held (so a recycled pid is
        never hit)."""
        if handle.proc is not None:
            if handle.proc.poll() is None:
                handle.proc.send_signal(signal.SIGTERM)
            return
        if not lock_held(handle.run_dir):
            return
        from engine.store_read import read_run

        pid = read_run(handle.run_dir, with_series=False).pid
        os.kill(pid, signal.SIGTERM)

    def stop_all(self) -> None:
        """SIGTERM every child still running: each writes a checkpoint and stops ('interrupted'); a
        child still starting exits before its run exists (engine.__main__)."""
        for p in self._children:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    def kill_all(self) -> list[int]:
        """SIGKILL every child still running, without waiting for a checkpoint; the pids killed. Each
        loses its steps since its last checkpoint (its record reads 'interrupted': the lock is free)."""
        killed = []
        for p in self._children:
            if p.poll() is None:
                p.kill()
                killed.append(p.pid)
        return killed

    def reap(self) -> None:
        """Collect exited children (a detached child stays a zombie until its parent polls it)."""
        self._children = [p for p in self._children if p.poll() is None]


def _channel_error(proc: subprocess.Popen[str]) -> str:
    """The error line an ended engine wrote after its announcement (engine.__main__), or ''."""
    if proc.stdout is None or proc.stdout.closed:
        return ""
    try:
        rest = proc.stdout.read()
    except (OSError, ValueError):
        return ""
    for line in rest.splitlines():
        try:
            info = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(info, dict) and "error" in info:
            return str(info["error"])
    return ""


# -- driving a plan ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    """How one run ended: its handle (None if it never started) and final status."""

    run: PlannedRun | None
    """what was planned (None for a resumed run)"""
    handle: RunHandle | None
    status: str
    error: str = ""
    kind: str = ""


def run_all(executor: Executor, runs: Sequence[PlannedRun], parallel: int = 1,
            on_start: Callable[[PlannedRun, RunHandle], None] | None = None,
            on_end: Callable[[Outcome], None] | None = None, keep_going: bool = False,
            poll_every: float = 0.2, halt: Callable[[], bool] | None = None) -> list[Outcome]:
    """Start `runs` with at most `parallel` at a time and wait for all of them.

    `on_start` is called once each run exists (it may block, e.g. a live view following that run);
    `on_end` once each ends. After a run that does not finish (failed, interrupted, not started) no
    further run is started unless `keep_going`; the ones already going are waited for. Once `halt()`
    is true (the user asked to stop) no further run is started either."""
    if parallel < 1:
        raise CltuiError(f"--parallel {parallel}: give at least 1")
    pending = list(runs)
    active: list[tuple[PlannedRun, RunHandle]] = []
    out: list[Outcome] = []
    halted = False

    def ended(o: Outcome) -> None:
        nonlocal halted
        out.append(o)
        halted = halted or (o.status != "finished" and not keep_going)
        if on_end is not None:
            on_end(o)

    while (pending and not halted) or active:
        while pending and not halted and len(active) < parallel:
            if halt is not None and halt():
                halted = True
                break
            run = pending.pop(0)
            try:
                handle = executor.submit(run)
            except RunStartError as e:
                ended(Outcome(run, None, "not started", str(e), e.kind))
                continue
            except CltuiError as e:
                ended(Outcome(run, None, "not started", str(e), type(e).__name__))
                continue
            active.append((run, handle))
            if on_start is not None:
                on_start(run, handle)
        still = []
        for run, handle in active:
            status = executor.poll(handle)
            if status is None:
                still.append((run, handle))
            else:
                ended(Outcome(run, handle, status, handle.error, "StorageError" if handle.error else ""))
        active = still
        if active:
            time.sleep(poll_every)
    return out


def run_together(executor: LocalExecutor, runs: Sequence[PlannedRun],
                 on_start: Callable[[PlannedRun, RunHandle], None] | None = None,
                 on_end: Callable[[Outcome], None] | None = None, poll_every: float = 0.2) -> list[Outcome]:
    """Start `runs` as one batched ensemble (`submit_ensemble`) and wait until every member ended."""
    try:
        handles = executor.submit_ensemble(runs)
    except CltuiError as e:
        kind = e.kind if isinstance(e, RunStartError) else type(e).__name__
        outs = [Outcome(r, None, "not started", str(e), kind) for r in runs]
        for o in outs:
            if on_end is not None:
                on_end(o)
        return outs
    active = list(zip(runs, handles))
    for run, handle in active:
        if on_start is not None:
            on_start(run, handle)
    out: list[Outcome] = []
    while active:
        still = []
        for run, handle in active:
            status = executor.poll(handle)
            if status is None:
                still.append((run, handle))
                continue
            out.append(Outcome(run, handle, status, handle.error, "StorageError" if handle.error else ""))
            if on_end is not None:
                on_end(out[-1])
        active = still
        if active:
            time.sleep(poll_every)
    return out


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """The worst outcome's exit code (0 when every run finished)."""
    return max((STATUS_EXIT.get(o.status, 1) for o in outcomes), default=0)
