"""What the TUI is built from besides its store: its settings (and, from engine.executor, the
executor that starts and stops runs).

`create_app` receives a `RunStore`, an `Executor` and `Settings`; tests pass a fake executor that
records what it was asked to start. Torch-free and textual-free (plain dataclasses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
