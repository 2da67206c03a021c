"""SupSup: the supermask model, the supsup method, one-shot task inference and SupSup's Permuted-MNIST."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from engine import api
from engine.benchmarks.base import Benchmark, InputSpec
from engine.config import TrainingConfig
from engine.errors import ConfigError
from engine.inference import entropy_objective, g_objective
from engine.methods.base import MethodContext
from engine.methods.supsup import Supsup, SupsupOptions
from engine.models.base import build_model
from engine.models.supermask import (
    SupermaskMLP,
    SupermaskMlpOptions,
    binary_mask,
    er_keep_fraction,
    pack_bits,
    unpack_bits,
)
from engine.presets import load_preset
from engine.store import read_run
from tests.conftest import assert_resume_exact

torch.set_num_threads(1)


def _net(rule: str = "gnu", hidden: list[int] | None = None, n_in: int = 12, outputs: int = 9) -> SupermaskMLP:
    torch.manual_seed(0)
    opts = SupermaskMlpOptions(hidden=[7, 5] if hidden is None else hidden, outputs=outputs, mask_rule=rule,
                               er_scale=2.0)
    model = build_model("supermask_mlp", opts, InputSpec((n_in,), 4))
    assert isinstance(model, SupermaskMLP)
    return model


def _tiny(*overrides: str, steps: int = 20, tasks: int = 3) -> object:
    """Seconds-long SupSup on the embedded MNIST subset, permuted as in SupSup."""
    return load_preset("supsup/gnu-lenet-25", [
        "benchmark.data=embedded", f"benchmark.num_tasks={tasks}", "model.hidden=[24]", "model.outputs=20",
        f"training.steps_per_task={steps}", "training.batch_size=32", "training.lr=0.01", "training.log_every=5",
        "analyses.curves.every=10", "analyses.curves.samples=50", "evaluation.inference_at=[]", "threads=1",
        *overrides])


# -- the model -------------------------------------------------------------------------------------
def test_weights_are_signed_constants_without_bias_and_frozen() -> None:
    model = _net(hidden=[300, 100], n_in=784, outputs=100)
    assert [(n, tuple(p.shape)) for n, p in model.named_parameters()] == [
        ("fc1.weight", (300, 784)), ("fc1.scores", (300, 784)), ("fc2.weight", (100, 300)),
        ("fc2.scores", (100, 300)), ("out.weight", (100, 100)), ("out.scores", (100, 100))]
    for layer in model.masked.values():
        assert layer.bias is None and not layer.weight.requires_grad and layer.scores.requires_grad
        c = math.sqrt(2.0) / math.sqrt(layer.in_features)  # relu gain, fan_in
        assert torch.allclose(layer.weight.abs(), torch.full_like(layer.weight, c))
        assert 0.45 < (layer.weight > 0).float().mean() < 0.55  # signs of a symmetric default init
        bound = 1.0 / math.sqrt(layer.in_features)  # kaiming_uniform a=√5 = U(±1/√fan_in)
        assert layer.scores.abs().max() <= bound and layer.scores.abs().max() > 0.9 * bound


@pytest.mark.parametrize("rule", ["gnu", "gg"])
def test_straight_through_gradient_is_the_dense_gradient_times_the_weights(rule: str) -> None:
    """∂L/∂scores = ∂L/∂W_eff ⊙ W on every edge (⊙ sign(scores) for GG, whose mask ranks |scores|),
    where ∂L/∂W_eff is the gradient of the dense network whose weights are W_eff = W ⊙ M (the mask's
    chosen edges), computed independently."""
    model = _net(rule)
    x, y = torch.randn(16, 12, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 9
    F.cross_entropy(model(x), y).backward()
    # The dense network by hand, with the chosen edges' weights as leaves.
    eff = {n: (m.weight * binary_mask(m.scores.detach(), m.rule, m.keep)).requires_grad_(True)
           for n, m in model.masked.items()}
    h = torch.relu(x @ eff["fc1"].T)
    h = torch.relu(h @ eff["fc2"].T)
    F.cross_entropy(h @ eff["out"].T, y).backward()
    for name, layer in model.masked.items():
        assert layer.weight.grad is None
        expected = eff[name].grad * layer.weight
        if rule == "gg":  # the reference's GetSubnet(scores.abs(), k): the chain rule through abs
            expected = expected * layer.scores.detach().sign()
        assert torch.allclose(layer.scores.grad, expected, atol=1e-7, rtol=1e-5)
        off = binary_mask(layer.scores.detach(), layer.rule, layer.keep) == 0
        assert off.any() and layer.scores.grad[off].abs().sum() > 0  # dropped edges get gradients too


def test_gnu_mask_is_scores_at_least_zero_and_gg_keeps_the_top_k_of_the_er_budget() -> None:
    s = torch.tensor([[-0.5, 0.0, 0.2], [0.1, -0.0, -3.0]])
    assert torch.equal(binary_mask(s, "gnu", 1.0), torch.tensor([[0.0, 1, 1], [1, 1, 0]]))
    assert er_keep_fraction(300, 784, 1.0) == pytest.approx((300 + 784) / (300 * 784))
    assert er_keep_fraction(4, 4, 32.0) == 0.5  # capped at half the layer
    model = _net("gg")
    for layer in model.masked.values():
        m = binary_mask(layer.scores, "gg", layer.keep)
        n = m.numel()
        assert int(m.sum()) == n - int((1 - layer.keep) * n)
        kept, dropped = layer.scores.abs()[m == 1], layer.scores.abs()[m == 0]
        assert kept.min() >= dropped.max()
        assert layer.keep == er_keep_fraction(layer.out_features, layer.in_features, 2.0)


def test_packed_masks_match_numpy_packbits_and_cost_one_bit_per_edge() -> None:
    g = torch.Generator().manual_seed(3)
    for e in (1, 7, 8, 9, 275_200):
        bits = torch.rand(e, generator=g) < 0.5
        packed = pack_bits(bits)
        assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(e / 8)
        assert np.array_equal(packed.numpy(), np.packbits(bits.numpy()))
        assert torch.equal(unpack_bits(packed, e), bits)


def _toy_method(num_tasks: int, net: SupermaskMLP, n_real: int) -> Supsup:
    cols = torch.arange(n_real).repeat(num_tasks, 1)
    bench = Benchmark([None] * num_tasks, cols, InputSpec((net.n_in,), n_real), "toy", {})  # type: ignore[list-item]
    return Supsup(SupsupOptions(), MethodContext(net, bench, torch.device("cpu"), TrainingConfig(), 0))


def test_mask_memory_is_the_bit_count_over_eight() -> None:
    net = build_model("supermask_mlp", SupermaskMlpOptions(hidden=[300, 100], outputs=100), InputSpec((784,), 10))
    method = _toy_method(250, net, 10)  # type: ignore[arg-type]
    edges = 784 * 300 + 300 * 100 + 100 * 100
    assert method.mask_bytes == math.ceil(edges / 8) == 34_400
    assert method.bank.dtype == torch.uint8 and method.bank.shape == (250, 34_400)
    assert method.describe()["mask_bytes_all_tasks"] == 250 * 34_400


def _set_masks(method: Supsup, masks: list[dict[str, Tensor]]) -> None:
    """Learned masks given by hand (what after_phase would cache)."""
    for t, m in enumerate(masks):
        flat = torch.cat([m[n].flatten() for n in method.net.masked]).bool()
        method.bank[t] = pack_bits(flat)
        method.learned[t] = True
    method._stacks = None  # after_phase drops the stacked masks the same way


def test_the_true_tasks_alpha_gradient_is_the_most_negative() -> None:
    """One layer, k = 4 learned masks, input j's block positive along W's signs: mask j connects all of
    block j to output 0, every other mask only half of it. Raising α_j sharpens output 0 the most, so
    H's gradient is most negative at j; the fifth, unlearned task's entry is exactly 0."""
    k, block, n_out = 4, 6, 5
    net = _net(hidden=[], n_in=k * block, outputs=n_out)
    method = _toy_method(k + 1, net, n_real=2)
    w = net.out.weight.detach()
    masks = []
    for t in range(k):
        m = torch.zeros(n_out, k * block)
        for b in range(k):
            cols = range(b * block, (b + 1) * block) if b == t else range(b * block, b * block + block // 2)
            m[0, list(cols)] = 1
        masks.append({"out": m})
    _set_masks(method, masks)
    xs = torch.zeros(k, k * block)
    for j in range(k):
        xs[j, j * block : (j + 1) * block] = w[0, j * block : (j + 1) * block].sign()
    grads: list[Tensor] = []
    assert torch.equal(method.infer_task(xs, None, list(range(k)), entropy_objective), torch.arange(k))
    for j in range(k):  # the gradient itself, through the same superposed forward
        alpha = torch.full((1, k), 1.0 / k, requires_grad=True)
        stacks = method._stacked(list(range(k)))
        with net.using_masks({n: torch.einsum("nk,koi->noi", alpha, s) for n, s in stacks.items()}):
            (g,) = torch.autograd.grad(entropy_objective(net(xs[j : j + 1])).sum(), alpha)
        grads.append(g[0])
        assert g[0, j] < 0 and g[0].argmin() == j
        assert torch.all(g[0] < 0)  # the other masks help too, only less
    assert len(grads) == k


def test_g_objective_sends_no_gradient_through_real_class_logits() -> None:
    real = torch.tensor([True, True, True, False, False])
    logits = torch.randn(3, 5, requires_grad=True)
    value = g_objective(real)(logits)
    assert torch.allclose(value, logits.logsumexp(1))
    (g,) = torch.autograd.grad(value.sum(), logits)
    assert torch.all(g[:, :3] == 0) and torch.all(g[:, 3:] != 0)


def test_g_inference_ignores_masks_that_only_move_real_classes_and_may_pick_an_unlearned_task() -> None:
    """Masks touching only the real outputs give G-gradients of exactly 0 for every learned task; masks
    raising a superfluous unit give positive ones. Either way argmin runs over all num_tasks entries,
    so with 2 of 3 tasks learned the unlearned index 2 can win (the reference's edge case)."""
    net = _net(hidden=[], n_in=4, outputs=4)
    method = _toy_method(3, net, n_real=2)
    w = net.out.weight.detach()
    x = w[3].sign().unsqueeze(0)  # raises superfluous unit 3 through any mask on row 3
    real_only = {"out": torch.zeros(4, 4).index_fill_(0, torch.tensor([0, 1]), 1)}
    _set_masks(method, [real_only, real_only])
    real = torch.tensor([True, True, False, False])
    # All learned gradients 0, unlearned 0 too: the first minimum is index 0.
    assert method.infer_task(x, None, [0, 1], g_objective(real)).tolist() == [0]
    to_superfluous = {"out": torch.zeros(4, 4).index_fill_(0, torch.tensor([3]), 1)}
    _set_masks(method, [to_superfluous, to_superfluous])
    assert method.infer_task(x, None, [0, 1], g_objective(real)).tolist() == [2]


# -- the method in runs ----------------------------------------------------------------------------
def test_a_learned_mask_never_changes_and_its_task_is_never_forgotten(tmp_path: Path) -> None:
    trainer, _ = api.build_trainer(_tiny(), tmp_path, lambda e: None)
    assert trainer.run(stop_at_step=20) == "interrupted"  # right after task 0
    method = trainer.method
    assert isinstance(method, Supsup) and method.learned == [True, False, False]
    bank0 = method.bank[0].clone()
    x = trainer.bench.tasks[0].get("test", torch.arange(64)).x
    with torch.no_grad():
        out0 = method.forward(x, None, 0)
    assert trainer.run() == "finished"
    assert torch.equal(method.bank[0], bank0) and method.learned == [True, True, True]
    assert not torch.equal(method.bank[1], bank0)
    with torch.no_grad():
        assert torch.equal(method.forward(x, None, 0), out0)
    assert trainer.acc[0, 0] == trainer.acc[1, 0] == trainer.acc[2, 0]
    # The frozen weights never moved; only scores were optimized.
    assert all(p is layer.scores for p, layer in zip(method.trainable_parameters(), method.net.masked.values()))


def test_inference_series_agree_with_the_given_task_accuracy(tmp_path: Path) -> None:
    res = api.run(_tiny("evaluation.task_inference=g", "evaluation.inference_at=[1, 3]", steps=60), tmp_path)
    assert res.status == "finished", res.error
    rec = read_run(res.run_dir)
    inferred, classified = rec.series["inferred_task_acc"], rec.series["inference_acc"]
    assert inferred.steps.tolist() == classified.steps.tolist() == [60, 180]
    assert np.isnan(inferred.values[0, 1:]).all() and not np.isnan(inferred.values[1]).any()
    for row, phase in ((1, 2), (0, 0)):
        for t in range(row * 2 + 1):
            # Images of wrongly inferred batches count wrong: never above the given-task accuracy,
            # and equal to it when every batch's task was inferred.
            assert classified.values[row, t] <= res.acc[phase, t] + 1e-9
            if inferred.values[row, t] == 100.0:
                assert classified.values[row, t] == pytest.approx(res.acc[phase, t])
    assert np.nanmean(inferred.values[1]) > 60  # far above chance (1/3) after 60 steps per task
    # What the views show: one row per point, means over the learned tasks, the given accuracy beside.
    from engine.inference_view import inference_points

    points = inference_points(rec)
    assert [(p.learned, p.step) for p in points] == [(1, 60), (3, 180)]
    assert points[1].task_acc == pytest.approx(np.mean(inferred.values[1]))
    assert points[1].inferred_acc == pytest.approx(np.mean(classified.values[1]))
    assert points[1].given_acc == pytest.approx(np.mean(res.acc[2])) and points[0].given_acc == res.acc[0, 0]
    from rich.console import Console

    from cltui.views import run_summary

    console = Console(width=120, record=True)
    console.print(run_summary(rec))
    assert "task inference" in console.export_text()
    assert rec.environment["method_info"]["mask_bytes_per_task"] == math.ceil((784 * 24 + 24 * 20) / 8)


def test_task_inference_leaves_training_bit_identical(tmp_path: Path) -> None:
    from engine.checkpoint import load_checkpoint
    from tests.conftest import assert_same_state

    given = api.run(_tiny("evaluation.task_inference=given"), tmp_path / "given")
    inferred = api.run(_tiny("evaluation.task_inference=h"), tmp_path / "h")
    assert np.array_equal(given.acc, inferred.acc, equal_nan=True)
    a, b = load_checkpoint(given.run_dir), load_checkpoint(inferred.run_dir)
    for key in ("model", "optimizer", "method", "streams", "rng"):
        assert_same_state(a[key], b[key], key)


@pytest.mark.parametrize("stop", [20, 27])  # 20 = just after the inference point at 1 task; 27 = mid-task
def test_resume_is_exact_mid_task_and_across_an_inference_point(tmp_path: Path, stop: int) -> None:
    cfg = _tiny("evaluation.inference_at=[1, 2, 3]", "checkpoint.every_seconds=0")
    full, _ = assert_resume_exact(cfg, tmp_path, stop)
    assert read_run(full.run_dir).series["inferred_task_acc"].steps.tolist() == [20, 40, 60]


def test_inference_settings_are_refused_where_they_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="method 'finetune' cannot infer the task"):
        load_preset("demo", ["evaluation.task_inference=h"])
    with pytest.raises(ConfigError, match="needs model.name = 'supermask_mlp'"):
        api.run(load_preset("demo", ["method.name=supsup"]), tmp_path)
    with pytest.raises(ConfigError, match=r"\[5\] exceed the run's 3 tasks"):
        api.run(_tiny("evaluation.inference_at=[2, 5]"), tmp_path)
    with pytest.raises(ConfigError, match="increasing"):
        _tiny("evaluation.inference_at=[3, 2]")
    assert not any(tmp_path.iterdir())  # nothing was left behind


