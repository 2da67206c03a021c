"""The `cltui` command line (Typer). Thin commands over engine's torch-free modules: runs are planned
by engine.planning, started by engine.executor, and shown with engine.presentation's numbers.

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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from engine.errors import CltuiError, RunStoreError
from engine.runlock import still_running

if TYPE_CHECKING:
    from engine.executor import LocalExecutor, Outcome, RunHandle
    from engine.groups import Group
    from engine.planning import PlannedRun

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


def _executor(runs_dir: Path | None, data_dir: Path | None) -> LocalExecutor:
    from engine.executor import LocalExecutor

    return LocalExecutor(runs_root(runs_dir), str(data_dir) if data_dir else None)


class _Interrupts:
    """Ctrl-C or SIGTERM while `cltui run`/`resume` waits on its runs (to cltui alone, or to its whole
    process group as a terminal's Ctrl-C, which the attached children then get too).

    The first asks every running child to write a checkpoint and stop (the executor's SIGTERM; no
    further planned run starts) and cltui keeps waiting for them; the second kills them at once,
    and each one's end line says what it lost."""

    def __init__(self, executor: Any) -> None:  # LocalExecutor, RayExecutor: stop_all / kill_all
        self.executor = executor
        self.count = 0
        self.killed: set[int] = set()

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            err_console.print("[yellow]stopping: each run writes a checkpoint; Ctrl-C again kills without waiting[/yellow]",
                              highlight=False)
            self.executor.stop_all()
        else:
            pids = self.executor.kill_all()
            self.killed.update(pids)
            if pids:
                err_console.print("[red]killed without waiting for a checkpoint[/red]", highlight=False)

    @property
    def stopping(self) -> bool:
        return self.count > 0

    def was_killed(self, handle: RunHandle) -> bool:
        return handle.proc is not None and handle.proc.pid in self.killed

    @contextmanager
    def installed(self) -> Iterator[_Interrupts]:
        old = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _report_end(outcome: Outcome, live: bool, brief: bool = False, killed: bool = False) -> None:
    """One run ended: its summary (when not shown live; one line when `brief`, as for parallel runs)
    and what happened, from its record (`killed`: by a second Ctrl-C, without a checkpoint)."""
    from cltui.views import run_summary
    from engine.presentation import divergence_text, error_summary, fmt, metrics_of, stop_text
    from engine.store import read_run

    if outcome.handle is None:  # it never started: the engine's structured error, one line
        err_console.print(f"[red]error:[/red] {outcome.error}", highlight=False, soft_wrap=True)
        return
    h = outcome.handle
    if outcome.error:  # said on the engine's channel: its files could not be written (disk full, read-only)
        err_console.print(f"[red]error:[/red] {outcome.error}", highlight=False, soft_wrap=True)
    try:
        rec = read_run(h.run_dir)
    except RunStoreError as e:
        err_console.print(f"[red]error:[/red] {e}")
        return
    if brief:
        m = metrics_of(rec)
        console.print(f"{h.run_id} {outcome.status} · during {fmt(m.get('during', math.nan))} · "
                      f"final {fmt(m.get('final', math.nan))}", highlight=False)
    elif not live:
        console.print(run_summary(rec))
    if outcome.status == "interrupted":
        # Its process died before marking the stop (a storage error may have kept it from marking it).
        killed = killed or (rec.status != "interrupted" and not outcome.error)
        err_console.print(f"[yellow]{h.run_id}[/yellow]: {stop_text(rec, killed)}", highlight=False, soft_wrap=True)
    elif outcome.status == "diverged":
        err_console.print(f"[magenta]run {h.run_id} {divergence_text(rec.divergence) if rec.divergence else 'diverged'}"
                          "[/magenta]", highlight=False, soft_wrap=True)
    elif outcome.status == "failed":
        err_console.print(f"[red]run {h.run_id} failed:[/red] {error_summary(rec.error)}", highlight=False)
    elif outcome.status == "finished" and not brief:
        console.print(f"stored in {h.run_dir}/run.h5")


def _execute(runs: list[PlannedRun], runs_dir: Path | None, data_dir: Path | None, live: bool, parallel: int = 1,
             resume_dir: Path | None = None) -> int:
    """Start the planned runs (or resume one) through the local executor and show them; the exit code."""
    from cltui.live import follow
    from engine.executor import Outcome, RunStartError, exit_code, run_all

    executor = _executor(runs_dir, data_dir)
    live = live and parallel == 1  # one live view at a time; parallel runs report as they end

    def on_start(run: PlannedRun | None, handle: RunHandle) -> None:
        for note in handle.notes:  # e.g. a damaged checkpoint the engine skipped
            console.print(f"[yellow]{handle.run_id}: {note}[/]")
        if live:
            follow(handle.run_dir, console, lambda: executor.poll(handle) is None)
        elif parallel > 1:
            console.print(f"started {handle.run_id}")

    with _Interrupts(executor).installed() as intr:
        if resume_dir is not None:
            try:
                handle = executor.resume(resume_dir)
            except RunStartError as e:
                fail(str(e))
            on_start(None, handle)
            while (status := executor.poll(handle)) is None:
                time.sleep(0.2)
            outcomes = [Outcome(None, handle, status, handle.error, "StorageError" if handle.error else "")]
            _report_end(outcomes[0], live, killed=intr.was_killed(handle))
        else:
            outcomes = run_all(executor, runs, parallel, on_start=on_start, halt=lambda: intr.stopping,
                               on_end=lambda o: _report_end(o, live, brief=parallel > 1,
                                                            killed=o.handle is not None and intr.was_killed(o.handle)))
    return exit_code(outcomes)


@app.command()
def run(
    preset: Annotated[str, typer.Argument(help="preset name (see `cltui presets`) or a path to a .toml file")],
    set_: Annotated[list[str], typer.Option("--set", help="override a config key, e.g. --set training.lr=0.001")] = [],  # noqa: B006
    seed: Annotated[int | None, typer.Option(help="random seed (overrides the preset's)")] = None,
    seeds: Annotated[int, typer.Option(help="run N seeds (seed, seed+1, ...) as one group")] = 1,
    grid: Annotated[list[str], typer.Option("--grid", help="sweep a key over values, e.g. --grid training.lr=0.1,0.01 (repeatable: the cartesian product)")] = [],  # noqa: B006
    parallel: Annotated[int, typer.Option(help="runs at a time (1 = one after another, with the live view)")] = 1,
    device: Annotated[Device | None, typer.Option(help="auto = CUDA when present, else CPU")] = None,
    runs_dir: RunsDir = None,
    data_dir: DataDir = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="live view while training")] = True,
) -> None:
    """Run a preset (optionally over several seeds and a grid) and store it in one HDF5 record per run.

    Ctrl-C (or SIGTERM) stops every run with a checkpoint, to resume later; a second one kills them."""
    from engine.planning import parse_grid, plan
    from engine.store import RunStore

    if parallel < 1:
        fail("--parallel must be at least 1")
    try:
        planned = plan(preset, set_, seeds, parse_grid(grid), seed=seed, device=device.value if device else None)
        RunStore(runs_root(runs_dir)).check_writable()
    except CltuiError as e:
        fail(str(e))
    groups = list(dict.fromkeys(r.group for r in planned if r.group))
    for g in groups:
        members = [r for r in planned if r.group == g]
        point = " ".join(o for o in members[0].overrides if o not in set_)
        console.print(f"seed group [bold]{g}[/bold]: seeds {', '.join(str(r.config.seed) for r in members)}"
                      + (f" · {point}" if point else ""), highlight=False)
    code = _execute(planned, runs_dir, data_dir, live and sys.stdout.isatty(), parallel)
    if code == 0:
        for g in groups:
            show(g, runs_dir)
    raise typer.Exit(code)


