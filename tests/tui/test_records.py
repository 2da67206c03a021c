"""The TUI's plain helpers over run records (polling cache, filter, sort), and engine.presentation's
progress and group statistics on real run files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import numpy as np

from cltui.tui.records import RunPoller, matches, mean_seen_curve, sort_records
from cltui.tui.screens.presets import parse_overrides
from engine.presentation import group_stats, progress_of, recent_rate
from engine.store import RunStore, read_run

from .conftest import acc_value, dead_run, finished_run, start_run


def test_poller_rereads_only_changed_files(runs_dir: Path) -> None:
    finished_run(runs_dir, "a")
    run = start_run(runs_dir, "b")
    poller = RunPoller(RunStore(runs_dir))
    first = {r.run_id: r for r in poller.poll()}
    assert set(first) == {"a", "b"}
    run.run_phases(1)
    second = {r.run_id: r for r in poller.poll()}
    assert second["a"] is first["a"]  # unchanged file: the cached record
    assert second["b"].progress[0] == 100 and first["b"].progress[0] == 0
    run.writer.close()


def test_filter_words_match_status_method_and_seed(runs_dir: Path) -> None:
    rec = read_run(dead_run(runs_dir, "x", method="si", seed=3))
    assert matches(rec, "interrupted si")
    assert matches(rec, "S3")
    assert not matches(rec, "finished")


def test_sort_by_metric_puts_best_first_and_missing_last(runs_dir: Path) -> None:
    good = read_run(finished_run(runs_dir, "good", forget=2.0))
    bad = read_run(finished_run(runs_dir, "bad", forget=20.0))
    dead = read_run(dead_run(runs_dir, "dead"))
    assert [r.run_id for r in sort_records([bad, dead, good], "final")] == ["good", "bad", "dead"]
    assert [r.run_id for r in sort_records([bad, dead, good], "final", reverse=True)] == ["bad", "good", "dead"]


def test_group_stats_are_mean_and_sample_std(runs_dir: Path) -> None:
    recs = [read_run(finished_run(runs_dir, f"g{s}", seed=s, group="G")) for s in (0, 2)]
    recs.append(read_run(finished_run(runs_dir, "solo")))
    (g,) = group_stats(recs)
    finals = [recs[0].metrics["final"], recs[1].metrics["final"]]
    assert finals[0] != finals[1]
    assert g.runs == ["g0", "g2"] and g.statuses == {"finished": 2}
    assert g.mean["final"] == pytest.approx(sum(finals) / 2)
    # Sample std (n-1) of two values: |a - b| / sqrt(2).
    assert g.std["final"] == pytest.approx(abs(finals[0] - finals[1]) / math.sqrt(2))


def test_progress_of_a_run_in_its_third_task(runs_dir: Path) -> None:
    run = start_run(runs_dir, "p")
    run.run_phases(2)
    run.step_events(2, upto=50)
    run.writer.flush(force=True)
    p = progress_of(read_run(run.run_dir))
    assert (p.done, p.total, p.phase, p.in_phase, p.phase_label) == (250, 500, 2, 50, "T3")
    assert p.rate == pytest.approx(250.0) and p.eta == pytest.approx(1.0)
    run.writer.close()


def test_recent_rate_is_steps_over_time_not_the_mean_of_rates() -> None:
    # Two intervals of equal steps at 100 and 10 it/s: 2 intervals in 0.01 + 0.1 s per step.
    assert recent_rate(np.array([100.0, 10.0])) == pytest.approx(2 / (1 / 100 + 1 / 10))
    assert recent_rate(np.array([1.0] * 50 + [100.0] * 20)) == pytest.approx(100.0)  # only the last 20
    assert math.isnan(recent_rate(np.array([np.nan, 0.0])))


def test_mean_seen_curve_ignores_unseen_tasks(runs_dir: Path) -> None:
    rec = read_run(finished_run(runs_dir, "c"))
    steps, mean = mean_seen_curve(rec)
    assert steps.size == rec.curve_steps.size
    assert not any(math.isnan(v) for v in mean)
    assert mean[-1] == pytest.approx(sum(acc_value(4, j) for j in range(5)) / 5)


def test_parse_overrides_allows_quotes_and_commas() -> None:
    assert parse_overrides("training.lr=0.01, seed=3") == ["training.lr=0.01", "seed=3"]
    assert parse_overrides('description="a b"') == ["description=a b"]
    assert parse_overrides('description="unclosed') == ['description="unclosed']
