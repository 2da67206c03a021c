"""What every `cltui` command shares: the Typer apps, the consoles, the option types, and the small
helpers that resolve the runs directory, name a group, and fail with one line.

Torch-free and numpy-free at import, like every module of cltui.commands: `cltui --help` imports
them all (each command imports what it needs when it runs).
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from engine.errors import CltuiError

if TYPE_CHECKING:
    from engine.groups import Group

app = typer.Typer(add_completion=False, no_args_is_help=False, rich_markup_mode=None,
                  help="cltui: run published continual-learning experiments, watch forgetting live, resume exactly.")
presets_app = typer.Typer(help="List presets, or show one.", invoke_without_command=True)
app.add_typer(presets_app, name="presets")
# Piped output (logs, grep, tests) gets wide lines instead of squashed tables; a terminal keeps its width.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"
    parquet = "parquet"


class ExecutorKind(str, Enum):
    local = "local"
    ray = "ray"


RunsDir = Annotated[Path | None, typer.Option("--runs-dir", help="where runs are stored (default: $CLTUI_RUNS_DIR, else ./runs)")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data root holding MNIST/raw and/or cifar-100-python.tar.gz (default: $CLTUI_DATA_DIR, else a per-user cache)")]


def runs_root(runs_dir: Path | None) -> Path:
    if runs_dir:
        return runs_dir
    return Path(os.environ.get("CLTUI_RUNS_DIR", "runs"))


def fail(msg: str, code: int = 2) -> None:
    err_console.print(f"[red]error:[/red] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def find_group(ref: str, runs_dir: Path | None, with_series: bool = False) -> Group | None:
    """The sweep or seed group `ref` names, or None when it names none (then it is a run reference)."""
    from engine.groups import is_group, load_group

    root = runs_root(runs_dir)
    try:
        if not root.is_dir() or not is_group(root, ref):
            return None
        return load_group(root, ref, with_series)
    except (CltuiError, OSError, ValueError, KeyError) as e:  # a damaged group.json: one line
        fail(f"group {ref}: {e}")
    return None
