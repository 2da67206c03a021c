"""Loss of plasticity (spec §10): ResGnT by hand, the plasticity metrics by hand, incremental CIFAR-100's
class order, split and augmentation, and the tiny preset end to end with an exact mid-stage resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from engine.analyses.plasticity import (
    active_fraction,
    dormant_counts,
    effective_rank,
    mean_abs_weight,
    stable_rank,
)
from engine.benchmarks.base import Benchmark, InputSpec
from engine.catalog import load_all
from engine.config import TrainingConfig
from engine.data.augment import augment_cifar
from engine.methods.base import MethodContext
from engine.methods.cbp import Cbp, CbpOptions
from engine.models.base import CLModel, UnitGate, UnitWiring
from engine.models.resnet18 import ChannelGate
from tests.cifar_fixture import write_cifar100
from tests.conftest import assert_same_final_state, assert_same_series

torch.set_num_threads(1)
load_all()


# -- continual backprop on a tiny conv net, by hand -----------------------------------------------
class TinyConvNet(CLModel):
    """conv1(1→3) BN ReLU → "c1"; conv2(3→2) BN ReLU, mean-pooled → "p"; fc(2→2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1, self.c1 = nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), ChannelGate(3)
        self.conv2, self.bn2, self.p = nn.Conv2d(3, 2, 3, padding=1), nn.BatchNorm2d(2), UnitGate(2)
        self.fc = nn.Linear(2, 2)
        self.n_outputs, self.readout, self.unit_layers = 2, "fc", {"c1": 3, "p": 2}

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        a = self.c1(torch.relu(self.bn1(self.conv1(x))))
        return {"c1": a, "p": self.p(torch.relu(self.bn2(self.conv2(a))).mean(dim=(2, 3)))}

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        out: Tensor = self.fc(self.features(x)["p"])
        return out

    def unit_wiring(self) -> list[UnitWiring]:
        return [UnitWiring("c1", self.conv1, self.bn1, self.conv2), UnitWiring("p", self.conv2, self.bn2, self.fc)]


def _cbp(rate: float, maturity: int, utility: str = "contribution") -> tuple[TinyConvNet, Cbp, Tensor]:
    torch.manual_seed(0)
    model = TinyConvNet()
    bench = Benchmark([], torch.zeros(1, 2, dtype=torch.long), InputSpec((1, 4, 4), 2), "none", {})
    ctx = MethodContext(model=model, benchmark=bench, device=torch.device("cpu"), training=TrainingConfig(), seed=3)
    x = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    return model, Cbp(CbpOptions(replacement_rate=rate, maturity=maturity, utility=utility), ctx), x


def _train_forward(method: Cbp, x: Tensor) -> None:
    method.model.train()
    with torch.enable_grad():
        method.forward(x, None, 0)


def test_cbp_activity_is_a_growing_sum_and_nothing_happens_before_maturity() -> None:
    model, m, x = _cbp(rate=0.5, maturity=3)
    with torch.no_grad():
        f = model.features(x)  # train mode: batch statistics, the same at every step (no optimizer here)
    means = {"c1": f["c1"].abs().mean(dim=(0, 2, 3)), "p": f["p"].abs().mean(dim=0)}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(1, 4):
        _train_forward(m, x)
        m.after_step(0, [0])
        for i, name in enumerate(("c1", "p")):
            # (1 − η) Σ mean|f|: never multiplied by η (the reference's gotcha), so 3 steps = 3 × 0.01 × mean
            assert torch.allclose(m.activity[i], step * 0.01 * means[name], rtol=1e-5)
            assert m.ages[i].tolist() == [step] * m.units[i]
    # ages 3 are not > maturity 3: no counter, no replacement, weights untouched (BN running stats move in train mode)
    assert m.counter == [0.0, 0.0] and m.replaced_in_phase == [0, 0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k)


