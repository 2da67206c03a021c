"""The `cltui` command line (Typer). Thin commands over engine's torch-free modules and the launcher.

Training runs in a child process (`python -m engine`), shown live from the run store. Bare
`cltui` opens the TUI. Errors a user can fix print one line and exit non-zero.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from engine.errors import CltuiError, RunStoreError

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


RunsDir = Annotated[Optional[Path], typer.Option("--runs-dir", help="where runs are stored (default: $CLTUI_RUNS_DIR, else ./runs)")]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="data root holding MNIST/raw (default: $CLTUI_DATA_DIR, else a per-user cache)")]


def runs_root(runs_dir: Path | None) -> Path:
    if runs_dir:
        return runs_dir
    return Path(os.environ.get("CLTUI_RUNS_DIR", "runs"))


def fail(msg: str, code: int = 2) -> None:
    err_console.print(f"[red]error:[/red] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _follow_child(launched, live: bool) -> int:  # type: ignore[no-untyped-def]
    """Show a launched engine process until it ends; Ctrl-C is passed on so it checkpoints and stops."""
    from cltui.live import follow

    if not launched.wait_for_run():
        msg = launched.stderr.strip().splitlines()
        fail(msg[-1].removeprefix("error: ") if msg else f"engine exited with code {launched.proc.returncode}",
             launched.proc.returncode or 2)
    assert launched.run_dir is not None
    # The child is in our process group and gets Ctrl-C itself; we only keep waiting for it.
    old = signal.signal(signal.SIGINT, lambda *_: err_console.print("[yellow]stopping: writing a checkpoint…[/yellow]"))
    try:
        if live:
            rec = follow(launched.run_dir, console, lambda: launched.proc.poll() is None)
        else:
            rec = None
        code = launched.proc.wait()
    finally:
        signal.signal(signal.SIGINT, old)
    stderr = launched.proc.stderr.read().strip() if launched.proc.stderr else ""
    if not live:
        from engine.store import read_run
        from cltui.views import run_summary

        rec = read_run(launched.run_dir)
        console.print(run_summary(rec))
    if code == 3:
        console.print(f"[yellow]interrupted[/yellow] at step {rec.progress[0] if rec else '?'}; "
                      f"continue with: cltui resume {launched.run_id}")
    elif code == 1:
        err_console.print(f"[red]run {launched.run_id} failed:[/red] {stderr.splitlines()[-1] if stderr else ''}")
    elif code == 0:
        console.print(f"stored in {launched.run_dir}/run.h5")
    return code


@app.command()
def run(
    preset: Annotated[str, typer.Argument(help="preset name (see `cltui presets`) or a path to a .toml file")],
    set_: Annotated[list[str], typer.Option("--set", help="override a config key, e.g. --set training.lr=0.001")] = [],  # noqa: B006
    seed: Annotated[Optional[int], typer.Option(help="random seed (overrides the preset's)")] = None,
    seeds: Annotated[int, typer.Option(help="run N seeds (seed, seed+1, ...) as one group")] = 1,
    device: Annotated[Optional[Device], typer.Option(help="auto = CUDA when present, else CPU")] = None,
    runs_dir: RunsDir = None,
    data_dir: DataDir = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="live view while training")] = True,
) -> None:
    """Run a preset (optionally over several seeds) and store it in one HDF5 record per run."""
    from cltui.launcher import launch_run
    from engine.presets import load_preset
    from engine.store import RunStore

    try:
        cfg = load_preset(preset, set_, seed, device.value if device else None)
        RunStore(runs_root(runs_dir)).check_writable()
    except CltuiError as e:
        fail(str(e))
    if seeds < 1:
        fail("--seeds must be at least 1")
    group = ""
    if seeds > 1:
        import time

        group = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.name.replace('/', '-')}-x{seeds}"
        console.print(f"seed group [bold]{group}[/bold]: seeds {cfg.seed}..{cfg.seed + seeds - 1}")
    from dataclasses import replace

    codes = []
    for k in range(seeds):
        launched = launch_run(replace(cfg, seed=cfg.seed + k), runs_root(runs_dir), str(data_dir) if data_dir else None,
                              group=group)
        code = _follow_child(launched, live and sys.stdout.isatty())
        codes.append(code)
        if code != 0:
            break
    if group and all(c == 0 for c in codes):
        show(group, runs_dir)
    raise typer.Exit(max(codes))


@app.command()
def resume(
    run: Annotated[str, typer.Argument(help="run id (or unique part of it)")],
    runs_dir: RunsDir = None,
    data_dir: DataDir = None,
    live: Annotated[bool, typer.Option("--live/--no-live")] = True,
) -> None:
    """Continue an interrupted run from its last checkpoint (same final result as an uninterrupted run)."""
    from cltui.launcher import launch_resume
    from engine.store import RunStore, read_run

    try:
        run_dir = RunStore(runs_root(runs_dir)).find(run)
        rec = read_run(run_dir, with_series=False)
    except CltuiError as e:
        fail(str(e))
    if rec.live_status == "finished":
        fail(f"run {rec.run_id} already finished; nothing to resume.")
    if rec.live_status == "running":
        fail(f"run {rec.run_id} is still running (pid {rec.pid}); watch it with: cltui watch {rec.run_id}")
    launched = launch_resume(str(run_dir), runs_root(runs_dir), str(data_dir) if data_dir else None)
    raise typer.Exit(_follow_child(launched, live and sys.stdout.isatty()))


@app.command()
def watch(run: Annotated[str, typer.Argument(help="run id (or unique part of it)")], runs_dir: RunsDir = None) -> None:
    """Follow a run started elsewhere (another terminal, the TUI) until it stops."""
    from cltui.live import follow
    from engine.store import RunStore, pid_alive, read_run

    try:
        run_dir = RunStore(runs_root(runs_dir)).find(run)
        rec = read_run(run_dir, with_series=False)
    except CltuiError as e:
        fail(str(e))
    try:
        follow(run_dir, console, lambda: pid_alive(read_run(run_dir, with_series=False).pid))
    except KeyboardInterrupt:
        console.print(f"stopped watching; the run goes on. Again: cltui watch {rec.run_id}")


@presets_app.callback()
def presets(
    ctx: typer.Context,
    benchmark: Annotated[Optional[str], typer.Option(help="only presets of this benchmark (substring)")] = None,
    method: Annotated[Optional[str], typer.Option(help="only presets of this method (substring)")] = None,
) -> None:
    """List the shipped presets."""
    if ctx.invoked_subcommand:
        return
    from rich.table import Table

    from engine.presets import preset_info, preset_names

    t = Table(show_edge=False, pad_edge=False)
    names = preset_names()
    t.add_column("preset", no_wrap=True, min_width=max(map(len, names), default=6))
    for col in ("benchmark", "method"):
        t.add_column(col, no_wrap=True, min_width=14 if col == "benchmark" else 10)
    for col in ("ref during", "ref final"):
        t.add_column(col, no_wrap=True, justify="right", min_width=6)
    wide = console.width >= 120  # the description only fits on a wide terminal; `presets show` has it all
    if wide:
        t.add_column("description", no_wrap=True, overflow="ellipsis")
    from cltui.views import fmt

    for name in names:
        try:
            info = preset_info(name)
        except CltuiError as e:
            err_console.print(f"[yellow]skipping {name}: {e}[/yellow]")
            continue
        if benchmark and benchmark not in info.benchmark and benchmark not in name:
            continue
        if method and method not in info.method:
            continue
        row = [name, info.benchmark, info.method, fmt(info.ref_during), fmt(info.ref_final)]
        t.add_row(*row, *([info.description] if wide else []))
    console.print(t)


@presets_app.command("show")
def presets_show(name: Annotated[str, typer.Argument(help="preset name")]) -> None:
    """Show a preset's TOML, its resolved config and every option with its help text."""
    from rich.syntax import Syntax

    from engine.config import config_json
    from engine.presets import load_preset, preset_path

    try:
        path = preset_path(name)
        cfg = load_preset(name)
    except CltuiError as e:
        fail(str(e))
    console.print(f"[bold]{name}[/bold]  ({path})")
    console.print(Syntax(path.read_text(), "toml", theme="ansi_dark", background_color="default"))
    console.print("[bold]resolved config[/bold]")
    console.print(Syntax(config_json(cfg), "json", theme="ansi_dark", background_color="default"))
    from rich.table import Table

    from engine.catalog import option_docs

    opts = Table("option", "value", "help", title="options", title_justify="left", show_edge=False, pad_edge=False)
    for doc in option_docs(cfg):
        opts.add_row(doc.key, doc.value_text, doc.help, style="bold" if doc.key.endswith(".name") else None)
    console.print(opts)


