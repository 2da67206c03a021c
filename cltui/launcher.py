"""Start engine processes (`python -m engine ...`) for the CLI and the TUI. Torch-free.

A run always trains in its own process, so the UI stays light (no torch import), a TUI can quit
while its runs go on, and any number of viewers can attach through the run store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import RunConfig, config_to_dict


@dataclass
class Launched:
    """A started engine process and the run it created (once known)."""

    proc: subprocess.Popen[str]
    run_id: str = ""
    run_dir: Path | None = None
    stderr: str = ""

    def wait_for_run(self) -> bool:
        """Read the process's announcement line; False if it exited first (see `stderr`)."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.stderr = self.proc.stderr.read() if self.proc.stderr else ""
            return False
        info = json.loads(line)
        self.run_id, self.run_dir = info["run_id"], Path(info["run_dir"])
        return True


def _spawn(args: list[str], detach: bool, log: Path | None) -> Launched:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    stderr: Any = subprocess.PIPE
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        stderr = open(log, "a")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", *args], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        start_new_session=detach,  # detached runs survive the TUI and its terminal
    )
    return Launched(proc)


def launch_run(cfg: RunConfig, runs_dir: Path, data_dir: str | None = None, group: str = "",
               detach: bool = False, stop_at_step: int | None = None) -> Launched:
    """Start training `cfg` in a new process; the resolved config travels as a JSON file."""
    fd, path = tempfile.mkstemp(prefix="cltui-config-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(config_to_dict(cfg), f)
    args = ["run", "--config", path, "--runs-dir", str(runs_dir)]
    if data_dir:
        args += ["--data-dir", str(data_dir)]
    if group:
        args += ["--group", group]
    if stop_at_step is not None:
        args += ["--stop-at-step", str(stop_at_step)]
    return _spawn(args, detach, Path(runs_dir) / ".logs" / "launch.log" if detach else None)


def launch_resume(run: str, runs_dir: Path, data_dir: str | None = None, detach: bool = False) -> Launched:
    args = ["resume", run, "--runs-dir", str(runs_dir)]
    if data_dir:
        args += ["--data-dir", str(data_dir)]
    return _spawn(args, detach, Path(runs_dir) / ".logs" / "launch.log" if detach else None)