def test_cbp_replaces_the_lowest_utility_mature_unit_by_hand() -> None:
    model, m, x = _cbp(rate=1 / 3, maturity=3)  # layer c1: 3 units × 1/3 = 1 unit per step once mature
    with torch.no_grad():
        model.conv2.weight.fill_(0.5)
        model.conv2.weight[:, 1] = 0.01  # unit 1 of c1 has tiny outgoing weights → lowest utility
        model.bn1.weight.fill_(2.0)
        model.bn1.bias.fill_(0.3)
    for _ in range(3):
        _train_forward(m, x)
        m.after_step(0, [0])
    act = m.activity[0].clone()
    mag = model.conv2.weight.detach().abs().mean(dim=(0, 2, 3))
    old_conv1 = model.conv1.weight.detach().clone()
    old_bn = (model.bn1.running_mean.clone(), model.bn1.running_var.clone())
    old_conv2_others = model.conv2.weight.detach()[:, [0, 2]].clone()
    _train_forward(m, x)
    with torch.no_grad():
        f = model.features(x)
    m.after_step(0, [0])  # step 4: ages 4 > 3 → counter 1/3... for c1: 3 × 1/3 = 1.0 → one unit
    expected_act = act + 0.01 * f["c1"].abs().mean(dim=(0, 2, 3))
    assert torch.allclose(m.activity[0], expected_act, rtol=1e-5)  # not reset for the replaced unit
    util = mag * expected_act
    assert int(torch.argmin(util)) == 1
    assert m.replaced_in_phase[0] == 1 and m.ages[0].tolist() == [4, 0, 4] and m.util[0][1] == 0
    assert m.util[0][0] == pytest.approx(float(util[0])) and m.util[0][2] == pytest.approx(float(util[2]))
    # incoming kernel redrawn (N(0, 2/fan_in), fan_in = 1·3·3), bias 0; the others untouched
    w = model.conv1.weight.detach()
    assert not torch.equal(w[1], old_conv1[1]) and torch.equal(w[[0, 2]], old_conv1[[0, 2]])
    assert model.conv1.bias[1] == 0 and float(w[1].abs().max()) < 5 * math.sqrt(2 / 9)
    # outgoing weights (every output and kernel position) zeroed; the others untouched
    assert torch.all(model.conv2.weight[:, 1] == 0) and torch.equal(model.conv2.weight.detach()[:, [0, 2]], old_conv2_others)
    # its BN reset: weight 1, bias 0, running mean 0, running var 1; other channels keep theirs
    assert model.bn1.weight[1] == 1 and model.bn1.bias[1] == 0
    assert model.bn1.running_mean[1] == 0 and model.bn1.running_var[1] == 1
    assert model.bn1.weight[0] == 2 and model.bn1.running_mean[0] != 0 and old_bn[0][0] != 0
    # layer p (2 units × 1/3 per step): counter 2/3 after its first mature step, nothing replaced yet
    assert m.counter[1] == pytest.approx(2 / 3) and m.replaced_in_phase[1] == 0 and m.counter[0] == pytest.approx(0.0)


def test_cbp_fractional_counter_accumulates_only_while_units_are_mature() -> None:
    model, m, x = _cbp(rate=0.1, maturity=0)  # c1: 0.3 per step; p: 0.2 per step
    for _ in range(10):
        _train_forward(m, x)
        m.after_step(0, [0])
    # replaced units restart at age 0 (not mature), but the others still are, so the counter runs every
    # step; by hand with the same float arithmetic: counter += rate × units, replace ⌊counter⌋, keep the rest
    for i, units in enumerate((3, 2)):
        acc, replaced = 0.0, 0
        for _ in range(10):
            acc += 0.1 * units
            replaced += int(acc)
            acc -= int(acc)
        assert m.counter[i] == acc and m.replaced_in_phase[i] == replaced
    assert m.replaced_in_phase == [3, 2]


def test_cbp_weight_utility_ignores_activity_and_state_round_trips() -> None:
    model, m, x = _cbp(rate=0.5, maturity=0, utility="weight")
    _train_forward(m, x)
    assert torch.allclose(m.utility(1), model.fc.weight.detach().abs().mean(dim=0))
    m.after_step(0, [0])
    _, other, _ = _cbp(rate=0.5, maturity=0, utility="weight")
    other.load_state_dict(m.state_dict())
    for a, b in zip(m.state_dict()["ages"] + m.state_dict()["activity"], other.state_dict()["ages"] + other.state_dict()["activity"]):
        assert torch.equal(a, b)
    assert other.counter == m.counter