def _group(ref: str, runs_dir: Path | None, with_series: bool = False) -> Group | None:
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


@app.command()
def sweep(
    preset: Annotated[str, typer.Argument(help="preset name (see `cltui presets`) or a path to a .toml file")],
    grid: Annotated[list[str], typer.Option("--grid", help="sweep a key over values, e.g. --grid training.lr=0.1,0.01 (repeatable: the cartesian product)")] = [],  # noqa: B006
    seeds: Annotated[int, typer.Option(help="seeds per grid point (seed, seed+1, ...)")] = 1,
    executor: Annotated[ExecutorKind, typer.Option("--executor", help="local: child processes here; ray: one Ray task per run")] = ExecutorKind.local,
    max_parallel: Annotated[int, typer.Option("--max-parallel", help="runs at a time")] = 1,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster to join (e.g. ray://host:10001 or auto); default: start a local Ray instance")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="override a config key for every run, e.g. --set training.lr=0.001")] = [],  # noqa: B006
    seed: Annotated[int | None, typer.Option(help="first seed (overrides the preset's)")] = None,
    device: Annotated[Device | None, typer.Option(help="auto = CUDA when present, else CPU")] = None,
    runs_dir: RunsDir = None,
    data_dir: DataDir = None,
) -> None:
    """Run a preset over a grid × seeds as one group (`cltui show/export/plot/watch GROUP`).

    With --executor ray the runs dir must be readable by every Ray node (a shared filesystem); a run whose
    worker dies is resumed from its checkpoint. Ctrl-C stops every run with a checkpoint; a second kills."""
    from engine.executor import exit_code
    from engine.groups import group_dir
    from engine.planning import parse_grid
    from engine.store import RunStore
    from engine.sweep import plan_sweep, run_sweep

    if max_parallel < 1:
        fail("--max-parallel must be at least 1")
    if ray_address and executor is not ExecutorKind.ray:
        fail("--ray-address is for --executor ray")
    root = runs_root(runs_dir)
    try:
        parsed = parse_grid(grid)
        gid, planned, slots = plan_sweep(preset, set_, seeds, parsed, seed=seed, device=device.value if device else None)
        RunStore(root).check_writable()
        if executor is ExecutorKind.ray:
            from engine.executor_ray import RayExecutor

            ex: Any = RayExecutor(root, group_dir(root, gid) / "members", str(data_dir) if data_dir else None,
                                  ray_address)
        else:
            ex = _executor(runs_dir, data_dir)
    except CltuiError as e:
        from rich.markup import escape

        fail(escape(str(e)))  # 'cltui[ray]' is not markup
    n_points = len(planned) // seeds
    console.print(f"sweep [bold]{gid}[/bold]: {n_points} grid point{'s' * (n_points != 1)} × {seeds} seed"
                  f"{'s' * (seeds != 1)} = {len(planned)} runs · {executor.value} executor · {max_parallel} at a time",
                  highlight=False)
    t0 = time.monotonic()
    with _Interrupts(ex).installed() as intr:
        outcomes = run_sweep(ex, root, gid, planned[0].config.name, set_, parsed, planned, slots, max_parallel,
                             executor.value, on_start=lambda r, h: console.print(f"started {h.run_id}", highlight=False),
                             on_end=lambda o: _report_end(o, False, brief=True, killed=o.handle is not None
                                                          and intr.was_killed(o.handle)),
                             halt=lambda: intr.stopping)
    console.print(f"sweep {gid}: {len(planned)} runs in {time.monotonic() - t0:.1f} s wall", highlight=False)
    show(gid, runs_dir)
    raise typer.Exit(exit_code(outcomes))


@app.command()
def resume(
    run: Annotated[str, typer.Argument(help="run id (or unique part of it)")],
    runs_dir: RunsDir = None,
    data_dir: DataDir = None,
    live: Annotated[bool, typer.Option("--live/--no-live")] = True,
) -> None:
    """Continue an interrupted run from its last checkpoint (same final result as an uninterrupted run).

    Ctrl-C (or SIGTERM) stops it again with a checkpoint; a second one kills it."""
    from engine.presentation import resume_of
    from engine.store import RUN_FILE, RunStore, read_run
    from engine.store_read import truncation

    try:
        run_dir = RunStore(runs_root(runs_dir)).find(run)
    except CltuiError as e:
        fail(str(e))
    try:
        rec = read_run(run_dir, with_series=False)
    except CltuiError as e:
        if not truncation(run_dir / RUN_FILE):
            fail(str(e))
        # Cut off: the engine rebuilds it from what its checkpoint proves (engine/salvage.py) or refuses.
        console.print(f"{run_dir.name}: {e}; rebuilding it from its checkpoint", highlight=False)
        raise typer.Exit(_execute([], runs_dir, data_dir, live and sys.stdout.isatty(), resume_dir=run_dir)) from None
    res = resume_of(rec)
    if rec.live_status == "running":
        fail(still_running(rec.run_dir))
    if not res.possible:
        fail(f"run {rec.run_id}: {res.text}.")
    console.print(f"{rec.run_id}: {res.text}")
    raise typer.Exit(_execute([], runs_dir, data_dir, live and sys.stdout.isatty(), resume_dir=run_dir))


@app.command()
def watch(run: Annotated[str, typer.Argument(help="run id (or unique part of it), or a group id")], runs_dir: RunsDir = None) -> None:
    """Follow a run or group started elsewhere (another terminal, the TUI) until it stops. Ctrl-C (or
    SIGTERM) only stops watching: the runs go on."""
    from cltui.live import follow
    from engine.executor import RunHandle
    from engine.store import RunStore, read_run

    if (grp := _group(run, runs_dir)) is not None:
        from cltui.group_views import watch_group

        old_term = signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            watch_group(runs_root(runs_dir), grp.group, console)
        except KeyboardInterrupt:
            console.print(f"stopped watching; the runs go on. Again: cltui watch {grp.group}")
        finally:
            signal.signal(signal.SIGTERM, old_term)
        return
    try:
        run_dir = RunStore(runs_root(runs_dir)).find(run)
        rec = read_run(run_dir, with_series=False)
    except CltuiError as e:
        fail(str(e))
    executor = _executor(runs_dir, None)
    handle = RunHandle(rec.run_id, run_dir)

    def detach(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, detach)  # the watched run is not ours to stop
    try:
        follow(run_dir, console, lambda: executor.poll(handle) is None)
    except KeyboardInterrupt:
        console.print(f"stopped watching; the run goes on. Again: cltui watch {rec.run_id}")
    finally:
        signal.signal(signal.SIGTERM, old)


@presets_app.callback()
def presets(
    ctx: typer.Context,
    benchmark: Annotated[str | None, typer.Option(help="only presets of this benchmark (substring)")] = None,
    method: Annotated[str | None, typer.Option(help="only presets of this method (substring)")] = None,
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
    from engine.provenance import strip_internal

    opts = Table("option", "value", "help", title="options", title_justify="left", show_edge=False, pad_edge=False)
    for doc in option_docs(cfg):
        opts.add_row(doc.key, doc.value_text, strip_internal(doc.help), style="bold" if doc.key.endswith(".name") else None)
    console.print(opts)


@app.command()
def runs(runs_dir: RunsDir = None) -> None:
    """Table of stored runs: status, benchmark, method, seed, during/final accuracy."""
    from cltui.views import runs_table
    from engine.store_dir import RunStore

    skipped: list[str] = []
    records = RunStore(runs_root(runs_dir)).summaries(skipped=skipped)
    for why in skipped:  # a foreign or damaged run.h5 never hides the runs beside it
        err_console.print(f"[yellow]skipped: {why}[/yellow]", highlight=False, soft_wrap=True)
    if not records:
        console.print(f"no runs in {runs_root(runs_dir)}; start one with: cltui run demo")
        return
    records.sort(key=lambda r: (r.created, r.run_id), reverse=True)  # newest first, as in the TUI
    console.print(runs_table(records, console.width))
    from cltui.group_views import groups_table

    groups = groups_table(runs_root(runs_dir))  # sweeps recorded beside the runs (cltui show GROUP)
    if groups is not None:
        console.print(groups)


@app.command()
def show(run: Annotated[str, typer.Argument(help="run id, unique part of it, or a sweep / seed-group id")], runs_dir: RunsDir = None) -> None:
    """A run's config, accuracy matrix and metrics beside the reference; groups show mean ± std over seeds."""
    from rich.syntax import Syntax

    from cltui.views import metrics_table, run_summary
    from engine.presentation import group_stats
    from engine.store import RunStore, read_run

    store = RunStore(runs_root(runs_dir))
    if (grp := _group(run, runs_dir)) is not None:
        from cltui.group_views import group_view

        console.print(group_view(grp))
        if grp.kind == "seeds" and grp.records:  # one point: its metrics beside the reference
            (g,) = group_stats(grp.records)
            console.print(metrics_table(grp.records[0], g.mean, g.std))
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
    run: Annotated[str, typer.Argument(help="run id (or unique part of it), or a group id")],
    format: Annotated[ExportFormat, typer.Option("--format", help="run: csv (accuracy matrix) or json (everything); group: csv, json or parquet (one row per run)")] = ExportFormat.json,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Export a run: its accuracy matrix as CSV, or config, matrix, metrics, curves and every recorded series as JSON.
    Export a group: one tidy row per run (group, run_id, status, seed, one column per grid axis, metrics)."""
    import numpy as np  # here, not at the top: `cltui --help` and most commands never need it

    from engine.provenance import strip_internal
    from engine.store import RunStore, read_run

    store = RunStore(runs_root(runs_dir))
    if (grp := _group(run, runs_dir)) is not None:
        from cltui.group_views import export_rows

        try:
            text = export_rows(grp, format.value, output)
        except CltuiError as e:
            fail(str(e))
        if text is None:
            console.print(f"wrote {output}", highlight=False)
        else:
            sys.stdout.write(text)
        return
    if format is ExportFormat.parquet:
        fail("--format parquet is for groups (one row per run); export a run as csv or json")
    try:
        rec = read_run(store.find(run))
    except CltuiError as e:
        fail(str(e))

    def clean(a: np.ndarray) -> list:  # JSON has no NaN: write null
        return [[None if math.isnan(v) else v for v in row] for row in np.atleast_2d(a).tolist()]

    def plain(a: np.ndarray) -> Any:  # any shape and dtype; NaN → null
        if a.dtype.kind == "f":
            return np.where(np.isnan(a), None, a.astype(object)).tolist()
        return a.tolist()

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
            # Every declared series of the record, with its declaration (format 2; format-1 runs map theirs).
            "series": {name: {"cadence": s.spec.cadence, "shape": list(s.spec.shape), "columns": s.spec.columns,
                              "description": strip_internal(s.spec.description), "source": s.spec.source,
                              "step": s.steps.tolist(), "value": plain(s.values)}
                       for name, s in rec.series.items()},
        }, indent=1)
    _write_out(text, output)


def _write_out(text: str, output: Path | None) -> None:
    if output:
        try:
            output.write_text(text)
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror}")
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


class PlotWhat(str, Enum):
    curves = "curves"
    matrix = "matrix"
    probes = "probes"
    sparsity = "sparsity"
    updates = "updates"
    gradients = "gradients"
    histograms = "histograms"
    latent = "latent"
    classprobs = "classprobs"
    plasticity = "plasticity"
    stages = "stages"
    all = "all"


class PlotFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


@app.command()
def plot(
    run: Annotated[str, typer.Argument(help="run id (or unique part of it), or a group id")],
    what: Annotated[list[PlotWhat], typer.Option("--what", help="figure(s) to draw (repeatable); all = every one the run has data for")] = [PlotWhat.all],  # noqa: B006
    format: Annotated[PlotFormat, typer.Option("--format", help="file format")] = PlotFormat.png,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="folder to write to (default: the run's figures/ folder)")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="stages: a run to subtract (e.g. the retrained network)")] = None,
    runs_dir: RunsDir = None,
) -> None:
    """Draw a run's figures with matplotlib (accuracy matrix, forgetting curves, and each analysis it recorded);
    a group's: mean ± sample std curves (bands) and matrices per grid point."""
    from rich.markup import escape

    from engine.store import RunStore

    whats = [w.value for w in what]
    if baseline is not None and not {"stages", "all"} & set(whats):
        fail("--baseline is only used by --what stages (or all)")
    store = RunStore(runs_root(runs_dir))
    if (grp := _group(run, runs_dir, with_series=True)) is not None:
        from cltui.figures.group import write_group_figures

        if baseline is not None:
            fail("--baseline is for one run's stages figure, not a group")
        try:
            written, skipped = write_group_figures(grp, whats, format.value,
                                                   output or runs_root(runs_dir) / "groups" / grp.group / "figures")
        except CltuiError as e:
            fail(escape(str(e)))
    else:
        written, skipped = _plot_run(store, run, whats, format.value, output, baseline)
    for line in skipped:
        err_console.print(f"[yellow]skipped {escape(line)}[/yellow]", highlight=False, soft_wrap=True)
    for path in written:
        console.print(str(path), highlight=False, soft_wrap=True)


@app.command()
def bench(
    presets: Annotated[list[str] | None, typer.Argument(help="presets to measure (default: split-mnist/finetune, split-mnist/ewc, ssmnist/finetune-m1, ssmnist/ewc-m1)")] = None,
    steps: Annotated[int | None, typer.Option(help="steps per task instead of the preset's (shorter, but evaluation then weighs more)")] = None,
    repeats: Annotated[int, typer.Option(help="interleaved rounds of bare loop and cltui run per preset (min and median reported)")] = 3,
    set_: Annotated[list[str], typer.Option("--set", help="override a config key in both loops, e.g. --set model.hidden=[100,100]")] = [],  # noqa: B006
    device: Annotated[Device | None, typer.Option(help="auto = CUDA when present, else CPU")] = None,
    data_dir: DataDir = None,
    json_: Annotated[Path | None, typer.Option("--json", help="also write every measurement to this JSON file")] = None,
) -> None:
    """CPU time and steps/s of cltui against a bare hand-written loop of the same training, per preset."""
    from rich.table import Table

    from engine.bench import DEFAULT_PRESETS, bench_presets, table_rows, write_json

    if repeats < 1 or (steps is not None and steps < 1):
        fail("--repeats and --steps must be at least 1")
    meta = {"steps": steps, "repeats": repeats, "device": device.value if device else "auto", "overrides": list(set_)}

    def save(so_far: list[Any]) -> None:  # after each preset, so an interrupted bench keeps what it measured
        if json_:
            write_json(json_, [m.summary() for m in so_far], meta)

    try:
        measured = bench_presets(list(presets or DEFAULT_PRESETS), steps, device.value if device else None,
                                 data_dir, repeats, list(set_), progress=lambda s: err_console.print(s, style="dim"),
                                 done=save)
    except CltuiError as e:
        fail(str(e))
    results = [m.summary() for m in measured]
    header, rows = table_rows(results)
    table = Table(*header, title="cltui bench (CPU time; bare/cltui > 1 means cltui costs less)")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for s in results:
        if s["bare_note"]:
            console.print(f"{s['preset']}: {s['bare_note']}")
    if json_:
        console.print(f"wrote {json_}")


def _plot_run(store: Any, run: str, whats: list[str], fmt: str, output: Path | None,
              baseline: str | None) -> tuple[list[Path], list[str]]:
    from rich.markup import escape

    from cltui.figures.export import write_figures
    from engine.store import read_run

    try:
        rec = read_run(store.find(run))
        base = read_run(store.find(baseline)) if baseline is not None else None
        written, skipped = write_figures(rec, whats, fmt, output or rec.run_dir / "figures", base)
    except CltuiError as e:
        fail(escape(str(e)))  # the line names a config table, e.g. [analyses.probes]: not markup
    if not written:
        fail(f"run {rec.run_id} has no data for any figure yet")
    return written, skipped


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
