"""Instant start: what the first screens need is light, and listing runs opens only the run files that
changed.

- Importing the TUI app (and building it) in a fresh interpreter loads neither torch nor numpy, h5py or
  plotext; the Runs screen, drawn first, needs none of them either.
- `cltui runs` lists through the run index (engine/run_index.py): a second listing opens no run file,
  a changed run is read again, and with a fresh index the whole command loads neither numpy nor h5py.
- The index holds plain values (no arrays): an index of the first format is rebuilt.
- cltui.listing.fast_table draws the runs table byte for byte as rich's Table did, colours included.
- The command modules register in the order `cltui --help` has always listed them.

Behaviour only: the start-up times themselves are measured by tests/tui/bench_tui.py, not asserted.
"""

from __future__ import annotations

import io
import math
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from engine import events as ev

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "h5py", "plotext", "matplotlib")


def loaded_after(code: str) -> list[str]:
    """Which of HEAVY are in sys.modules after running `code` in a fresh interpreter."""
    probe = code + f"\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules) or '-')"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    return [] if last == "-" else last.split()


@pytest.mark.parametrize("module", ["cltui.tui.app", "cltui.tui.screens.runs", "cltui.tui.screens.presets",
                                   "cltui.tui.records", "cltui.tui.widgets", "cltui.views", "cltui.cli",
                                   "engine.store_dir", "engine.run_index", "engine.presentation", "engine.executor"])
def test_first_screen_modules_load_no_numpy_h5py_or_torch(module: str) -> None:
    assert loaded_after(f"import {module}") == []


def test_building_the_app_loads_no_numpy_h5py_or_torch(tmp_path: Path) -> None:
    code = ("from pathlib import Path\n"
            "from cltui.tui.app import create_app\n"
            "from cltui.tui.services import Settings\n"
            "from engine.executor import LocalExecutor\n"
            "from engine.store_dir import RunStore\n"
            f"s = Settings(runs_dir=Path({str(tmp_path)!r}))\n"
            "create_app(RunStore(s.runs_dir), LocalExecutor(s.runs_dir, detach=True), s)")
    assert loaded_after(code) == []


def _finished(run_dir: Path, final: float = 87.5, overrides: list[str] | None = None) -> None:
    from engine.store import RunWriter
    from tests.test_store import CONFIG, SERIES

    w = RunWriter.create(run_dir, run_id=run_dir.name, config=CONFIG,
                         environment={"device": "cpu", "overrides": overrides or []},
                         task_names=["a", "b"], phase_tasks=[[0], [1]], phase_steps=[5, 5], group="g1", series=SERIES)
    w(ev.InitialEvaluated([50.0, 51.0]))
    w(ev.PhaseEvaluated(0, [90.0, 40.0], 1.5))
    w(ev.PhaseEvaluated(1, [80.0, final], 1.5))
    w(ev.RunFinished({"during": 92.5, "final": final}, 3.0))
    w.close()


def test_cltui_runs_opens_only_the_run_files_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cltui.cli import app
    from engine import store_read
    from engine.run_index import INDEX_FILE
    from engine.store import RunWriter

    for name in ("a", "b", "c"):
        _finished(tmp_path / name)
    opened: list[str] = []
    real = store_read.read_run

    def counting(run_dir: Path, with_series: bool = True):  # noqa: ANN202
        opened.append(Path(run_dir).name)
        return real(run_dir, with_series=with_series)

    monkeypatch.setattr(store_read, "read_run", counting)
    runner = CliRunner()
    first = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert sorted(opened) == ["a", "b", "c"] and (tmp_path / INDEX_FILE).is_file()
    opened.clear()
    again = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path)])
    assert opened == [] and again.output == first.output  # nothing changed: no run file opened, same table
    w = RunWriter.reopen(tmp_path / "b", {})
    w.set_status("interrupted")
    w.close()
    third = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path)])
    assert opened == ["b"]  # only the changed run is read again
    assert "interrupted" in third.output and "interrupted" not in first.output


def test_listing_with_a_fresh_index_loads_no_numpy_or_h5py(tmp_path: Path) -> None:
    from engine.store_dir import RunStore

    for name in ("a", "b"):
        _finished(tmp_path / name)
    assert [s.run_id for s in RunStore(tmp_path).summaries()] == ["a", "b"]  # builds the index
    code = ("from cltui.cli import app\n"
            f"app(['runs', '--runs-dir', {str(tmp_path)!r}], standalone_mode=False)")
    assert loaded_after(code) == []
    # The same listing without an index reads the run files, and so loads h5py.
    (tmp_path / ".run-index.pkl").unlink()
    assert "h5py" in loaded_after(code)