def test_cbp_ignores_forwards_without_autograd() -> None:
    model, m, x = _cbp(rate=0.5, maturity=100)
    with torch.no_grad():
        m.forward(x, None, 0)  # an evaluation or an observer
    m.after_step(0, [0])
    assert torch.all(m.activity[0] == 0)


# -- plasticity metrics, by hand -----------------------------------------------------------------
def test_dormant_units_over_samples_and_positions() -> None:
    dense = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert active_fraction(dense).tolist() == [0.0, 0.25, 1.0]
    assert dormant_counts({"a": dense}, 0.01) == ([1], [3])
    assert dormant_counts({"a": dense}, 0.3) == ([2], [3])
    conv = torch.zeros(2, 2, 3, 3)
    conv[1, 1, 2, 2] = 5.0  # channel 1: 1 of 18 (sample, position) activations non-zero = 0.0556
    assert torch.allclose(active_fraction(conv), torch.tensor([0.0, 1 / 18], dtype=torch.float64))
    assert dormant_counts({"a": dense, "b": conv}, 0.05) == ([1, 1], [3, 2])
    assert dormant_counts({"b": conv}, 0.06) == ([2], [2])


def test_stable_rank_is_the_99_percent_singular_value_count_not_the_norm_ratio() -> None:
    a = torch.diag(torch.tensor([3.0, 1.0, 0.5, 0.5]))
    sv = torch.linalg.svdvals(a)
    assert stable_rank(sv, 0.99) == 4  # cumulative 3, 4, 4.5, 5 of 5: 99 % needs all four
    assert stable_rank(sv, 0.8) == 2  # 4 >= 0.8 × 5
    assert stable_rank(sv, 0.6) == 1
    norm_ratio = float((sv**2).sum() / sv.max() ** 2)
    assert norm_ratio == pytest.approx(10.5 / 9)  # what it is not
    assert stable_rank(torch.tensor([0.5, 3.0, 1.0, 0.5]), 0.8) == 2  # order does not matter


def test_effective_rank_by_hand() -> None:
    assert effective_rank(torch.tensor([1.0, 1.0, 0.0, 0.0])) == pytest.approx(2.0)
    # p = (1/2, 1/4, 1/4): H = 1.5 ln 2
    assert effective_rank(torch.tensor([2.0, 1.0, 1.0])) == pytest.approx(2**1.5)
    assert effective_rank(torch.tensor([5.0])) == pytest.approx(1.0)
    assert mean_abs_weight([torch.tensor([1.0, -3.0]), torch.tensor([[2.0, 0.0]])]) == pytest.approx(1.5)


# -- incremental CIFAR-100: class order, split, augmentation ---------------------------------------
@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("cifar")
    return root, write_cifar100(root, train_per_class=20, test_per_class=10, classes=100)


def _bench(archive: tuple[Path, str], seed: int, **opts: object) -> Benchmark:
    from engine.benchmarks.incremental_cifar100 import IncrementalCifar100Options, build_incremental_cifar100

    root, md5 = archive
    o = IncrementalCifar100Options(**{"classes_per_stage": 2, "num_stages": 3, "val_per_class": 5,
                                      "archive_md5": md5, **opts})  # type: ignore[arg-type]
    return build_incremental_cifar100(o, torch.device("cpu"), root, seed)


