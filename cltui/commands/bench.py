"""`cltui bench`: cltui's CPU time and steps/s against a bare hand-written loop (engine.bench)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cltui.commands.common import DataDir, Device, app, console, err_console, fail
from engine.errors import CltuiError

@app.command()
def bench(
    presets: Annotated[list[str] | None, typer.Argument(help="presets to measure (default: split-mnist/finetune, split-mnist/ewc, ssmnist/finetune-m1, ssmnist/ewc-m1)")] = None,
    steps: Annotated[int | None, typer.Option(help="steps per task instead of the preset's (shorter, but evaluation then weighs more)")] = None,
    repeats: Annotated[int, typer.Option(help="interleaved rounds of bare loop and cltui run per preset (min and median reported)")] = 3,
    set_: Annotated[list[str], typer.Option("--set", help="override a config key in both loops, e.g. --set model.hidden=[100,100]")] = [],  # noqa: B006
    device: Annotated[Device | None, typer.Option(help="auto = CUDA when present, else CPU")] = None,
    data_dir: DataDir = None,
    json_: Annotated[Path | None, typer.Option("--json", help="also write every measurement to this JSON file")] = None,
    ensemble: Annotated[str | None, typer.Option("--ensemble", help="instead: throughput of N runs of each preset as one batched ensemble and as N processes, e.g. --ensemble 1,2,4,8")] = None,
) -> None:
    """CPU time and steps/s of cltui against a bare hand-written loop of the same training, per preset."""
    from rich.table import Table

    from engine.bench import DEFAULT_PRESETS, bench_presets, table_rows, write_json

    if repeats < 1 or (steps is not None and steps < 1):
        fail("--repeats and --steps must be at least 1")
    if ensemble is not None:
        _bench_ensemble(presets or ["split-mnist/finetune"], ensemble, steps, device, data_dir, list(set_), json_)
        return
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


def _bench_ensemble(presets: list[str], sizes_text: str, steps: int | None, device: Device | None,
                    data_dir: Path | None, overrides: list[str], json_: Path | None) -> None:
    """`cltui bench --ensemble N,...`: the throughput table per preset (engine/bench/ensemble.py)."""
    from rich.table import Table

    from engine.bench import write_json
    from engine.bench.ensemble import bench_ensemble, ensemble_table

    try:
        sizes = [int(v) for v in sizes_text.split(",")]
    except ValueError:
        fail(f"--ensemble {sizes_text!r}: give run counts separated by commas, e.g. 1,2,4,8")
    if not sizes or min(sizes) < 1:
        fail(f"--ensemble {sizes_text!r}: every count must be at least 1")
    if 1 not in sizes:
        sizes = [1, *sizes]  # the speed-up is against one run
    measured: list[dict[str, Any]] = []
    for preset in presets:
        try:
            rows = bench_ensemble(preset, sorted(set(sizes)), steps, device.value if device else None,
                                  str(data_dir) if data_dir else None, overrides,
                                  progress=lambda t: err_console.print(t, style="dim"))
        except CltuiError as e:
            fail(str(e))
        measured.append({"preset": preset, "rows": rows})
        if json_:
            write_json(json_, measured, {"steps": steps, "ensemble": sizes, "overrides": overrides})
        header, table_rows = ensemble_table(rows)
        table = Table(*header, title=f"{preset}: runs × steps per second of wall time (data loading left out)")
        for row in table_rows:
            table.add_row(*row)
        console.print(table)
        for note in {r["note"] for r in rows if r["note"]}:
            console.print(note, highlight=False)
    if json_:
        console.print(f"wrote {json_}")
