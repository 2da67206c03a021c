"""Issue 15 CLI defects: `cltui runs` newest first with whole ids at 80 columns, and the frame a
live view leaves after Ctrl-C shows neither '[running]' as if followed nor a stale ETA."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cltui.cli import app
from cltui.live import follow
from engine import events as ev

from .tui.conftest import finished_run, start_run


def test_runs_lists_newest_first_and_never_wraps_ids_at_80_columns(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [f"2025010{k}-00000{k}-split-mnist-ewc-s{k}-abcd" for k in (1, 2, 3)]
    for k, rid in enumerate(ids, 1):
        finished_run(tmp_path, rid, seed=k, created=f"2025-01-0{k}T00:00:00")
    import cltui.cli

    monkeypatch.setattr(cltui.cli.console, "width", 80)  # a terminal 80 columns wide
    r = CliRunner().invoke(app, ["runs", "--runs-dir", str(tmp_path)], catch_exceptions=False, terminal_width=80)
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "split-mnist" in ln]
    assert len(lines) == 3 and all(len(ln) <= 80 for ln in lines)
    assert [next(i for i in ids if i in ln) for ln in lines] == ids[::-1]  # whole ids, newest first


def test_ctrl_c_leaves_no_stale_running_or_eta(tmp_path: Path) -> None:
    run = start_run(tmp_path, "going")
    run.run_phases(1)
    run.writer(ev.StepLogged(150, 1, {"loss": 0.5, "task_loss": 0.5, "penalty": 0.0, "train_acc": 90.0,
                                      "grad_norm": 1.0, "lr": 1e-3}, steps_per_sec=100.0))
    run.writer.flush(force=True)
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    calls = 0

    def alive() -> bool:  # the user presses Ctrl-C while the run goes on
        nonlocal calls
        calls += 1
        if calls > 2:
            raise KeyboardInterrupt
        return True

    with pytest.raises(KeyboardInterrupt):
        follow(run.run_dir, console, alive, interval=0.01)
    last = out.getvalue().split("going")[-1]  # the last frame drawn
    assert "still running · this view stopped following it" in last and "ETA" not in last
    assert "[running]" not in last
    run.writer.close()


def test_export_and_watch_accept_a_group_id_like_show(tmp_path: Path) -> None:
    import csv
    import json

    import numpy as np

    from engine.store import read_run

    paths = [finished_run(tmp_path, f"g-s{s}", seed=s, group="grp-x3", created=f"2025-01-0{s + 1}T00:00:00")
             for s in range(3)]
    runner = CliRunner()
    for cmd in ("show", "watch"):
        r = runner.invoke(app, [cmd, "grp-x3", "--runs-dir", str(tmp_path)], catch_exceptions=False)
        assert r.exit_code == 0 and "seed group grp-x3" in r.output, r.output
    r = runner.invoke(app, ["export", "grp-x3", "--format", "csv", "--runs-dir", str(tmp_path)], catch_exceptions=False)
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert sorted(row["run_id"] for row in rows) == ["g-s0", "g-s1", "g-s2"]
    finals = [read_run(p).metrics["final"] for p in paths]
    assert sorted(float(row["final"]) for row in rows) == sorted(finals)
    r = runner.invoke(app, ["export", "grp-x3", "--runs-dir", str(tmp_path)], catch_exceptions=False)
    out = json.loads(r.output)  # one tidy row per run, as pandas.read_json reads it
    assert sorted(row["final"] for row in out) == sorted(finals) and {row["group"] for row in out} == {"grp-x3"}
    r = runner.invoke(app, ["show", "grp-x3", "--runs-dir", str(tmp_path)], catch_exceptions=False)
    assert "mean ± sample std (n−1)" in r.output
    assert f"{np.mean(finals):.2f} ± {np.std(finals, ddof=1):.2f}" in r.output, r.output