@app.command()
def runs(runs_dir: RunsDir = None) -> None:
    """Table of stored runs: status, benchmark, method, seed, during/final accuracy."""
    from cltui.views import runs_table
    from engine.store import RunStore

    records = RunStore(runs_root(runs_dir)).records()
    if not records:
        console.print(f"no runs in {runs_root(runs_dir)}; start one with: cltui run demo")
        return
    console.print(runs_table(records))


@app.command()
def show(run: Annotated[str, typer.Argument(help="run id, unique part of it, or a seed-group id")], runs_dir: RunsDir = None) -> None:
    """A run's config, accuracy matrix and metrics beside the reference; groups show mean ± std over seeds."""
    from rich.syntax import Syntax

    from cltui.views import metrics_table, run_summary, runs_table
    from engine.store import RunStore, read_run

    store = RunStore(runs_root(runs_dir))
    members = store.group_members(run)
    if members:
        recs = [read_run(p) for p in members]
        console.print(f"[bold]seed group {run}[/bold] ({len(recs)} runs)")
        console.print(runs_table(recs))
        keys = list(recs[0].metrics)
        vals = {k: np.array([r.metrics[k] for r in recs], dtype=float) for k in keys}
        mean = {k: float(np.nanmean(v)) if not np.all(np.isnan(v)) else math.nan for k, v in vals.items()}
        std = {k: float(np.nanstd(v)) if not np.all(np.isnan(v)) else math.nan for k, v in vals.items()}
        console.print(metrics_table(recs[0], mean, std))
        return
    try:
        rec = read_run(store.find(run))
    except CltuiError as e:
        fail(str(e))
    console.print(run_summary(rec))
    console.print("[bold]config[/bold]")
    console.print(Syntax(json.dumps(rec.config, indent=1), "json", theme="ansi_dark", background_color="default"))


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="run id (or unique part of it)")],
    format: Annotated[ExportFormat, typer.Option("--format", help="csv (accuracy matrix) or json (everything)")] = ExportFormat.json,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="file to write (default: stdout)")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Export a run: its accuracy matrix as CSV, or config, matrix, metrics and curves as JSON."""
    from engine.store import RunStore, read_run

    try:
        rec = read_run(RunStore(runs_root(runs_dir)).find(run))
    except CltuiError as e:
        fail(str(e))

    def clean(a: np.ndarray) -> list:  # JSON has no NaN: write null
        return [[None if math.isnan(v) else v for v in row] for row in np.atleast_2d(a).tolist()]

    if format is ExportFormat.csv:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["after_phase", *rec.task_names])
        for i, row in enumerate(rec.acc):
            w.writerow([i, *["" if math.isnan(v) else f"{v:.4f}" for v in row]])
        text = buf.getvalue()
    else:
        text = json.dumps({
            "run_id": rec.run_id, "status": rec.live_status, "config": rec.config, "environment": rec.environment,
            "task_names": rec.task_names, "acc": clean(rec.acc), "acc_initial": clean(rec.acc_initial)[0],
            "metrics": {k: None if math.isnan(v) else v for k, v in rec.metrics.items()},
            "curves": {"step": rec.curve_steps.tolist(), "acc": clean(rec.curve_acc) if rec.curve_acc.size else []},
        }, indent=1)
    if output:
        try:
            output.write_text(text)
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror}")
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


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
