"""The commands that list and show what exists: `cltui presets` (and `presets show`), `cltui runs`
and `cltui show`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cltui.commands.common import RunsDir, app, console, err_console, fail, find_group, presets_app, runs_root
from engine.errors import CltuiError

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
    if (grp := find_group(run, runs_dir)) is not None:
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
