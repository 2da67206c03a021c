"""Masking and masking+SI: how masks are drawn, masked units output exactly 0 at every step, weights
used only by masked units get exactly zero gradient, masks survive checkpoint/resume, exact resume."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import api
from engine.api import build_trainer
from engine.checkpoint import load_checkpoint
from engine.config import load_config
from engine.methods.masking import Masking
from engine.methods.si import Si
from tests.conftest import assert_resume_exact

torch.set_num_threads(1)

HIDDEN = [32, 24]


def tiny_cfg(method: str, **opts: object):
    raw = {
        "name": f"tiny-{method}", "seed": 5, "device": "cpu",
        "benchmark": {"name": "split_mnist", "data": "embedded", "num_tasks": 3},
        "model": {"name": "mlp", "hidden": HIDDEN},
        "method": {"name": method, **opts},
        "training": {"steps_per_task": 20, "batch_size": 32},
        "evaluation": {"initial": False}, "analyses": {"curves": {"enabled": False}},
    }
    return load_config(raw, "test")


@pytest.mark.parametrize("method", ["masking", "masking_si"])
def test_masks_are_drawn_from_the_global_numpy_rng_with_floor_units_off(method: str) -> None:
    p = 0.6
    tr, _ = build_trainer(tiny_cfg(method, mask_fraction=p), Path("."), lambda e: None)
    np.random.seed(5)  # the run seed; nothing else draws from the global NumPy RNG before the method
    for t in range(3):
        for layer, units in enumerate(HIDDEN):
            m = tr.method.masks[t][layer]
            off = np.random.permutation(units)[: math.floor(units * p)]
            expected = np.ones(units, dtype=np.float32)
            expected[off] = 0
            assert m.shape == (units,) and int((m == 0).sum()) == math.floor(units * p)
            np.testing.assert_array_equal(m.numpy(), expected)
    assert not torch.equal(tr.method.masks[0][0], tr.method.masks[1][0])


def test_masked_units_output_exactly_zero_at_every_step() -> None:
    """Forward hooks on the MLP's unit layers (h1, h2) see every hidden activation of the run, in
    training and evaluation; record them with the task being forwarded."""
    tr, _ = build_trainer(tiny_cfg("masking_si", mask_fraction=0.5), Path("."), lambda e: None)
    assert list(tr.model.unit_layers) == ["h1", "h2"]
    current: dict[str, int] = {}
    records: list[tuple[int, int, torch.Tensor]] = []
    inner_forward = tr.method.forward

    def forward(x: torch.Tensor, lengths: torch.Tensor | None, task: int) -> torch.Tensor:
        current["task"] = task
        return inner_forward(x, lengths, task)

    def hook(layer: int) -> Any:
        def record(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            records.append((current["task"], layer, output.detach().clone()))
        return record

    handles = [tr.model.get_submodule(name).register_forward_hook(hook(k))
               for k, name in enumerate(tr.model.unit_layers)]
    tr.method.forward = forward  # type: ignore[method-assign]
    try:
        tr.run()
    finally:
        for h in handles:
            h.remove()
    assert len(records) >= 60 * len(HIDDEN)  # every training step (plus the evaluations)
    tasks_seen = set()
    for task, layer, h in records:
        off = tr.method.masks[task][layer] == 0
        assert torch.all(h[:, off] == 0)
        assert torch.any(h[:, ~off] != 0)
        tasks_seen.add(task)
    assert tasks_seen == {0, 1, 2}
    assert all(tr.model.get_submodule(n).gain is None for n in tr.model.unit_layers)  # gates reset after use


@pytest.mark.parametrize("method", ["masking", "masking_si"])
def test_weights_used_only_by_masked_units_get_exactly_zero_gradient(method: str) -> None:
    tr, _ = build_trainer(tiny_cfg(method, mask_fraction=0.5), Path("."), lambda e: None)
    tr.run(stop_at_step=25)  # inside task 1, after SI's penalty exists
    w1, b1, w2, b2, w_out, _ = list(tr.model.parameters())
    for task in range(3):
        tr.model.zero_grad(set_to_none=True)
        b = tr.bench.tasks[task].get("train", torch.arange(64))
        # The task loss only: SI's penalty (masking_si) acts on all weights, as in the reference.
        F.cross_entropy(tr.method.head_logits(b.x, b.lengths, task), b.y).backward()
        off1, off2 = (m == 0 for m in tr.method.masks[task])
        assert torch.all(w1.grad[off1] == 0) and torch.all(b1.grad[off1] == 0)
        assert torch.all(w2.grad[off2] == 0) and torch.all(b2.grad[off2] == 0)
        assert torch.all(w2.grad[:, off1] == 0) and torch.all(w_out.grad[:, off2] == 0)
        assert w1.grad[~off1].abs().sum() > 0 and w_out.grad[:, ~off2].abs().sum() > 0


def test_masking_si_composes_both_methods() -> None:
    tr, _ = build_trainer(tiny_cfg("masking_si", si_lambda=2.0), Path("."), lambda e: None)
    assert isinstance(tr.method, Masking) and isinstance(tr.method, Si)
    tr.run(stop_at_step=25)
    state = tr.method.state_dict()
    assert "masks" in state and state["si"]["big_omega"] is not None
    pen, _ = tr.method.penalty(1, [1])
    assert pen is not None and float(pen.detach()) > 0


@pytest.mark.parametrize("method", ["masking", "masking_si"])
def test_masks_identical_across_checkpoint_and_resume(tmp_path: Path, method: str) -> None:
    cfg = tiny_cfg(method)
    part = api.run(cfg, tmp_path, stop_at_step=27)
    saved = load_checkpoint(part.run_dir)["method"]["masks"]
    ref, _ = build_trainer(cfg, Path("."), lambda e: None)
    tr, _ = build_trainer(cfg, Path("."), lambda e: None)
    # Whatever masks the resuming process holds, the checkpoint's must win.
    tr.method.masks = [[torch.ones_like(m) for m in layers] for layers in tr.method.masks]
    tr.load_state_dict(load_checkpoint(part.run_dir))
    for t in range(3):
        for a, b, c in zip(saved[t], ref.method.masks[t], tr.method.masks[t]):
            assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("method", ["masking", "masking_si"])
@pytest.mark.parametrize("stop_at", [20, 27], ids=["task-boundary", "mid-task"])
def test_resume_equals_uninterrupted(tmp_path: Path, method: str, stop_at: int) -> None:
    cfg = tiny_cfg(method, mask_fraction=0.5)
    assert_resume_exact(cfg, tmp_path, stop_at)
