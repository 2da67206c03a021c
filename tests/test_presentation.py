"""engine.presentation: pure functions with hand-computed expectations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.presentation import (
    STD_LABEL,
    error_summary,
    fmt,
    fmt_seconds,
    live_metrics,
    mean_std,
    metric_cell,
    metric_rows,
    phase_label,
    phase_title,
    progress,
    recent_rate,
    resume_info,
    stop_line,
)

NAN = math.nan
NAMES = ["0/1", "2/3", "4/5", "6/7", "8/9"]


def test_numbers() -> None:
    assert fmt(97.123) == "97.12" and fmt(97.16, 1) == "97.2" and fmt(NAN) == "—" and fmt(None) == "—"
    assert [fmt_seconds(s) for s in (0.4, 59.6, 61, 3599, 3600, 7322)] == ["0s", "1m00s", "1m01s", "59m59s",
                                                                           "1h00m", "2h02m"]
    assert fmt_seconds(NAN) == "—"
    assert metric_cell(81.654, 0.345) == "81.65 ± 0.34" and metric_cell(81.654, NAN) == "81.65"
    assert metric_cell(81.654) == "81.65"


def test_phase_labels() -> None:
    assert phase_label(NAMES, [3]) == "6/7"
    assert phase_label(NAMES, [0, 1]) == "0/1+2/3"
    assert phase_label(NAMES, [0, 1, 2, 3, 4]) == "all"  # multitask
    assert phase_title(2, 5) == "task 3 of 5"


def test_progress_mid_third_task_with_eta() -> None:
    # 5 tasks × 100 steps, 250 done: task 3 (index 2), 50 steps into it. Rates 100 and 400 it/s over
    # equal intervals: harmonic mean 2 / (1/100 + 1/400) = 160 it/s; 250 steps left → 1.5625 s.
    p = progress(250, 500, [100] * 5, [[k] for k in range(5)], NAMES, np.array([100.0, 400.0]), running=True)
    assert (p.phase, p.in_phase, p.phase_total, p.phase_label) == (2, 50, 100, "4/5")
    assert p.rate == pytest.approx(160.0) and p.eta == pytest.approx(1.5625)
    assert p.heading == "task 3 of 5 · 4/5"
    assert p.run_line() == "250/500 · 160 it/s · ETA 2s" and p.run_line(" steps").startswith("250/500 steps ·")
    assert p.phase_line == "4/5 · step 50 of 100"


def test_progress_at_boundaries_and_when_not_running() -> None:
    steps, tasks = [100, 100], [[0], [1]]
    p0 = progress(0, 200, steps, tasks, NAMES, np.zeros(0), running=True)
    assert (p0.phase, p0.in_phase) == (0, 0) and math.isnan(p0.rate) and math.isnan(p0.eta)
    assert p0.run_line() == "0/200"
    p100 = progress(100, 200, steps, tasks, NAMES, np.array([50.0]), running=False)
    assert (p100.phase, p100.in_phase) == (1, 0)  # step 101 belongs to task 2
    assert math.isnan(p100.eta) and p100.rate == 50.0  # no ETA for a run that is not running
    end = progress(200, 200, steps, tasks, NAMES, np.array([50.0]), running=False)
    assert (end.phase, end.in_phase) == (1, 100)


def test_recent_rate_uses_the_last_window_and_skips_bad_values() -> None:
    assert recent_rate(np.array([1.0] * 50 + [100.0] * 20)) == pytest.approx(100.0)
    assert recent_rate(np.array([np.nan, 0.0, 10.0])) == pytest.approx(10.0)
    assert math.isnan(recent_rate(np.array([np.nan, 0.0])))


def test_group_mean_and_sample_std() -> None:
    # Values 1, 2, 3, 4: mean 2.5; squared deviations sum to 5; sample variance 5/3.
    mean, std, n = mean_std([1.0, 2.0, NAN, 3.0, 4.0])
    assert (mean, n) == (2.5, 4) and std == pytest.approx(math.sqrt(5 / 3))
    assert "n−1" in STD_LABEL
    m1, s1, n1 = mean_std([7.0])
    assert (m1, n1) == (7.0, 1) and math.isnan(s1)  # one run has no spread
    m0, s0, n0 = mean_std([NAN])
    assert n0 == 0 and math.isnan(m0) and math.isnan(s0)


def test_metric_rows_beside_the_reference() -> None:
    rows = metric_rows({"during": 99.0, "final": 80.0}, {"during": 99.66, "final": 19.9}, {"during": 0.5})
    assert [r.key for r in rows] == ["during", "final", "average", "bwt", "fwt", "forgetting"]
    assert [r.label for r in rows][:4] == ["during", "final", "average", "BWT"]
    assert (rows[0].cell, rows[0].reference_cell) == ("99.00 ± 0.50", "99.66")
    assert (rows[1].cell, rows[1].reference_cell) == ("80.00", "19.90")
    assert rows[2].cell == "—" and rows[2].reference_cell == ""  # no published 'average'
    odd = metric_rows({}, {"final": 10.0, "final_meaningful": False})
    assert odd[1].label == "final (not meaningful)"


def test_live_metrics_of_a_partial_matrix() -> None:
    acc = np.array([[90.0, NAN], [NAN, NAN]])
    m = live_metrics(acc, np.array([NAN, NAN]))
    assert m["during"] == 90.0
    assert live_metrics(np.full((2, 2), NAN), np.full(2, NAN)) == {}
    assert acc[1, 0] != acc[1, 0]  # input untouched (still NaN)


def test_resume_eligibility_names_the_checkpoint_step() -> None:
    assert resume_info("interrupted", 1200, True).text == "resumes from step 1200 (last checkpoint)"
    assert resume_info("failed", 1200, True).possible
    assert resume_info("interrupted", None, True).text == "resumes from its last checkpoint"
    assert not resume_info("interrupted", None, False).possible
    assert not resume_info("running", 1200, True).possible
    assert resume_info("finished", 1200, True).text == "already finished; nothing to resume"


def test_stop_line_says_where_a_run_stopped_and_what_a_kill_lost() -> None:
    ok, none = resume_info("interrupted", 300, True), resume_info("interrupted", None, False)
    assert stop_line("R", 435, 435, ok) == "stopped at step 435; checkpoint at step 435; resume with: cltui resume R"
    assert stop_line("R", 12, None, none) == "stopped at step 12; no checkpoint was written; start it again"
    assert stop_line("R", 440, 300, ok, killed=True) == \
        "killed after step 440: lost the steps since its checkpoint at step 300; resume with: cltui resume R"
    assert stop_line("R", 440, 440, ok, killed=True) == \
        "killed after step 440, with its checkpoint at step 440: nothing lost; resume with: cltui resume R"
    assert stop_line("R", 40, None, none, killed=True) == \
        "killed after step 40: lost every step; no checkpoint was written; start it again"


def test_error_summary_is_the_first_line() -> None:
    assert error_summary("RuntimeError: CUDA error\nTraceback (most recent call last):\n  ...") == "RuntimeError: CUDA error"
    assert error_summary("  \n") == "(no error text)"


def test_phase_length_label_says_what_the_config_says() -> None:
    from engine.presentation import phase_length_label
    from tests.conftest import tiny

    assert phase_length_label(tiny(steps=7).training) == "7 steps/task"
    tr = tiny("training.epochs_per_task=3", "training.max_steps_per_phase=500", "training.stop_train_acc=99",
              "training.val_per_task=10", "training.early_stop_patience=2").training
    assert phase_length_label(tr) == "3 epochs/task · ≤ 500 steps · until train acc ≥ 99% · early stop 2"
