"""Observers (engine/analyses): they cannot change training, they record only what they declared,
the forgetting curves are the fixed-subset accuracies they always were, and the `analyses` config section."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine import api
from engine import events as ev
from engine.analyses.base import Observer, Observers
from engine.api import build_trainer
from engine.checkpoint import load_checkpoint
from engine.data.paths import resolve_data_dir
from engine.errors import ConfigError
from engine.registry import ANALYSES
from engine.series import CURVES, SeriesError, SeriesSpec
from engine.store import read_run
from tests.conftest import tiny


class Meddler(Observer):
    """Does everything an observer must not be able to get away with: draws from every global RNG,
    leaves the model in eval mode, builds autograd graphs."""

    every = 7

    def __init__(self, ctx: Any) -> None:
        super().__init__(None, ctx, "meddler")
        self.calls = 0
        self.saw_grad = False

    def _meddle(self) -> dict[str, Any]:
        self.calls += 1
        torch.rand(5)
        np.random.rand(3)
        random.random()
        self.ctx.model.eval()
        self.saw_grad |= torch.is_grad_enabled()
        return {}

    def on_step(self, step: int, phase: int, tasks: list[int]) -> dict[str, Any]:
        return self._meddle()

    def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
        return self._meddle()

    def on_phase_end(self, step: int, phase: int) -> dict[str, Any]:
        return self._meddle()


def _train(cfg: Any, meddle: bool) -> tuple[dict[str, torch.Tensor], np.ndarray, Meddler | None, list[Any]]:
    trainer, _ = build_trainer(cfg, resolve_data_dir(None), ev.Recorder())
    meddler = None
    if meddle:
        meddler = Meddler(trainer.observers.items[0].ctx if trainer.observers.items else None)
        trainer.observers = Observers([*trainer.observers.items, meddler], trainer.emit)
    assert trainer.run() == "finished"
    assert trainer.model.training  # the mode training left it in
    rngs = [torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()]
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}, trainer.acc.copy(), meddler, rngs


def test_an_observer_cannot_change_training() -> None:
    # EWC draws its Fisher sample from the global torch RNG: a leaked draw would move every number after task 1.
    cfg = tiny("method.n_fisher=50", method="ewc")
    w0, acc0, _, rng0 = _train(cfg, meddle=False)
    w1, acc1, meddler, rng1 = _train(cfg, meddle=True)
    assert meddler is not None and meddler.calls > 60 and not meddler.saw_grad
    # Every global generator ends where it would have without the observer (whoever else draws from it).
    assert torch.equal(rng0[0], rng1[0]) and np.array_equal(rng0[1], rng1[1]) and rng0[2] == rng1[2]
    assert np.array_equal(acc0, acc1, equal_nan=True)
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)


def test_turning_curves_on_or_changing_their_cadence_leaves_the_run_bit_identical(tmp_path: Path) -> None:
    runs = {}
    for label, extra in {"off": ["analyses.curves.enabled=false"], "every3": ["analyses.curves.every=3"],
                         "every10": []}.items():
        res = api.run(tiny(*extra, method="si"), tmp_path / label)
        assert res.status == "finished", res.error
        runs[label] = (read_run(res.run_dir), load_checkpoint(res.run_dir))
    off_rec, off_ck = runs["off"]
    assert CURVES not in off_rec.series_specs and off_rec.curve_steps.size == 0
    assert runs["every3"][0].curve_steps.size > runs["every10"][0].curve_steps.size > 0
    for label in ("every3", "every10"):
        rec, ck = runs[label]
        assert np.array_equal(rec.acc, off_rec.acc, equal_nan=True)
        assert all(torch.equal(ck["model"][k], off_ck["model"][k]) for k in off_ck["model"])
        for name, series in off_rec.series.items():  # training scalars and SI's diagnostics
            if name != "steps_per_sec":
                assert np.array_equal(series.values, rec.series[name].values, equal_nan=True), name


def test_curves_are_the_fixed_subset_accuracy_of_seen_tasks(tmp_path: Path) -> None:
    """The last curve point of the last phase, recomputed independently from the final weights."""
    cfg = tiny("analyses.curves.samples=40")
    res = api.run(cfg, tmp_path)
    rec = read_run(res.run_dir)
    assert rec.curve_steps.tolist() == [10, 20, 30, 40, 50, 60]
    assert np.isnan(rec.curve_acc[0, 1:]).all() and not np.isnan(rec.curve_acc[-1]).any()
    trainer, _ = build_trainer(cfg, resolve_data_dir(None), ev.Recorder())
    trainer.model.load_state_dict(load_checkpoint(res.run_dir)["model"])
    trainer.model.eval()
    expected = []
    with torch.no_grad():
        for i, task in enumerate(trainer.bench.tasks):
            idx = torch.randperm(task.size("test"), generator=torch.Generator().manual_seed(4242 + i))[:40]
            b = task.get("test", idx)
            expected.append(float((trainer.method.head_logits(b.x, b.lengths, i).argmax(1) == b.y).sum()) * 100 / 40)
    assert rec.curve_acc[-1].tolist() == expected
    spec = rec.series_specs[CURVES]
    assert spec.cadence == "curve" and spec.columns == tuple(rec.task_names) and spec.source == "analysis/curves"


def test_observer_time_is_not_training_time(tmp_path: Path) -> None:
    trainer, _ = build_trainer(tiny(), resolve_data_dir(None), ev.Recorder())

    class Slow(Observer):
        every = 1

        def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
            import time

            time.sleep(0.05)
            return {}

    slow = Slow(None, trainer.observers.items[0].ctx, "slow")
    trainer.observers = Observers([*trainer.observers.items, slow], trainer.emit)
    trainer.run()
    # 60 curve points × 50 ms of observing = 3 s; the tiny run's training alone takes a fraction of that.
    assert trainer.elapsed < 60 * 0.05
    assert np.nansum(trainer.phase_seconds) == pytest.approx(trainer.elapsed)


def test_an_observer_writes_only_its_declared_series() -> None:
    trainer, _ = build_trainer(tiny(), resolve_data_dir(None), ev.Recorder())
    ctx = trainer.observers.items[0].ctx

    class Sloppy(Observer):
        every = 5

        def declare_series(self) -> list[SeriesSpec]:
            return [SeriesSpec("sloppy_ok", cadence="curve")]

        def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
            return {"sloppy_ok": 1.0, "sloppy_extra": 2.0}

    with pytest.raises(SeriesError, match="'sloppy_extra' was written but no series 'sloppy_extra' was declared"):
        Observers([Sloppy(None, ctx, "sloppy")], trainer.emit).on_curve_point(5, 0, False)

    class Thief(Observer):
        every = 5

        def on_curve_point(self, step: int, phase: int) -> dict[str, Any]:
            return {CURVES: [0.0] * 3}

    obs = Observers([*trainer.observers.items, Thief(None, ctx, "thief")], trainer.emit)
    with pytest.raises(SeriesError, match="wrote series 'curves', which analysis/curves declared"):
        obs.on_curve_point(5, 0, False)


def test_observer_rng_is_its_own_named_stream_and_resumes() -> None:
    trainer, _ = build_trainer(tiny("seed=3"), resolve_data_dir(None), ev.Recorder())
    curves = trainer.observers.items[0]
    from engine.rng import stream_generator

    expected = torch.rand(3, generator=stream_generator(3, "analysis/curves"))
    state = trainer.observers.state_dict()
    assert torch.equal(torch.rand(3, generator=curves.gen), expected)
    trainer.observers.load_state_dict(state)
    assert torch.equal(torch.rand(3, generator=curves.gen), expected)


def test_analyses_config_section() -> None:
    cfg = tiny("analyses.curves.every=7")
    (curves,) = [c for c in cfg.analyses if c.name == "curves"]
    assert curves.options.every == 7 and curves.options.enabled and curves.options.samples == 50
    with pytest.raises(ConfigError, match="unknown analysis 'curvs'. Did you mean 'curves'"):
        tiny("analyses.curvs.every=7")
    with pytest.raises(ConfigError, match="evaluation.curve_every moved to analyses.curves.every"):
        tiny("evaluation.curve_every=7")
    with pytest.raises(ConfigError, match="--set: unknown key 'analyses.curves.evry'"):
        tiny("analyses.curves.evry=7")


def test_every_registered_analysis_can_be_switched() -> None:
    from engine.analyses import MODULES
    from engine.catalog import load_all

    load_all()
    assert ANALYSES.names() and len(MODULES) == len(ANALYSES.names())
    for entry in ANALYSES.entries():
        fields = {f.name: f for f in dataclasses.fields(entry.options)}
        assert fields["enabled"].type in (bool, "bool"), entry.name
        assert issubclass(entry.impl, Observer)
        assert all(f.metadata.get("help") for f in fields.values()), entry.name


def test_curves_row_is_nan_for_unseen_tasks() -> None:
    rec = ev.Recorder()
    trainer, _ = build_trainer(tiny("analyses.curves.every=5"), resolve_data_dir(None), rec)
    trainer.run()
    points = [e for e in rec.of(ev.SeriesPoint) if e.name == CURVES]
    assert [p.step for p in points][:5] == [5, 10, 15, 20, 25]
    assert all(math.isnan(v) for v in points[0].value[1:]) and not math.isnan(points[-1].value[2])
