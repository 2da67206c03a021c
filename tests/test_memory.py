"""A batch that cannot fit in the device's memory is refused before the run starts, with one line
naming the key; the memory probe leaves the run untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine import api, memory
from engine.errors import ConfigError
from engine.rng import rng_state
from tests.conftest import assert_same_state, tiny


def test_the_probe_measures_per_sample_memory_and_touches_nothing(tmp_path: Path) -> None:
    trainer, _ = api.build_trainer(tiny("model.hidden=[64]"), tmp_path, lambda e: None)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rng = rng_state()
    est = memory.estimate(trainer)
    assert trainer.model.training
    assert_same_state(rng_state(), rng)
    assert all(torch.equal(weights[k], v) for k, v in trainer.model.state_dict().items())
    # An MLP saves at least its input (784 floats) and its hidden activations per sample for backward.
    assert est.train_per_sample >= 4 * (784 + 64)
    assert est.fixed >= 4 * 4 * trainer.model.num_params()  # weights, gradients, Adam's two moments
    wide, _ = api.build_trainer(tiny("model.hidden=[640]"), tmp_path, lambda e: None)
    assert memory.estimate(wide).train_per_sample > est.train_per_sample


def test_a_batch_that_cannot_fit_is_refused_before_anything_is_written(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device: 64 * 2**20)  # a 64 MiB machine
    with pytest.raises(ConfigError, match=r"^training.batch_size = 60,000 needs at least .* GiB on cpu .* "
                                          r"more than the 0.1 GiB of memory available; lower training.batch_size$"):
        api.run(tiny("training.batch_size=60000"), tmp_path / "runs")
    assert not list((tmp_path / "runs").iterdir())  # refused before the run existed
    with pytest.raises(ConfigError, match="^evaluation.batch_size = 60,000 needs"):
        monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 2**20 + 60_000 * 1000)
        api.run(tiny("model.hidden=[2000]", "evaluation.batch_size=60000", "training.batch_size=1"), tmp_path / "runs")
    api.run(tiny("training.batch_size=32"), tmp_path / "runs")  # an ordinary batch still runs


def test_the_host_memory_is_read() -> None:
    free = memory.available_bytes(torch.device("cpu"))
    assert free is None or free > 0
