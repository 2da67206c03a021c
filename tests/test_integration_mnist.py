"""On the real MNIST files: fine-tuning forgets on Split-MNIST while multitask does not.

Class-incremental Split-MNIST (one 10-way head) is used because there fine-tuning's forgetting is
large and stable across seeds (final ≈ 20% vs during ≈ 99%), so the margins below cannot be met
by chance; the task-incremental numbers are in the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import api
from engine.presets import load_preset

pytestmark = pytest.mark.integration
FAST = ["training.steps_per_task=300", "analyses.curves.enabled=false", "model.hidden=[200, 200]"]


def test_finetuning_forgets_and_multitask_does_not(tmp_path: Path, mnist_root: Path) -> None:
    ft = api.run(load_preset("split-mnist/finetune-class", FAST), tmp_path, data_dir=mnist_root)
    mt = api.run(load_preset("split-mnist/multitask-class", FAST), tmp_path, data_dir=mnist_root)
    assert ft.status == mt.status == "finished"
    assert ft.metrics["during"] > 95
    assert ft.metrics["final"] < ft.metrics["during"] - 50, ft.acc
    assert ft.metrics["forgetting"] > 50
    assert mt.metrics["final"] > 90, mt.acc
    assert mt.metrics["final"] > ft.metrics["final"] + 50