# -- SupSup's Permuted-MNIST -----------------------------------------------------------------------
def test_per_task_permutations_are_what_np_random_seed_draws(tmp_path: Path) -> None:
    from engine.benchmarks.permuted_mnist import PermutedMnistOptions, build_permuted_mnist

    opts = PermutedMnistOptions(data="embedded", num_tasks=4, permutations="per_task", permutation_seed=1,
                                normalize=True)
    bench = build_permuted_mnist(opts, torch.device("cpu"), tmp_path, 0)
    state = np.random.get_state()
    try:
        for i in range(4):
            np.random.seed(i + 1)  # the reference's draw, on the global RNG
            assert np.array_equal(bench.tasks[i]._perm.numpy(), np.random.permutation(784))  # type: ignore[attr-defined]
    finally:
        np.random.set_state(state)
    plain = build_permuted_mnist(PermutedMnistOptions(data="embedded", num_tasks=4), torch.device("cpu"), tmp_path, 0)
    rs = np.random.RandomState(0)  # the default is unchanged: one stream, task after task
    for i in range(4):
        assert np.array_equal(plain.tasks[i]._perm.numpy(), rs.permutation(784))  # type: ignore[attr-defined]
    idx = torch.arange(5)
    raw, norm = plain.tasks[2].get("test", idx), bench.tasks[2].get("test", idx)
    perm = bench.tasks[2]._perm  # type: ignore[attr-defined]
    unperm = plain.tasks[2].get("test", idx).x[:, torch.argsort(plain.tasks[2]._perm)]  # type: ignore[attr-defined]
    assert torch.allclose(norm.x, (unperm[:, perm] - 0.1307) / 0.3081, atol=1e-6)
    assert torch.equal(raw.y, norm.y)
