"""Metrics against hand-computed values; inputs are never mutated."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import metrics as M

NAN = math.nan
# acc[i, j]: after task i, on task j (3 tasks).
ACC = np.array([
    [90.0, 40.0, 50.0],
    [70.0, 80.0, 45.0],
    [60.0, 75.0, 95.0],
])
INIT = np.array([50.0, 50.0, 50.0])


def test_hand_computed_values() -> None:
    assert M.during_accuracy(ACC) == pytest.approx((90 + 80 + 95) / 3)
    assert M.final_accuracy(ACC) == pytest.approx((60 + 75 + 95) / 3)
    assert M.average_accuracy(ACC, 1) == pytest.approx((70 + 80) / 2)
    assert M.backward_transfer(ACC) == pytest.approx(((60 - 90) + (75 - 80)) / 2)
    assert M.forward_transfer(ACC, INIT) == pytest.approx(((40 - 50) + (45 - 50)) / 2)
    # forgetting: task 0 max(90, 70) - 60 = 30; task 1 max(80) - 75 = 5
    assert M.forgetting(ACC) == pytest.approx((30 + 5) / 2)


def test_forgetting_uses_the_best_earlier_value_not_the_first() -> None:
    acc = np.array([[50.0, NAN, NAN], [90.0, 80.0, NAN], [60.0, 70.0, 99.0]])
    assert M.forgetting(acc) == pytest.approx(((90 - 60) + (80 - 70)) / 2)


def test_single_row_multitask() -> None:
    acc = np.array([[99.0, 97.0, 98.0]])
    assert M.final_accuracy(acc) == pytest.approx(98.0)
    assert math.isnan(M.during_accuracy(acc)) and math.isnan(M.backward_transfer(acc))


def test_inputs_not_mutated() -> None:
    acc, init = ACC.copy(), INIT.copy()
    for f in (M.during_accuracy, M.final_accuracy, M.backward_transfer, M.forgetting):
        f(acc)
    M.forward_transfer(acc, init)
    M.summary(acc, init)
    assert np.array_equal(acc, ACC) and np.array_equal(init, INIT)


def test_summary_of_unfinished_run_only_has_during() -> None:
    acc = ACC.copy()
    acc[2] = NAN
    s = M.summary(acc, INIT)
    assert s["during"] == pytest.approx(85.0)
    assert s["average"] == pytest.approx((70 + 80) / 2)  # seen tasks only, after the last complete row
    assert math.isnan(s["final"]) and math.isnan(s["bwt"])
    assert M.summary(ACC, INIT)["final"] == pytest.approx(M.final_accuracy(ACC))
