"""The Runs screen: every stored run with its live status and metrics, seed groups as mean ± std;
filter, sort, open, mark for comparison, resume and delete (after a confirmation).

The runs come from the app's store poller (about once a second) as engine.run_index.RunSummary, read
through the run index; this screen only draws them, and never needs numpy or h5py to do so.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from cltui.tui.records import SORT_KEYS, matches, sort_records
from cltui.tui.run_rows import GROUP_COLUMNS, RUN_COLUMNS, SORT_OF_COLUMN, group_records, group_row, run_row, runs_hint
from cltui.tui.screens.confirm import ConfirmScreen
from cltui.tui.widgets import GroupsTable, KeysFooter, NavBar, RowsTable
from engine.presentation import (
    STD_LABEL,
    GroupStats,
    group_stats,
    resume_of,
)
from engine.runlock import still_running
from engine.run_index import RunSummary

class RunsScreen(Screen[None]):
    """All stored runs."""

    MODE = "runs"
    AUTO_FOCUS = "#runs-table"
    HELP = ("Every run in the runs directory, refreshed about once a second, including runs started "
            "elsewhere with `cltui run`. A 'running' run whose process is gone shows as interrupted; "
            "a run whose loss became non-finite stopped there as diverged. "
            "`/` filters by words (id, status, preset, benchmark, method, s<seed>, group); `s` cycles "
            "the sort order, `S` reverses it, or click a column header. Enter opens a run live; space "
            "marks runs and `c` compares the marked ones (enter on a seed group compares its runs). "
            "`u` clears the marks. `r` resumes an interrupted or failed run; `x` stops a running one (or every "
            "running run of the focused seed group); `d` deletes a run after asking. Home/g and End/G jump to the "
            "first and last row; Tab moves between the runs and groups tables, and keys act on the focused one.")
    BINDINGS = [
        Binding("enter", "open", "Open", show=True),
        Binding("space", "mark", "Mark"),
        Binding("u", "clear_marks", "Clear marks"),
        Binding("c", "compare", "Compare"),
        Binding("r", "resume", "Resume"),
        Binding("x", "stop", "Stop"),
        Binding("d", "delete", "Delete"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "leave_filter", "Back to list"),
    ]

    @dataclass
    class Deleted(Message):
        """A run directory was removed (or could not be)."""

        run_id: str
        error: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[RunSummary] = []
        self.marked: set[str] = set()
        self.sort_key = "created"
        self.sort_reverse = True  # newest first
        self._rows: list[tuple] = []
        self._group_rows: list[tuple] = []
        self._shown: list[RunSummary] = []
        self._groups: list[GroupStats] = []
        self._groups_ready = False  # set once the first seed groups were drawn (after the list)

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        with Vertical(id="runs-body"):
            yield Input(placeholder="/ filter: words in id, status, preset, method, s<seed>, group",
                        id="runs-filter", compact=True)
            table = RowsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            for key, label in RUN_COLUMNS:
                table.add_column(label, key=key)
            yield table
            yield Static("", id="groups-title")
            groups = GroupsTable(id="groups-table", cursor_type="row")
            for col in GROUP_COLUMNS:
                groups.add_column(col, key=col)
            yield groups
            yield Static("", id="runs-failed")
            yield Static("", id="runs-hint")
        yield KeysFooter()

    # -- keys follow focus ----------------------------------------------------------------------
    def _groups_focused(self) -> bool:
        return self.focused is not None and self.focused.id == "groups-table"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Footer hints match the focused widget: run actions on the runs table only (the groups
        table opens a comparison and stops its runs); nothing but Back while typing a filter."""
        if isinstance(self.focused, Input):
            return action == "leave_filter"
        if action == "leave_filter":
            return False
        if action in ("mark", "resume", "delete", "open") and self._groups_focused():
            return False
        if action == "clear_marks":
            return bool(self.marked)
        if action == "stop":
            rec = self.current_record() if not self._groups_focused() else None
            if rec is not None:
                return rec.live_status == "running"
            g = self._current_group()
            return g is not None and any(r.live_status == "running" for r in group_records(g, self.records))
        if action == "resume" and not self._groups_focused():
            rec = self.current_record()
            return rec is not None and resume_of(rec).possible
        return True

    def on_screen_resume(self) -> None:
        # Coming back lands on the runs list, never in the filter box (it would swallow screen digits).
        if isinstance(self.focused, Input):
            self.query_one("#runs-table", DataTable).focus()

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self) -> None:
        self.refresh_bindings()

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.refresh_bindings()  # Stop/Resume depend on the row under the cursor

    def show_failures(self, failures: list[tuple[str, str, str]]) -> None:
        """Launches that failed before a run file existed, newest first (kept until the TUI quits)."""
        box = self.query_one("#runs-failed", Static)
        box.display = bool(failures)
        out = Text()
        for k, (when, what, error) in enumerate(failures[:2]):
            out.append(("\n" if k else "") + f"✗ {when} could not start {what}: ", style="bold red")
            out.append(error, style="red")
        box.update(out)

    def on_mount(self) -> None:
        self.show_failures(getattr(self.app, "launch_failures", []))
        self.show_records(getattr(self.app, "latest_records", []))
        self.query_one("#runs-table", DataTable).focus()

    # -- drawing -------------------------------------------------------------------------------
    def show_records(self, records: list[RunSummary]) -> None:
        """Redraw from the store's records (rows are rebuilt only when their text changed)."""
        self.records = list(records)
        if self.query("#runs-table"):  # composed yet? (else on_mount draws)
            self._redraw()

    def _redraw(self) -> None:
        query = self.query_one("#runs-filter", Input).value
        shown = sort_records([r for r in self.records if matches(r, query)], self.sort_key, self.sort_reverse)
        rows = [run_row(r, r.run_id in self.marked) for r in shown]
        table = self.query_one("#runs-table", DataTable)
        if rows != self._rows:
            current = self.current_run_id()
            table.clear()
            for row in rows:
                table.add_row(*row[1:], key=row[0])
            self._rows = rows
            if current is not None and current in {r.run_id for r in shown}:
                table.move_cursor(row=table.get_row_index(current), animate=False)
        self._shown = shown
        self.refresh_bindings()
        if self._groups_ready or not any(r.group for r in shown):
            self._redraw_groups()
        else:
            # The first list of runs is drawn before the seed groups below it: their mean ± std load
            # numpy (~0.1 s), which the list itself does not need (the TUI's first screen, ≤ 0.5 s).
            self._groups_ready = True
            self.call_after_refresh(self._redraw_groups)
        self._redraw_hint()

    def _redraw_groups(self) -> None:
        shown = self._shown
        self._groups = group_stats(shown)
        grows = [group_row(g, self.records) for g in self._groups]
        gtable = self.query_one("#groups-table", DataTable)
        if grows != self._group_rows:
            gtable.clear()
            for row in grows:
                gtable.add_row(*row, key=row[0])
            self._group_rows = grows
        has_groups = bool(grows)
        gtable.display = has_groups
        title = self.query_one("#groups-title", Static)
        title.display = has_groups
        title.update(Text(f"seed groups: mean ± {STD_LABEL} over the group's n runs", style="bold"))

    def _redraw_hint(self) -> None:
        hint = runs_hint(len(self._shown), self.records, self.sort_key, self.sort_reverse, len(self.marked))
        self.query_one("#runs-hint", Static).update(Text(hint, style="dim"))

    # -- selection helpers ---------------------------------------------------------------------
    def current_run_id(self) -> str | None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # cursor outside the rows while the table is rebuilt
            return None

    def select_run(self, run_id: str) -> bool:
        """Put the cursor on `run_id` in the runs table (clearing a filter that hides it) and focus it."""
        if run_id not in {r.run_id for r in self._shown}:
            self.query_one("#runs-filter", Input).value = ""
            self._redraw()
        table = self.query_one("#runs-table", DataTable)
        table.focus()
        try:
            table.move_cursor(row=table.get_row_index(run_id), animate=False)
        except Exception:  # not (yet) in the table: the run was deleted or not polled yet
            self.notify(f"run {run_id} is not in the list")
            return False
        return True

    def current_record(self) -> RunSummary | None:
        rid = self.current_run_id()
        return next((r for r in self._shown if r.run_id == rid), None)

    # -- events and actions --------------------------------------------------------------------
    @on(Input.Changed, "#runs-filter")
    def _filtered(self) -> None:
        self._redraw()

    @on(Input.Submitted, "#runs-filter")
    def _filter_done(self) -> None:
        self.query_one("#runs-table", DataTable).focus()

    @on(DataTable.HeaderSelected, "#runs-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = SORT_OF_COLUMN.get(str(event.column_key.value))
        if key is None:
            return
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, key in ("created",)
        self._redraw()

    @on(DataTable.RowSelected, "#runs-table")
    def _row_selected(self) -> None:
        self.action_open()

    @on(DataTable.RowSelected, "#groups-table")
    def _group_selected(self, event: DataTable.RowSelected) -> None:
        g = next((g for g in self._groups if g.group == event.row_key.value), None)
        if g is not None:
            self.app.compare_runs([self.app.store.root / rid for rid in g.runs])  # type: ignore[attr-defined]

    def action_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_leave_filter(self) -> None:
        f = self.query_one("#runs-filter", Input)
        if self.focused is f and f.value:
            f.value = ""
        self.query_one("#runs-table", DataTable).focus()

    def action_sort(self) -> None:
        i = SORT_KEYS.index(self.sort_key)
        self.sort_key = SORT_KEYS[(i + 1) % len(SORT_KEYS)]
        self.sort_reverse = self.sort_key == "created"
        self._redraw()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._redraw()

    def action_open(self) -> None:
        if self.focused is self.query_one("#groups-table", DataTable):
            return  # RowSelected of the groups table handles it
        rec = self.current_record()
        if rec is not None:
            self.app.open_run(rec.run_dir)  # type: ignore[attr-defined]

    def _current_group(self) -> GroupStats | None:
        gtable = self.query_one("#groups-table", DataTable)
        if gtable.row_count == 0:
            return None
        try:
            key = gtable.coordinate_to_cell_key(gtable.cursor_coordinate).row_key.value
        except Exception:  # cursor outside the rows while the table is rebuilt
            return None
        return next((g for g in self._groups if g.group == key), None)

    def action_clear_marks(self) -> None:
        self.marked.clear()
        self._redraw()

    def action_stop(self) -> None:
        """Ask the run under the cursor (or every running run of the focused group) to checkpoint and stop."""
        if self._groups_focused():
            g = self._current_group()
            recs = [r for r in group_records(g, self.records) if r.live_status == "running"] if g else []
        else:
            rec = self.current_record()
            recs = [rec] if rec is not None and rec.live_status == "running" else []
        if not recs:
            self.notify("nothing running here to stop")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                for rec in recs:
                    self.app.stop_run(rec)  # type: ignore[attr-defined]
                self.notify(f"asked {len(recs)} run(s) to checkpoint and stop")

        names = ", ".join(r.run_id for r in recs[:4]) + (" …" if len(recs) > 4 else "")
        self.app.push_screen(ConfirmScreen(f"Stop {len(recs)} run(s)?", f"{names}\nEach checkpoints and stops; "
                                           "r resumes it later.", yes="Stop"), answer)

    def action_mark(self) -> None:
        if self._groups_focused():
            return  # marks are for runs (the footer does not offer it here)
        rid = self.current_run_id()
        if rid is None:
            return
        self.marked.symmetric_difference_update({rid})
        self._redraw()
        table = self.query_one("#runs-table", DataTable)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_compare(self) -> None:
        marked = [r for r in self.records if r.run_id in self.marked]
        if len(marked) < 2:
            self.notify("mark two or more runs with space first")
            return
        self.app.compare_runs([r.run_dir for r in marked])  # type: ignore[attr-defined]

    def action_resume(self) -> None:
        if self._groups_focused():
            return
        rec = self.current_record()
        if rec is None:
            return
        res = resume_of(rec)
        if not res.possible:
            self.notify(f"run {rec.run_id}: {res.text}")
            return
        self.app.resume_run(rec.run_dir)  # type: ignore[attr-defined]

    def action_delete(self) -> None:
        if self._groups_focused():
            return  # deleting a whole group from a key meant for one run is not offered
        rec = self.current_record()
        if rec is None:
            return
        if rec.live_status == "running":
            self.notify(f"{still_running(rec.run_dir)}; stop it first (x)",
                        severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._delete(rec.run_id, rec.run_dir)

        self.app.push_screen(ConfirmScreen(f"Delete run {rec.run_id}?",
                                           f"This removes {rec.run_dir}\n(its record and checkpoint).", yes="Delete"), answer)

    @work(thread=True, group="runs-delete")
    def _delete(self, run_id: str, run_dir: Path) -> None:
        try:
            self.app.store.delete(run_dir)  # type: ignore[attr-defined]  # only a dir holding run.h5
            err = ""
        except (OSError, shutil.Error) as e:
            err = str(e)
        self.post_message(self.Deleted(run_id, err))

    def on_runs_screen_deleted(self, msg: Deleted) -> None:
        if msg.error:
            self.notify(f"could not delete {msg.run_id}: {msg.error}", severity="error")
            return
        self.marked.discard(msg.run_id)
        self.records = [r for r in self.records if r.run_id != msg.run_id]
        self._redraw()
        self.notify(f"deleted {msg.run_id}")
        self.app.poll_now()  # type: ignore[attr-defined]