def test_class_order_and_split_are_reproducible_from_the_seed(archive: tuple[Path, str]) -> None:
    from engine.data.cifar100 import load_cifar100

    a, b, c = _bench(archive, 7), _bench(archive, 7), _bench(archive, 8)
    assert a.info["class_order"] == b.info["class_order"] != c.info["class_order"]
    assert sorted(a.info["class_order"]) == list(range(100))
    order = a.info["class_order"]
    arrays = load_cifar100(archive[0], download=False, expected_md5=archive[1])
    for k, task in enumerate(a.tasks):
        active = order[: 2 * (k + 1)]
        assert a.head(k).tolist() == active  # logits sliced to the active classes, in class order
        assert task.size("train") == 15 * len(active) and task.size("val") == 5 * len(active)
        assert task.size("test") == 10 * len(active)
        for split in ("train", "val", "test"):
            i = torch.arange(task.size(split))
            assert torch.equal(task.get(split, i).y, b.tasks[k].get(split, i).y)
            assert torch.equal(task.get(split, i).x, b.tasks[k].get(split, i).x)
    # validation = the first 5 training images of each class in file order; labels = place in the order
    t0 = a.tasks[0]
    val = t0.get("val", torch.arange(10))
    first = np.flatnonzero(arrays.y_train == order[0])[:5]
    x = torch.from_numpy(arrays.x_train[first]).float() / 255
    mean = torch.tensor((0.5071, 0.4865, 0.4409)).view(1, 3, 1, 1)
    std = torch.tensor((0.2673, 0.2564, 0.2762)).view(1, 3, 1, 1)
    assert torch.allclose(val.x[:5], (x - mean) / std) and val.y.tolist() == [0] * 5 + [1] * 5
    train_first = t0.get("train", torch.arange(1)).x
    nxt = np.flatnonzero(arrays.y_train == order[0])[5]
    assert torch.allclose(train_first, (torch.from_numpy(arrays.x_train[nxt : nxt + 1]).float() / 255 - mean) / std)


def test_augmentation_is_deterministic_and_resumable() -> None:
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(5)
    first = augment_cifar(x, g)
    state = g.get_state()
    second = augment_cifar(x, g)
    g2 = torch.Generator().manual_seed(5)
    assert torch.equal(augment_cifar(x, g2), first)
    g3 = torch.Generator()
    g3.set_state(state)  # resumed from a checkpointed stream state
    assert torch.equal(augment_cifar(x, g3), second) and not torch.equal(first, second)
    assert torch.equal(augment_cifar(x, torch.Generator(), pad=0, max_degrees=0, flip_p=0), x)
    assert torch.equal(augment_cifar(x, torch.Generator(), pad=0, max_degrees=0, flip_p=1), x.flip(3))
    # a crop of the reflect-padded image keeps the central 24×24 pixels of some shift of the image
    out = augment_cifar(x, torch.Generator().manual_seed(1), max_degrees=0, flip_p=0)
    assert out.shape == x.shape and torch.isin(out[:, :, 16, 16], x).all()


# -- the tiny preset end to end --------------------------------------------------------------------
def _tiny(md5: str, *extra: str):  # noqa: ANN202
    from engine.presets import load_preset

    return load_preset("lop/incremental-cifar100-tiny",
                       [f"benchmark.archive_md5={md5}", "threads=1", "device=cpu", "checkpoint.every_seconds=0",
                        *extra])


def test_tiny_preset_runs_and_records_lop_series(tmp_path: Path, archive: tuple[Path, str]) -> None:
    from engine import api
    from engine.store import read_run

    res = api.run(_tiny(archive[1]), tmp_path, data_dir=archive[0])
    assert res.status == "finished", res.error
    rec = read_run(res.run_dir)
    epochs = rec.series["epoch_test_acc"]
    assert len(epochs.steps) == 3 * 4 and np.all((epochs.values >= 0) & (epochs.values <= 100))
    assert rec.series["plasticity"].values.shape == (3, 4)
    assert rec.series["plasticity_dormant"].values.shape == (3, 17)
    assert rec.environment["benchmark_info"]["class_order"][:6] == _bench(archive, 0).info["class_order"][:6]
    assert rec.series["phase_steps"].values.tolist() == [12, 24, 36]  # 4 epochs × (15 × 2k / 10)


@pytest.mark.parametrize("method", ["cbp", "shrink_perturb", "retrained"])
def test_tiny_preset_resumes_exactly_mid_stage(tmp_path: Path, archive: tuple[Path, str], method: str) -> None:
    from engine import api

    extra = [f"method.name={method}"]
    if method == "cbp":  # replacements within these few steps
        extra += ["method.maturity=5", "method.replacement_rate=0.05"]
    cfg = _tiny(archive[1], *extra)
    full = api.run(cfg, tmp_path / "full", data_dir=archive[0])
    part = api.run(cfg, tmp_path / "part", data_dir=archive[0], stop_at_step=29)  # inside stage 2 (steps 12..36)
    assert part.status == "interrupted"
    resumed = api.resume(part.run_id, tmp_path / "part", data_dir=archive[0])
    assert resumed.status == "finished", resumed.error
    assert np.array_equal(resumed.acc, full.acc, equal_nan=True)
    assert_same_series(full.run_dir, resumed.run_dir)
    assert_same_final_state(full.run_dir, resumed.run_dir)
    if method == "cbp":
        from engine.store import read_run

        assert read_run(full.run_dir).series["cbp_replaced"].values.sum() > 0


