"""The `cltui` command line (Typer). Thin commands over engine's torch-free modules: runs are planned
by engine.planning, started by engine.executor, and shown with engine.presentation's numbers.

Training runs in a child process (`python -m engine`), shown live from the run store. Bare
`cltui` opens the TUI. Errors a user can fix print one line and exit non-zero.

The commands live in cltui/commands/ (one module per group); importing them here registers them on
`app`. This module keeps the entry point (`main`) and the
names tests and scripts use (`app`, `console`).
"""

from __future__ import annotations

import sys

# Importing a command module registers its commands on `app`; `cltui --help` lists them in this order.
# isort: off
from cltui.commands import running  # noqa: F401  run, sweep, resume, watch
from cltui.commands import browse  # noqa: F401  presets, runs, show
from cltui.commands import output  # noqa: F401  export, plot
from cltui.commands import bench  # noqa: F401  bench
# isort: on
from cltui.commands.common import app, console, err_console, presets_app
from engine.errors import RunStoreError

__all__ = ["app", "console", "err_console", "main", "presets_app"]


def main() -> None:
    """Console-script entry: bare `cltui` opens the TUI; anything else is the CLI."""
    if len(sys.argv) == 1:
        try:
            from cltui.tui.app import run_tui
        except ImportError:
            app(["--help"])
            return
        run_tui()
        return
    try:
        app()
    except RunStoreError as e:  # safety net: never a traceback for a user error
        err_console.print(f"[red]error:[/red] {e}")
        sys.exit(2)
