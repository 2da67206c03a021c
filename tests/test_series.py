"""The declared run record: declarations are checked, a method's undeclared value fails the run
loudly (never dropped), and the methods' diagnostics are recorded at their cadence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from engine import api
from engine.methods.base import Method
from engine.methods.ewc import Ewc
from engine.series import CADENCES, SeriesError, SeriesSet, SeriesSpec
from engine.store import read_run
from tests.conftest import tiny


def test_declarations_are_checked() -> None:
    with pytest.raises(SeriesError, match="lower-case"):
        SeriesSpec("Loss")
    with pytest.raises(SeriesError, match="cadence 'batch' is not one of"):
        SeriesSpec("x", cadence="batch")
    with pytest.raises(SeriesError, match="2 column names for shape \\(3,\\)"):
        SeriesSpec("x", (3,), columns=("a", "b"))
    specs = SeriesSet([SeriesSpec("a", cadence="phase", source="method")])
    with pytest.raises(SeriesError, match="declared twice \\(by method and analysis/x\\)"):
        specs.add([SeriesSpec("a")], source="analysis/x")
    with pytest.raises(SeriesError, match="declared with cadence 'phase' but was written at a 'log' point"):
        specs.get("a", "log")
    assert specs.get("a", "phase").row(2).dtype == np.float64 and set(CADENCES) == {"step", "log", "curve", "epoch", "phase"}


def test_a_method_logging_an_undeclared_value_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def leaky_penalty(self: Method, phase: int, tasks: list[int]) -> tuple[Tensor | None, dict[str, Any]]:
        return None, {"secret_sauce": torch.tensor(1.0)}

    monkeypatch.setattr(Method, "penalty", leaky_penalty)  # finetune inherits the base hook
    res = api.run(tiny(), tmp_path)
    assert res.status == "failed"
    assert "SeriesError" in res.error and "'secret_sauce' was written but no series 'secret_sauce' was declared" in res.error
    rec = read_run(res.run_dir)
    assert rec.status == "failed" and "secret_sauce" in rec.error and "secret_sauce" not in rec.series_specs


def test_a_method_writing_at_the_wrong_cadence_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Ewc, "phase_diagnostics", lambda self, phase, tasks: {"ewc_penalty": 1.0})
    res = api.run(tiny(method="ewc", steps=5), tmp_path)
    assert res.status == "failed" and "declared with cadence 'log' but was written at a 'phase' point" in res.error


@pytest.mark.parametrize("method, log_series, phase_series", [
    ("ewc", "ewc_penalty", "ewc_fisher_total"), ("si", "si_penalty", "si_omega_total"),
    ("masking_si", "si_penalty", "si_omega_total"), ("hnet", "hnet_reg", None)])
def test_method_diagnostics_are_recorded(tmp_path: Path, method: str, log_series: str, phase_series: str | None) -> None:
    res = api.run(tiny(method=method), tmp_path)
    assert res.status == "finished", res.error
    rec = read_run(res.run_dir)
    diag = rec.series[log_series]
    assert diag.spec.source == "method" and diag.spec.cadence == "log"
    # No penalty during the first task (20 steps); from then on, at every log step, equal to the loop's penalty.
    assert diag.steps.tolist() == [s for s in rec.scalar_steps.tolist() if s > 20]
    assert np.allclose(diag.values, rec.scalar("penalty")[rec.scalar_steps > 20], rtol=1e-6)
    assert (diag.values > 0).all()
    if phase_series is not None:
        total = rec.series[phase_series]
        assert total.spec.cadence == "phase" and total.steps.tolist() == [20, 40, 60]
        assert (total.values > 0).all() and total.values[1] > total.values[0]  # importance accumulates
