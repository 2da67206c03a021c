"""Integration: on the real MNIST files, Split-MNIST task-incremental, EWC, SI, masking+SI and coresets
each end clearly above fine-tuning.

The settings make fine-tuning forget a lot in few steps (Adam lr 0.01, 300 steps per task, MLP
100-100): its final accuracy was 80.7–87.9% over seeds 0–4, while these methods ended at 95.5–99.4%
(see MARGINS). Runs one seed: five runs of a few seconds each on a shared 2-core CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine import api
from engine.presets import load_preset

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETTINGS = ["model.hidden=[100, 100]", "training.batch_size=64", "training.steps_per_task=300",
            "training.lr=0.01", "analyses.curves.enabled=false", "evaluation.initial=false", "device=cpu"]
METHODS = {
    "ewc": ["method.name=ewc", "method.ewc_lambda=10000.0", "method.n_fisher=500"],
    "si": ["method.name=si", "method.si_lambda=1.0"],
    "masking_si": ["method.name=masking_si", "method.si_lambda=1.0"],
    "coresets": ["method.name=coresets", "method.coreset_size=200", "method.distill_reg=1.0"],
}
# Minimum final-accuracy gain over fine-tuning (percentage points). Measured with these settings
# over seeds 0–4 (fine-tuning final 80.7–87.9%), the smallest gains were: EWC 7.8, SI 9.7,
# masking+SI 11.4, coresets 11.1.
MARGINS = {"ewc": 5.0, "si": 7.0, "masking_si": 8.0, "coresets": 8.0}


@pytest.mark.integration
def test_methods_beat_finetuning_on_real_split_mnist(tmp_path: Path) -> None:
    raw = DATA_DIR / "MNIST" / "raw"
    assert raw.is_dir() and len(list(raw.glob("*.gz"))) == 4, (
        f"the real MNIST files are missing: expected the 4 official .gz files in {raw} "
        "(this test never skips; put the files there to run it)")
    torch.set_num_threads(1)
    finals = {}
    for name, overrides in {"finetune": ["method.name=finetune"], **METHODS}.items():
        cfg = load_preset("split-mnist/finetune", overrides=[*SETTINGS, *overrides], seed=0)
        res = api.run(cfg, tmp_path, data_dir=DATA_DIR)
        assert res.status == "finished", res.error
        finals[name] = res.metrics["final"]
    assert finals["finetune"] < 90.0, finals  # the setting must make fine-tuning forget
    for name, margin in MARGINS.items():
        assert finals[name] > finals["finetune"] + margin, (name, finals)
