"""The commands that start and follow runs: `cltui run`, `sweep`, `resume`, `watch`, with the
Ctrl-C handling and the end-of-run report they share. Runs are planned by engine.planning, started
by engine.executor (a `python -m engine` child per run) and shown from the run store.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cltui.commands.common import DataDir, Device, ExecutorKind, RunsDir, app, console, err_console, fail, find_group, runs_root
from engine.errors import CltuiError, RunStoreError
from engine.runlock import still_running

if TYPE_CHECKING:
    from engine.executor import LocalExecutor, Outcome, RunHandle
    from engine.planning import PlannedRun

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
             resume_dir: Path | None = None, ensemble: bool = False) -> int:
    """Start the planned runs (or resume one) through the local executor and show them; the exit code.
    `ensemble`: all the runs in one process (engine/ensemble.py), reported as they end."""
    from cltui.live import follow
    from engine.executor import Outcome, RunStartError, exit_code, run_all, run_together

    executor = _executor(runs_dir, data_dir)
    parallel = len(runs) if ensemble else parallel
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
        elif ensemble:
            outcomes = run_together(executor, runs, on_start=on_start,
                                    on_end=lambda o: _report_end(o, live, brief=True,
                                                                 killed=o.handle is not None and intr.was_killed(o.handle)))
        else:
            outcomes = run_all(executor, runs, parallel, on_start=on_start, halt=lambda: intr.stopping,
                               on_end=lambda o: _report_end(o, live, brief=parallel > 1,
                                                            killed=o.handle is not None and intr.was_killed(o.handle)))
    return exit_code(outcomes)


def _ensemble_fits(planned: list[PlannedRun]) -> bool:
    """Whether `--ensemble` can batch these runs; if not, say why: they then run as separate processes,
    all at once (K processes sharing the device). Members that cannot share a process at all: one line."""
    from engine.ensemble import check_members, config_reason

    try:
        check_members([r.config for r in planned])
    except CltuiError as e:
        fail(f"--ensemble: {e}")
    reason = config_reason(planned[0].config)
    if reason is None:
        console.print(f"ensemble: {len(planned)} runs in one process, one batched forward per step", highlight=False)
        return True
    console.print(f"[yellow]--ensemble: {reason}, so its forwards cannot batch; starting {len(planned)} "
                  "processes at once instead[/yellow]", highlight=False)
    return False


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
    ensemble: Annotated[bool, typer.Option("--ensemble", help="train all the planned runs (seeds, grid points) in one process as a batched ensemble; each equals its run alone")] = False,
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
    if ensemble and len(planned) > 1:
        ensemble = _ensemble_fits(planned)
        parallel = parallel if ensemble else len(planned)
    else:
        ensemble = False
    code = _execute(planned, runs_dir, data_dir, live and sys.stdout.isatty(), parallel, ensemble=ensemble)
    if code == 0:
        from cltui.commands.browse import show

        for g in groups:
            show(g, runs_dir)
    raise typer.Exit(code)


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
    from cltui.commands.browse import show  # not at the top: the commands register in help order

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

    if (grp := find_group(run, runs_dir)) is not None:
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