def test_plasticity_observer_leaves_training_bit_identical(tmp_path: Path, archive: tuple[Path, str]) -> None:
    from engine import api

    on = api.run(_tiny(archive[1]), tmp_path / "on", data_dir=archive[0])
    off = api.run(_tiny(archive[1], "analyses.plasticity.enabled=false"), tmp_path / "off", data_dir=archive[0])
    assert np.array_equal(on.acc, off.acc, equal_nan=True)
    assert_same_final_state(on.run_dir, off.run_dir)


def test_plasticity_observer_on_the_mnist_mlp(tmp_path: Path) -> None:
    from engine import api
    from engine.store import read_run
    from tests.conftest import tiny

    res = api.run(tiny("analyses.plasticity.enabled=true", "analyses.plasticity.samples=100"), tmp_path)
    assert res.status == "finished", res.error
    rows = read_run(res.run_dir).series["plasticity"].values
    assert rows.shape == (3, 4) and np.all(rows[:, 1] >= 1) and np.all(rows[:, 3] > 0)


@pytest.mark.parametrize("method", ["retrained", "cbp"])
def test_resume_from_a_stage_end_checkpoint_equals_uninterrupted(tmp_path: Path, archive: tuple[Path, str],
                                                                 method: str) -> None:
    """A run killed right after a stage's end checkpoint resumes before the next stage's before_phase:
    the method must see the optimizer there too (retrained clears its momentum)."""
    from engine import api

    cfg = _tiny(archive[1], f"method.name={method}", "method.maturity=5" if method == "cbp" else "seed=0")
    full = api.run(cfg, tmp_path / "full", data_dir=archive[0])
    part = api.run(cfg, tmp_path / "part", data_dir=archive[0], stop_at_step=13)
    # Drop the interrupt checkpoint (step 13): the newest left is stage 0's end (step 12), as after a kill.
    (part.run_dir / "checkpoint.1.pt").replace(part.run_dir / "checkpoint.pt")
    resumed = api.resume(part.run_id, tmp_path / "part", data_dir=archive[0])
    assert resumed.status == "finished", resumed.error
    assert np.array_equal(resumed.acc, full.acc, equal_nan=True)
    assert_same_series(full.run_dir, resumed.run_dir)  # stage 1's losses: retrained re-inits all at stage 2
    assert_same_final_state(full.run_dir, resumed.run_dir)


def test_plasticity_next_batch_is_the_next_stages_new_classes(tmp_path: Path, archive: tuple[Path, str]) -> None:
    from engine import api

    trainer, _ = api.build_trainer(_tiny(archive[1], "analyses.plasticity.data=next", "analyses.plasticity.samples=25"),
                                   archive[0], lambda e: None)
    obs = trainer.observers.items[0]
    assert obs.name == "plasticity"
    (task, idx), = obs.pool(0)
    labels = trainer.bench.tasks[task].get("train", idx).y
    assert task == 1 and sorted(set(labels.tolist())) == [2, 3] and idx.numel() == 2 * 15  # stage 1's 2 new classes
    got = obs.batch(0)
    assert got is not None and got[0].shape == (25, 3, 32, 32)
    assert obs.pool(2) == [] and obs.batch(2) is None  # after the last stage
    assert obs.pool(1)[0][0] == 2
    seen_obs = api.build_trainer(_tiny(archive[1]), archive[0], lambda e: None)[0].observers.items[0]
    (t, idx), = seen_obs.pool(1)  # stage 1 holds stage 0's classes too: no image is pooled twice
    assert t == 1 and idx.numel() == 4 * 15
