"""The Presets screen: shipped presets grouped by benchmark and method, their TOML, reference
result and every option with its help text, overrides validated live against the config schema,
and launch.

Reads presets through engine.presets (torch-free); launching is the app's job (`app.start_runs`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Static, Tree

from cltui.tui.advice import tui_advice
from cltui.tui.widgets import KeysFooter, NavBar
from cltui.views import fmt
from engine.errors import CltuiError
from engine.presentation import phase_length_label
from engine.provenance import source_words, strip_internal

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.presets import PresetInfo

# engine.presets (and engine.config, ~20-40 ms) is imported where it is used — the loading worker
# first — so the first screen is drawn without it. Validating a preset needs the component registry,
# which imports torch (~1.5 s): the loading worker fills it (engine.catalog.load_all) off the UI thread
# before the list appears, so selecting and validating never wait for torch on the UI thread.


def options_grid(cfg: RunConfig) -> Table:
    """Every option of `cfg` (components included): key, value, help text."""
    from engine.catalog import option_docs

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(style="dim", ratio=1)
    for doc in option_docs(cfg):
        grid.add_row(doc.key, doc.value_text, strip_internal(doc.help))
    return grid


def parse_overrides(text: str) -> list[str]:
    """'training.lr=0.01 seed=3' (shell-style quoting, commas allowed) → ['training.lr=0.01', 'seed=3']."""
    try:
        words = shlex.split(text)
    except ValueError:  # an unclosed quote while typing
        words = text.split()
    return [w.rstrip(",") for w in words if w.strip(",")]


def preset_matches(info: PresetInfo, query: str) -> bool:
    hay = f"{info.name} {info.benchmark} {info.method} {info.description}".lower()
    return all(w in hay for w in query.lower().split())


def _short_path(path: Path) -> str:
    """A shipped preset's path from the package folder (presets/split-mnist/ewc.toml); others in full."""
    from engine.presets import presets_root

    try:
        return path.relative_to(presets_root().parent).as_posix()
    except ValueError:
        return str(path)


