"""SupSup GG on Split CIFAR-100: the split_cifar100 benchmark, GEMResNet18 of masked convs with per-task
BatchNorm, and the supsup method on it (runs use a generated archive, tests/cifar_fixture.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import api
from engine.benchmarks.base import InputSpec
from engine.benchmarks.split_cifar100 import MEAN, STD, SplitCifar100Options, build_split_cifar100
from engine.data.augment import augment_crop_flip
from engine.errors import ConfigError
from engine.methods.supsup import Supsup
from engine.models.base import build_model
from engine.models.supermask import MaskedConv2d, binary_mask
from engine.models.supermask_resnet import SupermaskResnet18, SupermaskResnet18Options, TaskBatchNorm2d
from engine.presets import load_preset
from tests.cifar_fixture import write_cifar100
from tests.conftest import assert_same_final_state, assert_same_series

torch.set_num_threads(1)
STEPS = 24  # steps per task of the tiny preset: 8 epochs × ceil(5 classes × 8 images / 16)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("cifar")
    return root, write_cifar100(root, train_per_class=10, test_per_class=5, classes=100)


def _tiny(md5: str, *extra: str):  # noqa: ANN202
    return load_preset("supsup/gg-splitcifar100-tiny",
                       [f"benchmark.archive_md5={md5}", "threads=1", "device=cpu", "checkpoint.every_seconds=0", *extra])


def _resnet(s: float = 1.0, width: int = 20, tasks: int = 20) -> SupermaskResnet18:
    torch.manual_seed(0)
    model = build_model("supermask_resnet18", SupermaskResnet18Options(width=width, er_scale=s, tasks=tasks),
                        InputSpec((3, 32, 32), 5))
    assert isinstance(model, SupermaskResnet18)
    return model


# -- the model -------------------------------------------------------------------------------------
def test_er_budget_per_layer_by_hand() -> None:
    """k = min(0.5, s·(c_out + c_in)/(c_out·c_in·kh·kw)), worked out for GEMResNet18 nf=20."""
    by_hand = {  # s = 1
        "conv1": (20 + 3) / (20 * 3 * 9), "layer1.0.conv1": (20 + 20) / (20 * 20 * 9),
        "layer2.0.conv1": (40 + 20) / (40 * 20 * 9), "layer2.0.shortcut.0": (40 + 20) / (40 * 20),
        "layer4.1.conv2": (160 + 160) / (160 * 160 * 9), "out": (5 + 160) / (5 * 160),
    }
    model = _resnet(1.0)
    assert len(model.masked) == 21  # 1 stem + 16 block convs + 3 shortcuts + the 1×1 "linear"
    for name, k in by_hand.items():
        assert model.masked[name].keep == pytest.approx(k, rel=1e-12)
    dense = _resnet(32.0)
    assert dense.masked["conv1"].keep == 0.5  # 32·23/540 > 0.5: capped
    assert dense.masked["out"].keep == 0.5
    assert dense.masked["layer4.1.conv2"].keep == pytest.approx(32 * 320 / (160 * 160 * 9))
    for layer in model.masked.values():  # the reference's count: ⌊(1 - k)·n⌋ smallest |scores| dropped
        m, n = binary_mask(layer.scores, "gg", layer.keep), layer.scores.numel()
        assert int(m.sum()) == n - int((1 - layer.keep) * n)
        assert layer.scores.abs()[m == 1].min() >= layer.scores.abs()[m == 0].max()


def test_convs_are_signed_constant_bias_free_frozen_and_bn_is_per_task_non_affine() -> None:
    model = _resnet(tasks=3)
    for layer in model.masked.values():
        c = math.sqrt(2.0) / math.sqrt(layer.weight[0].numel())  # relu gain, fan_in = c_in·kh·kw
        assert layer.bias is None and not layer.weight.requires_grad and layer.scores.requires_grad
        assert torch.allclose(layer.weight.abs(), torch.full_like(layer.weight, c))
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [f"{n}.scores" for n in model.masked]
    norms = [m for m in model.modules() if isinstance(m, TaskBatchNorm2d)]
    assert len(norms) == 1 + 16 + 3 and all(len(bn.bns) == 3 for bn in norms)
    assert all(not b.affine and b.track_running_stats for bn in norms for b in bn.bns)


def test_gg_straight_through_gradient_of_a_conv_passes_through_the_magnitudes() -> None:
    """GetSubnet(scores.abs(), k) in the reference: ∂L/∂scores = ∂L/∂W_eff ⊙ W ⊙ sign(scores)."""
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 4, 3, 1, 1, "gg", 0.3)
    conv.weight.data.copy_(torch.randn_like(conv.weight).sign() * 0.2)
    conv.scores.data.copy_(torch.randn_like(conv.scores))
    x = torch.randn(2, 3, 6, 6)
    conv(x).square().sum().backward()
    eff = (conv.weight * binary_mask(conv.scores.detach(), "gg", 0.3)).requires_grad_(True)
    F.conv2d(x, eff, None, 1, 1).square().sum().backward()
    assert eff.grad is not None and conv.scores.grad is not None
    assert torch.allclose(conv.scores.grad, eff.grad * conv.weight * conv.scores.sign(), atol=1e-6)


# -- the benchmark ---------------------------------------------------------------------------------
def test_class_order_labels_and_splits_are_the_references(archive: tuple[Path, str], tmp_path: Path) -> None:
    root, md5 = archive
    bench = build_split_cifar100(SplitCifar100Options(num_tasks=4, archive_md5=md5), torch.device("cpu"), root, 7)
    state = np.random.get_state()
    try:
        np.random.seed(7)  # RandSplitCIFAR100: np.random.seed(args.seed); perm = np.random.permutation(100)
        perm = np.random.permutation(100)
    finally:
        np.random.set_state(state)
    assert bench.info["class_order"] == perm.tolist()
    assert bench.class_map is not None and bench.class_map.tolist() == perm[:20].reshape(4, 5).tolist()
    assert bench.spec.n_outputs == 5 and bench.head_columns.tolist() == [[0, 1, 2, 3, 4]] * 4
    from engine.data.cifar100 import load_cifar100

    a = load_cifar100(root, expected_md5=md5)
    for t, task in enumerate(bench.tasks):
        for split, (xs, ys) in (("train", (a.x_train, a.y_train)), ("test", (a.x_test, a.y_test))):
            n = task.size(split)
            assert n == 5 * (10 if split == "train" else 5)  # every image of the task's classes
            b = task.get(split, torch.arange(n))
            assert sorted(set(b.y.tolist())) == [0, 1, 2, 3, 4]
            # Label y = the class's place in the task's slice of the permutation; pixels normalised.
            ids = task._index[split]  # type: ignore[attr-defined]
            assert (perm[5 * t + b.y.numpy()] == ys[ids.numpy()]).all()
            raw = torch.from_numpy(xs[ids.numpy()]).float() / 255
            expected = (raw - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
            assert torch.allclose(b.x, expected, atol=1e-6)
    with pytest.raises(ConfigError, match="class_order_seed"):
        build_split_cifar100(SplitCifar100Options(archive_md5=md5), torch.device("cpu"), root, 2**40)


def test_augmentation_is_a_zero_padded_crop_then_a_flip_of_the_raw_image() -> None:
    """Normalise-then-augment (with black's normalised value as padding) = torchvision's
    RandomCrop(32, padding=4) (zeros) then RandomHorizontalFlip on the raw image, then Normalize."""
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(6, 3, 32, 32, generator=g) + 0.1  # no pixel is black, so padding is visible
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    out = augment_crop_flip((raw - mean) / std, torch.Generator().manual_seed(5), fill=-torch.tensor(MEAN) / torch.tensor(STD))
    gen = torch.Generator().manual_seed(5)  # the same draws, image by image
    oy, ox = torch.randint(0, 9, (6,), generator=gen), torch.randint(0, 9, (6,), generator=gen)
    flip = torch.rand(6, generator=gen) < 0.5
    assert 0 < int(flip.sum()) < 6 and len(set(oy.tolist())) > 1
    padded = F.pad(raw, (4, 4, 4, 4))  # zeros
    for i in range(6):
        img = padded[i, :, oy[i] : oy[i] + 32, ox[i] : ox[i] + 32]
        img = img.flip(2) if flip[i] else img
        assert torch.allclose(out[i], (img - mean[0]) / std[0], atol=1e-6)


# -- the method in runs ----------------------------------------------------------------------------
def _bn_state(model: SupermaskResnet18, task: int) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n, m in model.named_modules() if isinstance(m, TaskBatchNorm2d)
            for k, v in m.bns[task].state_dict().items()}


def test_tiny_run_keeps_each_tasks_bn_stats_and_mask_bit_identical(archive: tuple[Path, str], tmp_path: Path) -> None:
    root, md5 = archive
    trainer, _ = api.build_trainer(_tiny(md5), root, lambda e: None)
    method, model = trainer.method, trainer.model
    assert isinstance(method, Supsup) and isinstance(model, SupermaskResnet18)
    untouched = _bn_state(model, 1)
    assert trainer.run(stop_at_step=2 * STEPS) == "interrupted"  # right after task 1
    assert method.learned == [True, True, False]
    bank, bn0, bn1 = method.bank[:2].clone(), _bn_state(model, 0), _bn_state(model, 1)
    assert any(not torch.equal(bn1[k], untouched[k]) for k in bn1)  # training task 1 moved its own stats
    x = trainer.bench.tasks[1].get("test", torch.arange(20)).x
    model.eval()
    with torch.no_grad():
        out1 = method.forward(x, None, 1)
    model.train()
    assert trainer.run() == "finished"  # trains task 2
    assert torch.equal(method.bank[:2], bank)  # earlier masks: bit-identical
    for before, now in ((bn0, _bn_state(model, 0)), (bn1, _bn_state(model, 1))):
        assert all(torch.equal(before[k], now[k]) for k in before)  # earlier BN stats: bit-identical
    model.eval()
    with torch.no_grad():
        assert torch.equal(method.forward(x, None, 1), out1)
    acc = trainer.acc
    assert (acc[1:, 0] == acc[0, 0]).all() and acc[2, 1] == acc[1, 1]  # nothing forgotten
    assert np.nanmean(np.diag(acc)) > 40  # far above chance (20 %) on the generated classes
    assert method.describe()["mask_bytes_per_task"] == math.ceil(sum(model.edges.values()) / 8)


def test_tiny_preset_resumes_exactly_mid_task(archive: tuple[Path, str], tmp_path: Path) -> None:
    root, md5 = archive
    cfg = _tiny(md5)
    full = api.run(cfg, tmp_path / "full", data_dir=root)
    part = api.run(cfg, tmp_path / "part", data_dir=root, stop_at_step=STEPS + 7)  # inside task 1
    assert part.status == "interrupted"
    resumed = api.resume(part.run_id, tmp_path / "part", data_dir=root)
    assert resumed.status == "finished", resumed.error
    assert np.array_equal(resumed.acc, full.acc, equal_nan=True)
    assert_same_series(full.run_dir, resumed.run_dir)
    assert_same_final_state(full.run_dir, resumed.run_dir)


def test_refusals_are_one_clear_line(archive: tuple[Path, str], tmp_path: Path) -> None:
    root, md5 = archive
    with pytest.raises(ConfigError, match="BatchNorm statistics per task; use evaluation.task_inference = 'given'"):
        api.run(_tiny(md5, "evaluation.task_inference=h"), tmp_path, data_dir=root)
    with pytest.raises(ConfigError, match="set model.tasks = 3"):
        api.run(_tiny(md5, "model.tasks=2"), tmp_path, data_dir=root)
    assert not any(tmp_path.iterdir())  # nothing was left behind


@pytest.mark.parametrize("s", [1, 2, 4, 8, 16, 32])
def test_gg_presets_are_the_reference_setting_with_an_honest_reference(s: int) -> None:
    cfg = load_preset(f"supsup/gg-splitcifar100-s{s}")
    b, m, tr = cfg.benchmark.options, cfg.model.options, cfg.training
    assert (cfg.benchmark.name, b.num_tasks, b.classes_per_task, b.augment) == ("split_cifar100", 20, 5, True)
    assert (cfg.model.name, m.width, m.mask_rule, m.er_scale, m.tasks) == ("supermask_resnet18", 20, "gg", s, 20)
    assert (tr.optimizer, tr.lr, tr.weight_decay, tr.batch_size, tr.epochs_per_task) == ("adam", 1e-3, 1e-4, 128, 250)
    assert tr.lr_schedule == "cosine_epochs" and tr.lr_min == 0 and tr.reset_optimizer
    assert cfg.method.name == "supsup" and cfg.evaluation.task_inference == "given"
    assert cfg.reference.final is None and "Fig. 3" in cfg.reference.source and "unverified" in cfg.reference.notes
