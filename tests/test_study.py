"""The §11 forgetting study's pieces: Split-MNIST task_order, seen-class accuracy (series seen_acc),
the MLP's BatchNorm/Dropout options, the L1 activation penalty, and the presets/study/ files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import api
from engine.activation_l1 import ActivationL1
from engine.benchmarks.base import InputSpec
from engine.benchmarks.split_mnist import SplitMnistOptions, build_split_mnist
from engine.errors import ConfigError
from engine.events import SeriesPoint
from engine.metrics import seen_accuracy
from engine.models.base import build_model
from engine.models.mlp import MlpOptions
from engine.presets import load_preset, preset_names
from engine.store import read_run
from tests.conftest import tiny

torch.set_num_threads(1)
CPU = torch.device("cpu")
ORDER = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 0]]


def _bench(**opts):  # noqa: ANN003, ANN202
    return build_split_mnist(SplitMnistOptions(data="embedded", **opts), CPU, Path("."), 0)


def _all(task, split: str):  # noqa: ANN001, ANN202
    return task.get(split, torch.arange(task.size(split)))


# -- task order --------------------------------------------------------------------------------
def test_task_order_picks_the_pairs_and_class_incremental_keeps_digits_as_labels() -> None:
    bench = _bench(scenario="class", task_order=ORDER)
    assert bench.task_names == ["1/2", "3/4", "5/6", "7/8", "9/0"]
    assert bench.spec.n_outputs == 10 and bench.head_columns.tolist() == [list(range(10))] * 5
    for task, pair in zip(bench.tasks, ORDER):
        for split in ("train", "test"):
            assert set(_all(task, split).y.tolist()) == set(pair)
    # Task-incremental: the first digit of a pair is label 0 ("9/0": 9 → 0, 0 → 1).
    classic = _bench(scenario="class")
    task_il = _bench(scenario="task", task_order=[[9, 0]], num_tasks=1)
    nine_zero = _all(task_il.tasks[0], "test")
    digits = torch.cat([_all(t, "test").y for t in classic.tasks if t.name in ("0/1", "8/9")])
    assert sorted(nine_zero.y.tolist()) == sorted((digits == 0).long()[(digits == 0) | (digits == 9)].tolist())
    assert (nine_zero.y == 0).sum() == (digits == 9).sum()


def test_a_class_incremental_task_may_hold_any_digits() -> None:
    bench = _bench(scenario="class", task_order=[[1, 2, 3, 4, 5, 6, 7, 8, 9, 0]], num_tasks=1)
    assert bench.task_names == ["1/2/3/4/5/6/7/8/9/0"] and bench.head_columns.shape == (1, 10)
    assert bench.tasks[0].size("train") == 5000 and bench.tasks[0].size("test") == 1000  # the embedded subset
    assert set(_all(bench.tasks[0], "test").y.tolist()) == set(range(10))


@pytest.mark.parametrize("scenario", ["task", "class"])
def test_the_default_order_is_the_classic_pairs_exactly(scenario: str) -> None:
    default = _bench(scenario=scenario)
    explicit = _bench(scenario=scenario, task_order=[[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
    assert default.task_names == explicit.task_names == ["0/1", "2/3", "4/5", "6/7", "8/9"]
    for a, b in zip(default.tasks, explicit.tasks):
        for split in ("train", "test"):
            x, y = _all(a, split), _all(b, split)
            assert torch.equal(x.x, y.x) and torch.equal(x.y, y.y)


@pytest.mark.parametrize("bad", ["[[1, 2, 3]]", "[[1, 2], [2, 3]]", "[[1, 10]]", "[[1, 2], [3, 4]]", "[[]]"])
def test_a_bad_task_order_is_one_config_error(bad: str) -> None:
    # demo is domain-incremental: pairs only. [[1, 2], [3, 4]]: 2 pairs but num_tasks = 5 (the default).
    with pytest.raises(ConfigError, match="task_order|num_tasks"):
        load_preset("demo", [f"benchmark.task_order={bad}"])
    assert load_preset("demo", ["benchmark.task_order=[[1, 2], [3, 4]]", "benchmark.num_tasks=2"])


# -- seen-class accuracy ------------------------------------------------------------------------
def test_seen_accuracy_pools_the_seen_tasks_images() -> None:
    assert seen_accuracy([100.0, 0.0, math.nan], [0, 1], [10, 30]) == 25.0
    assert math.isnan(seen_accuracy([50.0], [], [10]))
    row = np.array([0.0, 0.0, 100.0, math.nan])  # class-IL, only the last pair predicted: 2/(2t), equal sizes
    assert seen_accuracy(row, [0, 1, 2], [7, 7, 7]) == pytest.approx(100 / 3)
    assert np.array_equal(row, [0.0, 0.0, 100.0, math.nan], equal_nan=True)  # input untouched


def test_seen_acc_series_is_the_accuracy_over_all_seen_classes(tmp_path: Path) -> None:
    cfg = tiny("benchmark.scenario=class", "benchmark.task_order=[[1, 2], [3, 4], [9, 0], [5, 6]]")
    rows: list[float] = []
    trainer, _ = api.build_trainer(cfg, tmp_path, lambda e: rows.append(e.value)
                                   if isinstance(e, SeriesPoint) and e.name == "seen_acc" else None)
    assert trainer.run() == "finished"
    assert len(rows) == 3
    # Recomputed directly: every test image of digits 1, 2, 3, 4, 9, 0 through the 10-way head.
    model = trainer.model.eval()
    batches = [_all(t, "test") for t in trainer.bench.tasks]
    x, y = torch.cat([b.x for b in batches]), torch.cat([b.y for b in batches])
    with torch.no_grad():
        direct = int((model(x).argmax(1) == y).sum()) * 100.0 / len(y)
    assert rows[-1] == pytest.approx(direct, abs=1e-9)
    sizes = [t.size("test") for t in trainer.bench.tasks]
    for phase, value in enumerate(rows):
        assert value == pytest.approx(seen_accuracy(trainer.acc[phase], list(range(phase + 1)), sizes))


# -- MLP options --------------------------------------------------------------------------------
def _mlp(**opts) -> torch.nn.Module:  # noqa: ANN003
    return build_model("mlp", MlpOptions(hidden=[12, 7], **opts), InputSpec((784,), 10))


def test_with_both_options_off_the_mlp_is_unchanged() -> None:
    m = _mlp()
    assert [n for n, _ in m.named_children()] == ["fc1", "h1", "fc2", "h2", "out"]
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                                     "out.weight", "out.bias"]
    assert list(m.state_dict()) == [n for n, _ in m.named_parameters()]  # no buffers


def test_batchnorm_sits_after_each_linear_and_draws_nothing() -> None:
    torch.manual_seed(3)
    plain = _mlp()
    torch.manual_seed(3)
    bn = _mlp(batchnorm=True, dropout=0.5)
    assert [n for n, _ in bn.named_children()] == ["fc1", "bn1", "h1", "drop1", "fc2", "bn2", "h2", "drop2", "out"]
    assert [n for n, _ in bn.named_parameters()] == ["fc1.weight", "fc1.bias", "bn1.weight", "bn1.bias",
                                                      "fc2.weight", "fc2.bias", "bn2.weight", "bn2.bias",
                                                      "out.weight", "out.bias"]
    for name, p in plain.named_parameters():  # the Linear draws are those of the plain MLP
        assert torch.equal(p, bn.get_parameter(name))
    assert {"bn1.running_mean", "bn1.running_var", "bn2.num_batches_tracked"} <= set(bn.state_dict())


def test_features_are_post_relu_before_dropout() -> None:
    torch.manual_seed(0)
    m = _mlp(batchnorm=True, dropout=0.5).train()
    x = torch.rand(32, 784)
    torch.manual_seed(5)
    feats = m.features(x)
    torch.manual_seed(5)  # the same dropout draws by hand
    h1 = torch.relu(m.bn1(m.fc1(x)))  # train-mode BatchNorm: batch statistics, deterministic
    h2 = torch.relu(m.bn2(m.fc2(m.drop1(h1))))  # the next layer reads the dropped-out h1, as forward does
    assert torch.equal(feats["h1"], h1) and torch.equal(feats["h2"], h2)
    assert (h1 > 0).float().mean() > 0.3  # dropout zeroed nothing in the reported h1
    a, b = m(x), m(x)
    assert not torch.equal(a, b)  # dropout is active in train mode, after the unit layers
    m.eval()
    assert torch.allclose(m(x), m.out(m.features(x)["h2"]))  # eval: logits = read-out of the last features


def test_an_mlp_with_batchnorm_trains_under_a_hypernetwork(tmp_path: Path) -> None:
    trainer, _ = api.build_trainer(tiny("model.batchnorm=true", method="hnet", steps=5), tmp_path, lambda e: None)
    assert trainer.run() == "finished"
    bn1 = trainer.model.get_submodule("bn1")
    # The hypernetwork generates γ and β (they are parameters), the statistics stay the model's own.
    assert int(bn1.num_batches_tracked) >= 15 and bn1.running_mean.abs().sum() > 0


def test_batchnorm_and_dropout_resume_exactly(tmp_path: Path) -> None:
    from tests.conftest import assert_resume_exact

    cfg = tiny("benchmark.scenario=class", "model.batchnorm=true", "model.dropout=0.5", "training.l1_activation=0.5")
    assert_resume_exact(cfg, tmp_path, stop_at=27)


# -- the L1 activation penalty ------------------------------------------------------------------
def test_l1_term_is_lambda_times_the_sum_of_layer_means_of_the_same_forward() -> None:
    torch.manual_seed(0)
    m = _mlp(batchnorm=True).train()
    x1, x2 = torch.rand(8, 784), torch.rand(24, 784)
    l1 = ActivationL1(m, 0.3)
    with l1.capture():
        logits = m(x1)
    f = m.features(x1)
    term = l1.term()
    assert term is not None
    assert torch.allclose(term, 0.3 * (f["h1"].abs().mean() + f["h2"].abs().mean()))
    # Its gradient is that of the hand-written loss CE + λ·Σ mean|h|.
    y = torch.randint(10, (8,))
    params = list(m.parameters())
    got = torch.autograd.grad(F.cross_entropy(logits, y) + term, params)
    f = m.features(x1)
    want = torch.autograd.grad(F.cross_entropy(m.out(f["h2"]), y) + 0.3 * (f["h1"].abs().mean() + f["h2"].abs().mean()),
                               params)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, want))
    # Two forwards in one step (a mixed batch): the mean over every activation of the step.
    m.eval()
    with l1.capture():
        m(x1)
        m(x2)
    f1, f2 = m.features(x1), m.features(x2)
    want_mixed = sum(torch.cat([f1[k], f2[k]]).abs().mean() for k in ("h1", "h2"))
    assert torch.allclose(l1.term(), 0.3 * want_mixed)  # type: ignore[arg-type]
    # Outside capture() no hook is left behind.
    assert all(not mod._forward_hooks for mod in m.modules())
    assert ActivationL1(m, 0.0).term() is None


def test_the_loop_adds_and_records_the_l1_term(tmp_path: Path) -> None:
    res = api.run(tiny("training.l1_activation=0.5", "benchmark.scenario=class"), tmp_path / "a")
    assert res.status == "finished", res.error
    rec = read_run(res.run_dir)
    l1, loss, task = (rec.series[n].values for n in ("l1_activation", "loss", "task_loss"))
    assert (l1 > 0).all() and np.allclose(loss, task + l1)
    off = read_run(api.run(tiny("benchmark.scenario=class"), tmp_path / "b").run_dir)
    assert "l1_activation" not in off.series


def test_a_strong_l1_penalty_silences_units(tmp_path: Path) -> None:
    """Population sparsity (fraction of hidden activations exactly 0 on test images) rises with λ."""
    def sparsity(lam: float) -> float:
        trainer, _ = api.build_trainer(tiny(f"training.l1_activation={lam}", "benchmark.scenario=class", steps=60),
                                       tmp_path, lambda e: None)
        trainer.run()
        x = torch.cat([_all(t, "test").x for t in trainer.bench.tasks])
        with torch.no_grad():
            h = trainer.model.eval().features(x)["h1"]
        return float((h == 0).float().mean())

    assert sparsity(2.0) > sparsity(0.0) + 0.1  # measured: 0.96 vs 0.82


# -- presets ------------------------------------------------------------------------------------
STUDY = [n for n in preset_names() if n.startswith("study/")]


def test_the_study_presets_cover_section_11_4() -> None:
    assert {"study/sequential", "study/concurrent", "study/concurrent-bn", "study/sequential-dropout",
            "study/ogd-sgd", "study/ogd-adamw", "study/ogd-bn", "study/ogd-bn-l1", "study/ogd-bn-095",
            "study/concurrent-l1-1e-3", "study/concurrent-l1-1e-1", "study/concurrent-l1-1", "study/concurrent-l1-2",
            "study/sequential-wd-1e-1", "study/sequential-wd-1", "study/sequential-wd-5"} <= set(STUDY)


@pytest.mark.parametrize("name", STUDY)
def test_each_study_preset_is_the_studys_setting_with_an_honest_reference(name: str) -> None:
    cfg = load_preset(name)
    bench, model = cfg.benchmark.options, cfg.model.options
    concurrent = name.startswith("study/concurrent")
    assert bench.scenario == "class" and model.hidden == [120, 84]
    assert bench.task_order == ([[d for pair in ORDER for d in pair]] if concurrent else ORDER)
    assert bench.num_tasks == (1 if concurrent else 5)
    ref = cfg.reference
    assert "unverified" in ref.source and "§" not in ref.source + ref.notes
    assert "batch size" in ref.notes  # every unstated choice is named
    assert ref.final is None or 0 < ref.final < 100
    if cfg.method.name == "ogd":
        assert cfg.training.stop_train_acc in (95.0, 98.0)


# -- mixed batches through BatchNorm (the concurrent upper bound under the multitask method) -------
@pytest.mark.parametrize("batchnorm", [True, False])
def test_a_mixed_batch_goes_through_batchnorm_once(tmp_path: Path, batchnorm: bool) -> None:
    """With BatchNorm, the multitask method's mixed batch is forwarded once, so the statistics are the
    whole batch's (per-task sub-batches made `concurrent-bn` reach 69 % instead of ~98 %); without
    BatchNorm each task's share keeps its own forward, as every earlier version did."""
    cfg = tiny("benchmark.scenario=class", f"model.batchnorm={str(batchnorm).lower()}", method="multitask", steps=3)
    trainer, _ = api.build_trainer(cfg, tmp_path, lambda e: None)
    sizes: list[int] = []
    trainer.model.register_forward_hook(lambda _m, args, _out: sizes.append(int(args[0].shape[0])))
    trainer.run(stop_at_step=2)
    train_sizes = [n for n in sizes if n <= 32]  # training forwards (evaluation chunks hold >= 50 images)
    if batchnorm:
        assert trainer.fwd.forward_once and train_sizes == [32, 32]
    else:  # one forward per task's share: 3 tasks, shares summing to each step's 32
        assert not trainer.fwd.forward_once and len(train_sizes) == 6 and all(n < 32 for n in train_sizes)
        assert sum(train_sizes[:3]) == sum(train_sizes[3:]) == 32
