"""The forgetting study's analyses (sparsity, class_probs, weight_updates, gradients, histograms):
each against values computed by hand on a tiny network, then every registered analysis together:
training stays bit-identical, and a resumed run records the same series as an uninterrupted one."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine import api
from engine import events as ev
from engine.analyses.base import Observer, ObserverContext, Observers
from engine.analyses.class_probs import ClassProbs, ClassProbsOptions, per_class_subset
from engine.analyses.gradients import Gradients, GradientsOptions
from engine.analyses.histograms import Histograms, HistogramsOptions, histogram
from engine.analyses.sparsity import Sparsity, SparsityOptions
from engine.analyses.weight_updates import WeightUpdates, WeightUpdatesOptions
from engine.api import build_trainer
from engine.benchmarks.base import Benchmark, ImageTask, InputSpec
from engine.catalog import load_all
from engine.checkpoint import load_checkpoint
from engine.config import TrainingConfig
from engine.data.paths import resolve_data_dir
from engine.methods.base import Method, MethodContext
from engine.models.base import build_model
from engine.models.mlp import MlpOptions
from engine.registry import ANALYSES
from engine.store import read_run
from tests.conftest import assert_resume_exact, assert_same_state, tiny

CPU = torch.device("cpu")
E = math.e


# -- a tiny network whose activations can be worked out by hand -------------------------------------
# Inputs (after ImageTask's /255): (0,0), (1,0) in task 0 and (0,1), (1,1) in task 1.
# fc1 = [[1,0],[0,1],[-1,-1]], b = 0  →  h1 = (0,0,0), (1,0,0), (0,1,0), (1,1,0)
# fc2 = [[1,1,0],[0,0,1]], b = 0      →  h2 = (0,0),   (1,0),   (1,0),   (2,0)
# out = [[0,0],[1,0],[2,0],[0,0]], b = 0  →  logits (0,0,0,0), (0,1,2,0), (0,1,2,0), (0,2,4,0)
def tiny_setup(head_columns: list[list[int]], labels: list[int], class_map: list[list[int]] | None = None
               ) -> ObserverContext:
    images = torch.tensor([[0, 0], [255, 0], [0, 255], [255, 255]], dtype=torch.uint8)
    y = torch.tensor(labels)
    tasks = []
    for t, ids in enumerate(([0, 1], [2, 3])):
        index = {s: torch.tensor(ids) for s in ("train", "test")}
        tasks.append(ImageTask(f"t{t}", {"train": images, "test": images}, index,
                               {s: y[torch.tensor(ids)] for s in ("train", "test")}))
    bench = Benchmark(tasks, torch.tensor(head_columns), InputSpec((2,), 4), "hand-made", {},
                      class_map=None if class_map is None else torch.tensor(class_map))
    model = build_model("mlp", MlpOptions(hidden=[3, 2]), bench.spec)
    with torch.no_grad():
        for layer, w in (("fc1", [[1., 0.], [0., 1.], [-1., -1.]]), ("fc2", [[1., 1., 0.], [0., 0., 1.]]),
                         ("out", [[0., 0.], [1., 0.], [2., 0.], [0., 0.]])):
            model.get_submodule(layer).weight.copy_(torch.tensor(w))
            model.get_submodule(layer).bias.zero_()
    method = Method(None, MethodContext(model, bench, CPU, TrainingConfig(), seed=0))
    return ObserverContext(model, bench, method, CPU, 0, 3, [[0], [1]], [10, 10])


def run_hook(obs: Any, hook: str, *args: Any) -> dict[str, Any]:
    """Call one hook through Observers, as the loop does (read-only guard, declaration check)."""
    rows: dict[str, Any] = {}
    observers = Observers([obs], lambda e: rows.__setitem__(e.name, e.value))
    getattr(observers, hook)(*args)
    return rows


def test_sparsity_and_dormant_units_by_hand() -> None:
    ctx = tiny_setup([[0, 1, 2, 3]] * 2, [0, 1, 2, 3])
    obs = Sparsity(SparsityOptions(enabled=True, every=5, samples=10), ctx, "sparsity")
    spec = {s.name: s for s in Observers([obs], print).declarations()}
    assert spec["sparsity"].columns == ("h1", "h2", "all") and spec["dormant"].cadence == "curve"
    rows = run_hook(obs, "on_curve_point", 5, 0, False)
    # h1: 8 of 12 activations are 0, unit 3 never fires; h2: 5 of 8, unit 2 never fires.
    assert rows["sparsity"] == pytest.approx([8 / 12, 5 / 8, 13 / 20])
    assert rows["dormant"] == pytest.approx([1 / 3, 1 / 2, 2 / 5])
    # Threshold 0.6: h1's units fire on 2/4 of the images (dormant too), h2's first on 3/4 (not).
    obs = Sparsity(SparsityOptions(enabled=True, every=5, samples=10, threshold=0.6), ctx, "sparsity")
    assert run_hook(obs, "on_curve_point", 5, 0, False)["dormant"] == pytest.approx([1.0, 1 / 2, 4 / 5])
    # samples=1 takes one fixed image per task: the first of each task's fixed order.
    obs = Sparsity(SparsityOptions(enabled=True, every=5, samples=1), ctx, "sparsity")
    assert [int(i) for i in obs.idx] == [int(torch.randperm(2, generator=torch.Generator().manual_seed(4242 + t))[0])
                                         for t in range(2)]


@pytest.mark.parametrize("scenario", ["class", "task", "stated"])
def test_class_probs_by_hand(scenario: str) -> None:
    p_img1 = {"class": E / (2 + E + E**2), "task": E / (1 + E)}  # image (1,0): logits (0,1,2,0)
    if scenario == "class":  # one head over 4 classes; labels are the classes
        ctx = tiny_setup([[0, 1, 2, 3]] * 2, [0, 1, 2, 3])
        expected = [[1 / 4, p_img1["class"], math.nan, math.nan],
                    [1 / 4, p_img1["class"], E**2 / (2 + E + E**2), 1 / (2 + E**2 + E**4)]]
    elif scenario == "task":  # a 2-unit head per task: class = output unit
        ctx = tiny_setup([[0, 1], [2, 3]], [0, 1, 0, 1])
        expected = [[1 / 2, p_img1["task"], math.nan, math.nan],
                    [1 / 2, p_img1["task"], 1 / (1 + E**-2), 1 / (1 + E**4)]]  # logits (2,0) and (4,0)
    else:  # one shared head (domain-IL) whose labels the benchmark maps to classes 3,1 and 0,2
        ctx = tiny_setup([[0, 1], [0, 1]], [0, 1, 1, 0], [[3, 1], [0, 2]])
        # image 0 (label 0 → class 3): logits (0,0); image 1 (1 → 1): (0,1); image 2 (1 → 2): (0,1);
        # image 3 (0 → 0): (0,2)
        expected = [[math.nan, E / (1 + E), math.nan, 1 / 2],
                    [1 / (1 + E**2), E / (1 + E), E / (1 + E), 1 / 2]]
    obs = ClassProbs(ClassProbsOptions(enabled=True, every=5), ctx, "class_probs")
    (spec,) = Observers([obs], print).declarations()
    assert spec.columns == ("0", "1", "2", "3")
    for phase in (0, 1):
        row = run_hook(obs, "on_curve_point", 5, phase, False)["class_prob"]
        assert row == pytest.approx(expected[phase], nan_ok=True)


def test_class_probs_subset_is_the_first_images_of_each_class_in_the_fixed_order() -> None:
    order = torch.tensor([5, 4, 2, 1, 0, 3])
    labels = torch.tensor([0, 1, 0, 1, 1, 0])  # label of image i: in `order`, labels 0 1 0 1 0 1
    assert per_class_subset(order, labels, 1).tolist() == [5, 4]
    assert per_class_subset(order, labels, 2).tolist() == [5, 4, 2, 1]
    assert sorted(per_class_subset(order, labels, 9).tolist()) == list(range(6))


def test_weight_updates_by_hand() -> None:
    ctx = tiny_setup([[0, 1, 2, 3]] * 2, [0, 1, 2, 3])
    obs = WeightUpdates(WeightUpdatesOptions(enabled=True, every=5), ctx, "weight_updates")
    (spec,) = Observers([obs], print).declarations()
    assert spec.columns == ("fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias", "out_weight", "out_bias")
    model = ctx.model
    with torch.no_grad():
        model.get_submodule("fc2").bias.fill_(2.0)  # ‖b‖ = 4
    obs.on_gradients(5, 0, True)  # the loop calls this just before the optimizer step
    with torch.no_grad():  # "the step": ‖fc1.weight‖ = 2 → Δ of norm 0.2; fc2.bias (2,2) → (2,5)
        model.get_submodule("fc1").weight[2, 0] += 0.2
        model.get_submodule("fc2").bias[1] = 5.0
    row = run_hook(obs, "on_curve_point", 5, 0, False)["weight_update"]
    assert row[0] == pytest.approx(0.1) and row[3] == pytest.approx(3 / math.sqrt(8))
    assert row[2] == 0.0 and row[4] == 0.0
    assert math.isnan(row[1]) and math.isnan(row[5])  # zero biases: ‖W_{t−1}‖ = 0
    obs.on_gradients(6, 0, False)  # a step that is not measured copies nothing
    assert obs.before is None


def test_weight_updates_in_a_run_are_the_step_just_taken() -> None:
    """Run step by step: the row at step 10 is ‖W_10 − W_9‖/‖W_9‖ of the weights the loop left."""
    cfg = tiny("analyses.weight_updates.enabled=true", "analyses.weight_updates.every=10",
               "training.optimizer=sgd", "training.lr=0.05")
    rec = ev.Recorder()
    trainer, _ = build_trainer(cfg, resolve_data_dir(None), rec)
    assert trainer.run(stop_at_step=9) == "interrupted"
    w9 = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    assert trainer.run(stop_at_step=10) == "interrupted"
    w10 = {n: p.detach() for n, p in trainer.model.named_parameters()}
    (point,) = [e for e in rec.of(ev.SeriesPoint) if e.name == "weight_update"]
    expected = [float((w10[n].double() - w9[n].double()).norm() / w9[n].double().norm()) for n in w9]
    assert point.step == 10 and point.value == pytest.approx(expected, rel=1e-12)
    assert all(v > 0 for v in expected)


def test_weight_updates_follow_a_phase_that_a_stop_rule_ends_early() -> None:
    """A stop rule ends each phase at its first epoch (step 2 of 4): its last step is still measured."""
    cfg = tiny("analyses.weight_updates.enabled=true", "analyses.weight_updates.every=1000",
               "benchmark.train_per_task=64", "training.epochs_per_task=2", "training.stop_train_acc=1")
    rec = ev.Recorder()
    trainer, _ = build_trainer(cfg, resolve_data_dir(None), rec)
    assert trainer.run() == "finished"
    assert trainer.plan[0].steps == 4
    points = [e for e in rec.of(ev.SeriesPoint) if e.name == "weight_update"]
    assert [e.step for e in points] == [2, 4, 6]
    assert all(v > 0 for e in points for v in e.value)  # measured (a step without a snapshot gives NaN)


def test_gradients_by_hand() -> None:
    ctx = tiny_setup([[0, 1, 2, 3]] * 2, [0, 1, 2, 3])
    obs = Gradients(GradientsOptions(enabled=True), ctx, "gradients")
    names = [s.name for s in Observers([obs], print).declarations()]
    assert names == ["grad_layer", "grad_units_fc1_weight", "grad_units_fc2_weight", "grad_units_out_weight"]
    params = dict(ctx.model.named_parameters())
    grads = [{"fc1.weight": [[1., -2.], [0., 0.], [3., 0.5]], "fc2.bias": [-1., 1.]},
             {"fc1.weight": [[-1., 0.], [0., 4.], [0., 0.]], "fc2.bias": [0.5, 0.]}]
    for step, g in enumerate(grads, start=1):
        for p in params.values():
            p.grad = None
        for n, v in g.items():
            params[n].grad = torch.tensor(v)
        obs.on_gradients(step, 0, False)
    rows = run_hook(obs, "on_phase_end", 2, 0)
    assert rows["grad_layer"] == pytest.approx([3 + 3.5 + 1 + 4, 0, 0, 2.5, 0, 0])
    assert rows["grad_units_fc1_weight"] == pytest.approx([4, 4, 3.5])
    assert rows["grad_units_fc2_weight"] == [0.0, 0.0]
    # The sums restart with the next phase.
    params["fc1.weight"].grad = torch.ones(3, 2)
    obs.on_gradients(3, 1, False)
    assert run_hook(obs, "on_phase_end", 3, 1)["grad_units_fc1_weight"] == [2.0, 2.0, 2.0]


def test_gradients_in_a_run_match_the_sgd_updates() -> None:
    """Plain SGD moves W by lr·g: Σ|ΔW|/lr over a phase is the recorded Σ|g| (float32 rounding apart)."""
    lr = 0.05
    cfg = tiny("analyses.gradients.enabled=true", "training.optimizer=sgd", f"training.lr={lr}", steps=6)
    rec = ev.Recorder()
    trainer, _ = build_trainer(cfg, resolve_data_dir(None), rec)
    expected = {n: torch.zeros(p.shape[0] if p.dim() > 1 else 1, dtype=torch.float64)
                for n, p in trainer.model.named_parameters()}
    for step in range(1, 7):
        before = {n: p.detach().double().clone() for n, p in trainer.model.named_parameters()}
        trainer.run(stop_at_step=step)
        for n, p in trainer.model.named_parameters():
            d = (p.detach().double() - before[n]).abs() / lr
            expected[n] += d.flatten(1).sum(1) if p.dim() > 1 else d.sum()
    # run(stop_at_step=6) took step 6, ended phase 1 (writing its rows) and stopped before phase 2's first step
    points = {e.name: e.value for e in rec.of(ev.SeriesPoint) if e.name.startswith("grad_")}
    assert points["grad_layer"] == pytest.approx([float(v.sum()) for v in expected.values()], rel=1e-4)
    assert points["grad_units_fc1_weight"] == pytest.approx(expected["fc1.weight"].tolist(), rel=1e-4)
    assert points["grad_units_out_weight"] == pytest.approx(expected["out.weight"].tolist(), rel=1e-4)


def test_histograms_by_hand() -> None:
    counts, lo, hi = histogram(torch.tensor([0.0, 0.25, 0.5, 1.0]), 4)
    assert counts.tolist() == [1, 1, 1, 1] and (lo, hi) == (0.0, 1.0)
    counts, lo, hi = histogram(torch.tensor([-3.0, 0.0, 0.25, 0.9, 7.0]), 2, -1.0, 1.0)
    assert counts.tolist() == [1, 4] and (lo, hi) == (-1.0, 1.0)  # outside the fixed range: the end bins
    counts, lo, hi = histogram(torch.full((3,), 2.0), 5)
    assert counts.tolist() == [0, 0, 3, 0, 0] and (lo, hi) == (1.5, 2.5)

    ctx = tiny_setup([[0, 1, 2, 3]] * 2, [0, 1, 2, 3])
    obs = Histograms(HistogramsOptions(enabled=True, bins=3), ctx, "histograms")
    specs = {s.name: s for s in Observers([obs], print).declarations()}
    assert specs["hist_fc1_weight"].shape == (3,) and specs["hist_fc1_weight"].dtype == "i8"
    assert specs["hist_fc1_weight_range"].columns == ("lo", "hi") and len(specs) == 12
    rows = run_hook(obs, "on_phase_end", 10, 0)
    # fc1.weight = 1,0,0,1,-1,-1 over [-1, 1] in bins of 2/3: two -1s, two 0s, two 1s
    assert rows["hist_fc1_weight"].tolist() == [2, 2, 2] and rows["hist_fc1_weight_range"] == [-1.0, 1.0]
    assert rows["hist_out_weight"].tolist() == [6, 1, 1]  # 0 ×6, 1, 2 over [0, 2]
    assert rows["hist_fc1_bias"].tolist() == [0, 3, 0] and rows["hist_fc1_bias_range"] == [-0.5, 0.5]
    fixed = Histograms(HistogramsOptions(enabled=True, bins=2, range=[-4.0, 4.0]), ctx, "histograms")
    assert run_hook(fixed, "on_phase_end", 10, 0)["hist_out_weight"].tolist() == [0, 8]


# -- every registered analysis at once --------------------------------------------------------------
def all_analyses_on(*overrides: str, on: bool = True, steps: int = 20) -> Any:
    """A class-incremental tiny EWC run (EWC draws from the global RNG; global labels are known)
    with every registered analysis on, at a short cadence, or all of them off (curves too)."""
    load_all()
    sets = []
    for entry in ANALYSES.entries():
        sets.append(f"analyses.{entry.name}.enabled={'true' if on else 'false'}")
        if on and "every" in {f.name for f in dataclasses.fields(entry.options)}:
            sets.append(f"analyses.{entry.name}.every=3")
    return tiny("benchmark.scenario=class", "method.n_fisher=50", "model.hidden=[32,16]", *sets, *overrides,
                method="ewc", steps=steps)


def test_every_analysis_on_leaves_training_bit_identical(tmp_path: Path) -> None:
    runs = {}
    for label, on in (("off", False), ("on", True)):
        res = api.run(all_analyses_on(on=on), tmp_path / label)
        assert res.status == "finished", res.error
        runs[label] = (read_run(res.run_dir), load_checkpoint(res.run_dir))
    (off, off_ck), (on_rec, on_ck) = runs["off"], runs["on"]
    assert len(on_rec.series) > len(off.series)  # the analyses did record something
    for name in ANALYSES.names():
        assert any(s.source == f"analysis/{name}" for s in on_rec.series_specs.values()), name
    assert np.array_equal(on_rec.acc, off.acc, equal_nan=True)
    for key in ("model", "optimizer", "method", "rng", "streams"):
        assert_same_state(on_ck[key], off_ck[key], key)
    for name, series in off.series.items():  # training scalars and EWC's diagnostics
        if name != "steps_per_sec":
            assert np.array_equal(series.values, on_rec.series[name].values, equal_nan=True), name


@pytest.mark.parametrize("stop", [27, 40])  # mid-phase (gradient sums in the checkpoint), a phase end
def test_resume_with_every_analysis_on_records_the_same_series(tmp_path: Path, stop: int) -> None:
    full, _ = assert_resume_exact(all_analyses_on(), tmp_path, stop)
    rec = read_run(full.run_dir)
    for name in ("sparsity", "dormant", "class_prob", "weight_update", "grad_layer", "hist_fc1_weight"):
        assert rec.series[name].steps.size > 0, name


def test_the_gradient_hook_sees_every_step_before_the_optimizer_and_knows_the_curve_points() -> None:
    trainer, _ = build_trainer(tiny(), resolve_data_dir(None), ev.Recorder())
    assert trainer.plan[0].steps_per_epoch > 20  # no epoch ends inside the 20-step phases

    class Spy(Observer):
        every = 7

        def __init__(self, ctx: ObserverContext) -> None:
            super().__init__(None, ctx, "spy")
            self.calls: list[tuple[int, int, bool]] = []
            self.grads_seen = True

        def on_gradients(self, step: int, phase: int, curve_point: bool) -> None:
            self.calls.append((step, phase, curve_point))
            self.grads_seen &= all(p.grad is not None for p in self.ctx.model.parameters())
            self.grads_seen &= not torch.is_grad_enabled()

    curves = trainer.observers.items[0]
    assert Observers([curves], trainer.emit)._gradients == []  # the loop's call returns at once
    spy = Spy(curves.ctx)
    trainer.observers = Observers([curves, spy], trainer.emit)
    assert trainer.run() == "finished"
    assert [c[0] for c in spy.calls] == list(range(1, 61)) and spy.grads_seen
    assert [c[1] for c in spy.calls] == [0] * 20 + [1] * 20 + [2] * 20
    assert [c[0] for c in spy.calls if c[2]] == sorted({*range(7, 61, 7), 20, 40, 60})


@pytest.mark.parametrize(("override", "message"), [
    ("analyses.sparsity.threshold=2", "analyses.sparsity.threshold = 2.0 must be between 0 and 1"),
    ("analyses.histograms.range=[1]", r"analyses.histograms.range = \[1.0\] must be \[\] or \[lo, hi\] with lo < hi"),
    ("analyses.histograms.bins=0", "analyses.histograms.bins = 0 must be >= 1"),
    ("analyses.class_probs.samples=0", "analyses.class_probs.samples = 0 must be >= 1"),
    ("analyses.weight_updates.every=0", "analyses.weight_updates.every = 0 must be >= 1"),
])
def test_bad_options_are_one_clear_line(override: str, message: str) -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        tiny(override)