def test_summaries_hold_what_the_listings_show(tmp_path: Path) -> None:
    from engine.presentation import metrics_of
    from engine.run_index import RunSummary
    from engine.store_dir import RunStore
    from engine.store_read import read_run

    _finished(tmp_path / "a", final=70.0, overrides=["training.lr=0.1"])
    (s,) = RunStore(tmp_path).summaries()
    rec = read_run(tmp_path / "a", with_series=False)
    assert isinstance(s, RunSummary) and s.run_dir == tmp_path / "a"
    assert (s.run_id, s.status, s.live_status, s.group, s.seed, s.progress) == \
        (rec.run_id, rec.status, rec.live_status, rec.group, rec.seed, rec.progress)
    assert s.metrics == metrics_of(rec) and metrics_of(s) == metrics_of(rec) and not math.isnan(s.metrics["bwt"])
    assert s.overrides == ("training.lr=0.1",)
    assert all(type(v) is float for v in s.metrics.values())  # plain values: loading them needs no numpy


def test_an_index_of_the_first_format_is_rebuilt(tmp_path: Path) -> None:
    from engine.run_index import INDEX_FILE, INDEX_VERSION
    from engine.store_dir import RunStore

    _finished(tmp_path / "a")
    stamp = (tmp_path / "a" / "run.h5").stat()
    old = {"version": 1, "runs": {"a": {"stamp": (stamp.st_mtime_ns, stamp.st_ctime_ns, stamp.st_size),
                                        "record": "a RunRecord with numpy arrays"}}}
    (tmp_path / INDEX_FILE).write_bytes(pickle.dumps(old))
    assert [s.run_id for s in RunStore(tmp_path).summaries()] == ["a"]
    assert pickle.loads((tmp_path / INDEX_FILE).read_bytes())["version"] == INDEX_VERSION == 2


def test_a_first_listing_shows_the_newest_runs_while_it_reads_the_rest(tmp_path: Path) -> None:
    from engine.run_index import RunIndex
    from engine.store_dir import RunStore

    for name in ("20250101-a", "20250102-b", "20250103-c"):
        _finished(tmp_path / name)
    seen: list[list[str]] = []
    got = RunIndex(tmp_path).summaries(RunStore(tmp_path).run_ids(), partial=lambda so_far: seen.append(
        [s.run_id for s in so_far]), every=0.0)
    assert [s.run_id for s in got] == ["20250101-a", "20250102-b", "20250103-c"]
    assert seen == [["20250103-c"], ["20250102-b", "20250103-c"], ["20250101-a", "20250102-b", "20250103-c"]]
    seen.clear()
    RunIndex(tmp_path).summaries(RunStore(tmp_path).run_ids(), partial=seen.append, every=0.0)
    assert seen == []  # all from the index: nothing read, nothing partial


def test_a_moved_runs_directory_keeps_its_index(tmp_path: Path) -> None:
    from engine.store_dir import RunStore

    _finished(tmp_path / "one" / "a")
    RunStore(tmp_path / "one").summaries()
    (tmp_path / "one").rename(tmp_path / "two")
    (s,) = RunStore(tmp_path / "two").summaries()
    assert s.run_dir == tmp_path / "two" / "a"  # the entry's run dir follows the directory


@pytest.mark.parametrize("color", [True, False])
@pytest.mark.parametrize("width", [200, 100])
def test_fast_runs_table_draws_what_rich_drew(tmp_path: Path, color: bool, width: int) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from cltui.views import runs_table, status_style
    from engine.presentation import fmt
    from engine.store_dir import RunStore

    for k, name in enumerate(("20250101-a-s0", "20250102-ß-s1", "20250103-long-run-name-s2")):
        _finished(tmp_path / name, final=60.0 + k)
    recs = RunStore(tmp_path).summaries()

    def rich_table() -> Table:  # what views.runs_table drew before cltui.listing
        wide = width >= 120
        t = Table(show_edge=False, pad_edge=False)
        cols = [("run", "left"), ("status", "left"), *([("benchmark", "left"), ("method", "left"), ("seed", "right")]
                                                       if wide else []), ("steps", "right"), ("during", "right"),
                ("final", "right")]
        for col, just in cols:
            t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        for r in recs:
            extra = [r.benchmark, r.method, str(r.seed)] if wide else []
            t.add_row(r.run_id, Text(r.live_status, style=status_style(r.live_status)), *extra,
                      f"{r.progress[0]}/{r.progress[1]}", fmt(r.metrics["during"]), fmt(r.metrics["final"]))
        return t

    def draw(renderable: object) -> str:
        c = Console(file=io.StringIO(), width=width, force_terminal=color, color_system="truecolor" if color else None)
        c.print(renderable)
        return c.file.getvalue()  # type: ignore[attr-defined]

    fast = runs_table(recs, width)
    assert isinstance(fast, Text)  # it fits: the fast table, not rich's
    assert draw(fast) == draw(rich_table())
    assert isinstance(runs_table(recs, 40), Table)  # too narrow: rich's Table shrinks the columns


def test_help_lists_the_commands_in_their_order() -> None:
    from typer.testing import CliRunner

    from cltui.cli import app

    out = CliRunner().invoke(app, ["--help"]).output
    names = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert names == ["run", "sweep", "resume", "watch", "runs", "show", "export", "plot", "bench", "presets"]