class PresetsScreen(Screen[None]):
    """Pick a preset, adjust it with overrides, launch it."""

    MODE = "presets"
    AUTO_FOCUS = "#preset-tree"
    HELP = ("Presets are grouped by benchmark, then method. `/` filters them; the right pane shows the "
            "preset's reference result and TOML. Overrides are `key=value` words (e.g. `training.lr=0.01 "
            "seed=3`), checked against the config schema as you type. Enter in the overrides box, the "
            "Launch button or `l` starts the run in its own process and opens its live view; with N seeds "
            "the runs start together as one seed group.")
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("l", "launch", "Launch"),
        Binding("o", "focus_overrides", "Overrides"),
        Binding("escape", "leave_input", "Back to list"),
    ]

    @dataclass
    class Loaded(Message):
        """The preset list, read in a worker."""

        infos: list[PresetInfo]
        errors: list[str]

    def __init__(self) -> None:
        super().__init__()
        self._infos: list[PresetInfo] = []
        self._current: str | None = None
        self._cfg: RunConfig | None = None
        self._no_match = False  # the header says "no preset matches": redraw it once presets show again

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        with Horizontal(id="presets-body"):
            with Vertical(id="preset-list"):
                yield Input(placeholder="/ filter presets", id="preset-filter", compact=True)
                tree: Tree[str] = Tree("presets", id="preset-tree")
                tree.show_root = False
                yield tree
            with Vertical(id="preset-detail"):
                with VerticalScroll(id="preset-info"):
                    yield Static("loading presets…", id="preset-head")
                    yield Static("", id="preset-toml")
                with Horizontal(id="launch-row"):
                    yield Input(placeholder="overrides, e.g. training.lr=0.01 seed=3",
                                id="overrides", compact=True)
                    yield Label("seeds", id="seeds-label")
                    yield Input("1", id="seeds", type="integer", compact=True)
                    yield Button("Launch", id="launch", variant="primary", compact=True)
                yield Static("", id="override-status")
        yield KeysFooter()

    def on_screen_resume(self) -> None:
        # Coming back (1 from another screen) lands on the list, never in a text box: a box would
        # swallow the next screen digit ("1 2 1 2" typed 2 into the seeds box) or Enter would launch.
        if isinstance(self.focused, Input):
            self.query_one("#preset-tree", Tree).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Footer hints follow focus: letter keys type into a text box, so hide them there; Escape
        (back to the list) is shown only in a box."""
        in_box = isinstance(self.focused, Input)
        if action in ("filter", "launch", "focus_overrides"):
            return not in_box
        if action == "leave_input":
            return in_box
        return True

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self) -> None:
        self.refresh_bindings()

    def on_mount(self) -> None:
        # After the first frame: the worker's imports (engine.config, pygments) would otherwise
        # compete with it for the GIL.
        self.call_after_refresh(self._load)

    @work(thread=True, exclusive=True, group="presets-load")
    def _load(self) -> None:
        import rich.syntax  # noqa: F401  - pygments (~40 ms) imported here, off the UI thread, for _select
        from engine.catalog import load_all
        from engine.presets import preset_info, preset_names

        infos, errors = [], []
        for name in preset_names():
            try:
                infos.append(preset_info(name))
            except CltuiError as e:
                errors.append(f"{name}: {e}")
        load_all()  # the component registry (and torch): see the note at the top
        self.post_message(self.Loaded(infos, errors))

    def on_presets_screen_loaded(self, msg: Loaded) -> None:
        self._infos = msg.infos
        for err in msg.errors:
            self.notify(err, title="preset skipped", severity="warning")
        self._rebuild_tree(self.query_one("#preset-filter", Input).value)
        tree = self.query_one("#preset-tree", Tree)
        if self.focused is None or self.focused is tree:
            tree.focus()

    # -- the grouped list ----------------------------------------------------------------------
    def _rebuild_tree(self, query: str) -> None:
        tree: Tree[str] = self.query_one("#preset-tree", Tree)
        tree.clear()
        shown = [i for i in self._infos if preset_matches(i, query)]
        by_bench: dict[str, dict[str, list[PresetInfo]]] = {}
        for info in shown:
            by_bench.setdefault(info.benchmark, {}).setdefault(info.method, []).append(info)
        first = None
        for bench, methods in sorted(by_bench.items()):
            b = tree.root.add(Text(bench, style="bold"), expand=True)
            for method, infos in sorted(methods.items()):
                m = b.add(Text(method, style="cyan"), expand=True)
                for info in infos:
                    label = Text(info.name.rsplit("/", 1)[-1])
                    if info.ref_during is not None or info.ref_final is not None:
                        label.append(f"  {fmt(info.ref_during, 1)}/{fmt(info.ref_final, 1)}", style="dim")
                    leaf = m.add_leaf(label, data=info.name)
                    first = first or leaf
        if not shown:
            self.query_one("#preset-head", Static).update(Text(f"no preset matches {query!r}", style="yellow"))
            self._no_match = True
        elif first is not None and (self._current is None or not any(i.name == self._current for i in shown)):
            self._select(first.data)
        elif self._no_match and self._current is not None:
            self._select(self._current)  # the header still says "no preset matches": show the preset again
        # Put the cursor on the selected preset once the new nodes are laid out.
        self.call_after_refresh(self._cursor_to_current)

    def _cursor_to_current(self) -> None:
        tree: Tree[str] = self.query_one("#preset-tree", Tree)
        for line in range(tree.last_line + 1):
            node = tree.get_node_at_line(line)
            if node is not None and node.data == self._current:
                tree.cursor_line = line
                return

    @on(Input.Changed, "#preset-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._rebuild_tree(event.value)

    @on(Input.Submitted, "#preset-filter")
    def _filter_done(self) -> None:
        self.query_one("#preset-tree", Tree).focus()

    @on(Tree.NodeHighlighted, "#preset-tree")
    def _highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        if event.node.data and event.node.data != self._current:
            self._select(event.node.data)

    @on(Tree.NodeSelected, "#preset-tree")
    def _chosen(self, event: Tree.NodeSelected[str]) -> None:
        if event.node.data:
            self.query_one("#overrides", Input).focus()

    # -- details and validation ----------------------------------------------------------------
    def _select(self, name: str) -> None:
        from engine.presets import load_preset

        self._current = name
        self._no_match = False
        info = next(i for i in self._infos if i.name == name)
        head = Text()
        head.append(name, style="bold")
        head.append(f"  {info.benchmark} · {info.method}\n", style="cyan")
        if info.description:
            head.append(info.description + "\n")
        options: Table | None = None
        try:
            cfg = load_preset(name)
            options = options_grid(cfg)
            ref = cfg.reference
            head.append("reference  ", style="bold")
            head.append(f"during {fmt(ref.during)} · final {fmt(ref.final)}"
                        + ("" if ref.final_meaningful else " (final not meaningful)") + "\n")
            if ref.source:
                words = source_words(ref.source, ref.notes, ref.during is not None or ref.final is not None)
                head.append("source     ", style="dim")
                head.append(words.label + "\n", style="dim" if words.verified else "yellow")
            if ref.notes:
                head.append(f"notes      {strip_internal(ref.notes)}\n", style="dim")
        except CltuiError as e:
            head.append(str(e) + "\n", style="red")
        head.append(f"file       {_short_path(info.path)}", style="dim")
        self.query_one("#preset-head", Static).update(head)
        from rich.syntax import Syntax  # pygments costs ~40 ms: only once a preset is shown

        try:
            toml = info.path.read_text()
        except OSError as e:
            toml = f"# cannot read: {e.strerror}"
        parts = [Text(""), Syntax(toml, "toml", theme="ansi_dark", background_color="default", word_wrap=True)]
        if options is not None:
            parts += [Text("options", style="bold"), options]
        self.query_one("#preset-toml", Static).update(Group(*parts))
        self._validate()

    @on(Input.Changed, "#overrides")
    @on(Input.Changed, "#seeds")
    def _validate(self) -> None:
        """Resolve the preset with the overrides; show the ConfigError line or what would run.
        Synchronous on purpose: reading one small TOML and validating it takes about a millisecond."""
        status = self.query_one("#override-status", Static)
        button = self.query_one("#launch", Button)
        self._cfg = None
        if self._current is None:  # (the seeds box's first Changed comes before any preset is loaded)
            status.update("")
            button.disabled = True
            return
        from engine.planning import plan

        try:
            runs = plan(self._current, parse_overrides(self.query_one("#overrides", Input).value), self._seeds())
        except CltuiError as e:
            msg = tui_advice(str(e))  # the engine's one line, its CLI flags in the TUI's words
            status.update(Text("✗ " + msg, style="bold red"))
            button.disabled = True
            return
        cfg = self._cfg = runs[0].config
        tr = cfg.training
        seeds = [r.config.seed for r in runs]
        seeds_txt = f"seeds {seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
        status.update(Text(f"✓ {cfg.benchmark.name} · {cfg.method.name} · {cfg.model.name} · "
                           f"{phase_length_label(tr)} · lr {tr.lr:g} · {seeds_txt} · device {cfg.device}",
                           style="green"))
        button.disabled = False

    def _seeds(self) -> int:
        raw = self.query_one("#seeds", Input).value.strip() or "1"
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if not 1 <= n <= 32:
            raise CltuiError(f"seeds {raw!r}: give a whole number of seeds from 1 to 32")
        return n

    # -- actions -------------------------------------------------------------------------------
    def action_filter(self) -> None:
        self.query_one("#preset-filter", Input).focus()

    def action_focus_overrides(self) -> None:
        self.query_one("#overrides", Input).focus()

    def action_leave_input(self) -> None:
        f = self.query_one("#preset-filter", Input)
        if self.focused is f and f.value:
            f.value = ""
        self.query_one("#preset-tree", Tree).focus()

    @on(Input.Submitted, "#overrides")
    @on(Input.Submitted, "#seeds")
    @on(Button.Pressed, "#launch")
    def action_launch(self) -> None:
        self._validate()
        if self._cfg is None:
            self.notify("fix the overrides first (see the red line)", severity="error")
            return
        # Seeds and groups are planned by the engine (engine.planning), from the same preset and overrides.
        overrides = parse_overrides(self.query_one("#overrides", Input).value)
        assert self._current is not None  # a validated config implies a chosen preset
        self.app.start_runs(self._current, overrides, self._seeds())  # type: ignore[attr-defined]
