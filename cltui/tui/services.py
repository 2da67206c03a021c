"""What the TUI is built from: its settings and the launcher that starts engine processes.

`create_app` receives a `RunStore`, a `Launcher` and `Settings`; tests pass a fake launcher that
records what it was asked to start. Torch-free and textual-free (plain dataclasses and processes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import CltuiError

if TYPE_CHECKING:  # engine.config loads every component's options: not needed to draw the first screen
    from engine.config import RunConfig


class LaunchError(CltuiError):
    """The engine process exited before its run existed; the message is its one error line."""


@dataclass(frozen=True)
class Settings:
    """Where runs and data live, and how often the screens poll the run store."""

    runs_dir: Path
    """runs directory (the CLI's --runs-dir / $CLTUI_RUNS_DIR / ./runs)"""
    data_dir: str | None = None
    """data root handed to launched runs ($CLTUI_DATA_DIR); None = the engine's default"""
    runs_poll: float = 1.0
    """seconds between reads of the runs list (Runs and Compare screens)"""
    live_poll: float = 0.25
    """seconds between reads of the run on the Live screen (~4 per second)"""
    start_mode: str | None = None
    """first screen: 'presets', 'runs', 'live' or 'compare'; None = Runs when runs exist, else Presets"""

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings as the CLI resolves them: $CLTUI_RUNS_DIR (else ./runs) and $CLTUI_DATA_DIR."""
        base: dict[str, Any] = {
            "runs_dir": Path(os.environ.get("CLTUI_RUNS_DIR", "runs")),
            "data_dir": os.environ.get("CLTUI_DATA_DIR") or None,
        }
        base.update(overrides)
        return cls(**base)


class Launcher(Protocol):
    """Starts runs in their own processes. Both calls block until the run directory exists
    (seconds: the engine imports torch and loads data first), so the TUI calls them in workers."""

    def launch(self, cfg: RunConfig, runs_dir: Path, data_dir: str | None, group: str = "") -> Path:
        """Start training `cfg`; return the new run's directory or raise LaunchError."""
        ...

    def resume(self, run_dir: Path, runs_dir: Path, data_dir: str | None) -> Path:
        """Continue a stored run from its last checkpoint; return its directory or raise LaunchError."""
        ...

    def reap(self) -> None:
        """Collect exited children so a dead run's pid does not linger as a zombie that looks alive."""
        ...


@dataclass
class ProcessLauncher:
    """The real launcher: `python -m engine run|resume` detached in its own session (cltui.launcher),
    so runs survive the TUI and its terminal."""

    _children: list[Any] = field(default_factory=list)

    def _wait(self, launched: Any, runs_dir: Path) -> Path:
        self._children.append(launched.proc)
        if not launched.wait_for_run():
            raise LaunchError(_last_error(Path(runs_dir) / ".logs" / "launch.log")
                              or f"engine exited with code {launched.proc.returncode}")
        assert launched.run_dir is not None
        return Path(launched.run_dir)

    def launch(self, cfg: RunConfig, runs_dir: Path, data_dir: str | None, group: str = "") -> Path:
        from cltui.launcher import launch_run

        return self._wait(launch_run(cfg, runs_dir, data_dir, group=group, detach=True), runs_dir)

    def resume(self, run_dir: Path, runs_dir: Path, data_dir: str | None) -> Path:
        from cltui.launcher import launch_resume

        return self._wait(launch_resume(str(run_dir), runs_dir, data_dir, detach=True), runs_dir)

    def reap(self) -> None:
        # A detached child that exits stays a zombie until polled, and os.kill(zombie, 0) succeeds,
        # so a crashed run would read as 'running' for as long as the TUI is open.
        self._children = [p for p in self._children if p.poll() is None]


def _last_error(log: Path) -> str:
    """The engine's last 'error: ...' line in the shared launch log (detached runs write there)."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-50:]
    except OSError:
        return ""
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return lines[-1] if lines else ""
