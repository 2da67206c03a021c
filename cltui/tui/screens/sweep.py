"""The sweep launcher: a modal asking for the preset, the grid, the seeds and how many runs at a time, with
the same syntax as `cltui sweep` (`--grid key=v1,v2` becomes one `key=v1,v2` per line or separated by `;`).
It only collects the request; the app plans and drives the sweep (CltuiApp.start_sweep) and opens the
group view. Opened from the command palette ("Sweep…")."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


@dataclass(frozen=True)
class SweepRequest:
    """What the user asked for, as `cltui sweep` would receive it."""

    preset: str
    grid: list[str]
    overrides: list[str]
    seeds: int
    parallel: int


def split_items(text: str) -> list[str]:
    """'training.lr=0.1,0.01; method.lambda=1,10' → one item per `;`-separated part (empty ones dropped)."""
    return [p.strip() for p in text.split(";") if p.strip()]


class SweepScreen(ModalScreen[SweepRequest | None]):
    """Ask for a sweep: preset, grid (key=v1,v2; ...), overrides, seeds, runs at a time. Enter starts it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    # Here rather than in app.tcss: the modal's layout travels with it (app.tcss is being reworked beside it).
    DEFAULT_CSS = """
    SweepScreen { align: center middle; }
    SweepScreen #sweep-box { width: 80%; max-width: 100; height: auto; border: round $accent; padding: 0 1; }
    SweepScreen #sweep-error { color: $error; }
    SweepScreen .sweep-label { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, preset: str = "") -> None:
        super().__init__()
        self.preset = preset

    def compose(self) -> ComposeResult:
        with Vertical(id="sweep-box"):
            yield Label("sweep: grid × seeds, one group · enter starts · esc cancels", id="sweep-title")
            # Compact (one-line) inputs under one-line labels: the whole form fits an 80×24 terminal.
            for label, name, value, placeholder in (
                    ("preset", "preset", self.preset, "e.g. split-mnist/ewc"),
                    ("grid (--grid), ';' between keys", "grid", "", "e.g. training.lr=0.01,0.001; method.ewc_lambda=1,10"),
                    ("overrides for every run (--set), ';' between", "overrides", "", "key=value; ..."),
                    ("seeds per grid point", "seeds", "1", ""), ("runs at a time", "parallel", "1", "")):
                yield Label(label, classes="sweep-label")
                yield Input(value, placeholder=placeholder, id=f"sweep-{name}", compact=True,
                            type="integer" if name in ("seeds", "parallel") else "text")
            yield Label("", id="sweep-error")

    def on_mount(self) -> None:
        self.query_one("#sweep-grid" if self.preset else "#sweep-preset", Input).focus()

    @on(Input.Submitted)
    def _submit(self) -> None:
        def value(name: str) -> str:
            return self.query_one(f"#sweep-{name}", Input).value.strip()

        seeds, parallel = value("seeds") or "1", value("parallel") or "1"
        error = ("give a preset" if not value("preset") else "give at least one grid key=v1,v2" if not value("grid")
                 else "seeds and runs at a time are whole numbers ≥ 1"
                 if not (seeds.isdigit() and parallel.isdigit() and int(seeds) >= 1 and int(parallel) >= 1) else "")
        if error:
            self.query_one("#sweep-error", Label).update(error)
            return
        self.dismiss(SweepRequest(value("preset"), split_items(value("grid")), split_items(value("overrides")),
                                  int(seeds), int(parallel)))

    def action_cancel(self) -> None:
        self.dismiss(None)
