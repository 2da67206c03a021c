"""The `?` help modal: what each screen shows and its keys, built from the screens' own HELP text
and BINDINGS (so it cannot drift from the footer)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GLOBAL_KEYS = (("1 2 3 4", "Presets · Runs · Live · Compare (or click the tabs)"),
               ("?", "this help"), ("ctrl+p", "command palette: screens, open a run by id, theme"),
               ("q", "quit (runs keep training; reopen cltui to see them)"),
               ("escape", "leave an input box"))


def _keys(bindings: list) -> list[tuple[str, str]]:
    out = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            out.append((b.key.replace("slash", "/"), b.description))
    return out


def help_text(screens: list[type[Screen]]) -> Group:
    parts = [Text("cltui — continual-learning runs in the terminal\n", style="bold")]
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column()
    for k, d in GLOBAL_KEYS:
        t.add_row(k, d)
    parts.append(t)
    for i, cls in enumerate(screens, 1):
        parts.append(Text(f"\n{i} {cls.MODE.capitalize()}", style="bold"))  # type: ignore[attr-defined]
        parts.append(Text(cls.HELP))  # type: ignore[attr-defined]
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold cyan", no_wrap=True)
        keys.add_column()
        for k, d in _keys(cls.BINDINGS):
            keys.add_row(k, d)
        parts.append(keys)
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """Every screen's purpose and keys."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, screens: list[type[Screen]]) -> None:
        super().__init__()
        self.screens = screens

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_text(self.screens))
            yield Static(Text("escape closes", style="dim"))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
