"""The `cltui` command line (Typer). Thin commands over engine's torch-free modules: runs are planned
by engine.planning, started by engine.executor, and shown with engine.presentation's numbers.

Training runs in a child process (`python -m engine`), shown live from the run store. Bare
`cltui` opens the TUI. Errors a user can fix print one line and exit non-zero.

The commands live in cltui/commands/ (one module per group). This module is the entry point (`main`)
and hands out the names tests and scripts use (`app`, `console`, `err_console`, `presets_app`). It
imports the command modules (and so typer) only when one of those is asked for, or a command runs:
bare `cltui` opens the TUI without loading typer (~0.1 s of its start).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

COMMAND_MODULES = ("running", "browse", "output", "bench")
"""Importing a command module registers its commands on `app`; `cltui --help` lists them in this order:
run, sweep, resume, watch (running); presets, runs, show (browse); export, plot (output); bench."""


def _commands() -> Any:
    """cltui.commands.common, with every command registered on its `app`."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"cltui.commands.{name}")
    return importlib.import_module("cltui.commands.common")


def __getattr__(name: str) -> Any:
    """`cltui.cli.app` and the rest, from cltui.commands.common (the commands registered first)."""
    if name in ("app", "console", "err_console", "presets_app"):
        return getattr(_commands(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry: bare `cltui` opens the TUI; anything else is the CLI."""
    if len(sys.argv) == 1:
        try:
            from cltui.tui.app import run_tui
        except ImportError:
            _commands().app(["--help"])
            return
        run_tui()
        return
    from engine.errors import RunStoreError

    common = _commands()
    try:
        common.app()
    except RunStoreError as e:  # safety net: never a traceback for a user error
        common.err_console.print(f"[red]error:[/red] {e}")
        sys.exit(2)
