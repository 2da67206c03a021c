"""The 40 SSMNIST presets (spec §6): each validates, and their values are the README table's.

Torch-free: presets are validated with engine.presets.load_preset only.
"""

from __future__ import annotations

import re

import pytest

from engine.presets import load_preset, preset_names

METHOD_FILES = {"ewc": "ewc", "ewc-ti": "ewc", "hnet": "hnet", "finetune": "finetune", "si": "si",
                "masking": "masking", "masking-si": "masking_si", "scratch": "scratch", "coresets": "coresets",
                "multitask": "multitask"}
EXPECTED = sorted(f"ssmnist/{f}-m{m}" for f in METHOD_FILES for m in (1, 2, 3, 4))
SOURCE = re.compile(r"^Ehret et al\. 2021 \(ICLR\), cl_in_rnns sequential/seq_smnist/README\.rst, row (\d+)$")

# Spot checks against spec §6: preset -> (row, B, n_iter, lr, clip, method options, during, final).
ROWS = {
    "ewc-m2": (2, 64, 8000, 0.005, 100, {"ewc_lambda": 1e7, "n_fisher": 200}, 95.4, 88.62),
    "ewc-ti-m2": (6, 128, 8000, 0.0001, -1, {"ewc_lambda": 1e4, "n_fisher": -1}, 95.71, 88.51),
    "ewc-ti-m4": (8, 64, 20000, 0.001, -1, {"ewc_lambda": 1e10, "n_fisher": -1}, 90.65, 88.94),
    "hnet-m3": (11, 64, 8000, 0.001, -1, {"beta": 1.0, "chunk_size": 5000, "hidden": [50, 50], "temb_size": 32,
                                          "cemb_size": 16, "temb_std": 0.1, "cemb_std": 0.1}, 98.45, 98.48),
    "hnet-m4": (12, 128, 20000, 0.001, -1, {"beta": 0.01, "chunk_size": 10000, "hidden": [25, 25],
                                            "temb_size": 16, "temb_std": 0.1}, 98.1, 98.02),
    "finetune-m1": (13, 64, 3000, 0.001, 1, {}, 99.58, 94.38),
    "si-m3": (19, 128, 16000, 0.0001, 1, {"si_lambda": 100.0, "task_loss_only": True}, 88.0, 83.16),
    "si-m4": (20, 128, 25000, 0.005, -1, {"si_lambda": 10.0}, 88.02, 76.61),
    "masking-m1": (21, 64, 4000, 0.005, 1, {"mask_fraction": 0.8}, 99.58, 99.42),
    "masking-m4": (24, 64, 15000, 0.001, 1, {"mask_fraction": 0.6}, 89.15, 80.03),
    "masking-si-m2": (26, 128, 10000, 0.001, 1, {"mask_fraction": 0.8, "si_lambda": 1.0}, 98.86, 98.87),
    "masking-si-m3": (27, 64, 16000, 0.001, 1, {"mask_fraction": 0.4, "si_lambda": 1.0}, 98.91, 98.91),
    "scratch-m3": (31, 64, 12000, 0.005, 100, {}, 98.19, 57.16),
    "coresets-m4": (36, 128, 15000, 0.0001, 100, {"coreset_size": 500, "distill_reg": 10.0}, 96.35, 94.16),
    "coresets-m2": (34, 64, 6000, 0.001, 1, {"coreset_size": 500, "distill_reg": 1.0}, 99.07, 98.37),
    "multitask-m1": (37, 512, 4000, 0.005, -1, {}, None, 99.84),
    "multitask-m4": (40, 512, 20000, 0.001, -1, {}, None, 98.74),
}


def test_all_forty_exist() -> None:
    assert sorted(n for n in preset_names() if n.startswith("ssmnist/")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_preset_validates_and_is_consistent(name: str) -> None:
    cfg = load_preset(name)
    stem = name.split("/")[1]
    family, m = stem.rsplit("-m", 1)
    b, ref = cfg.benchmark.options, cfg.reference
    assert cfg.benchmark.name == "ssmnist" and b.m == int(m) and b.num_tasks == 5
    assert b.source == "derived" and "derived" in ref.notes
    assert b.data_random_seed == 42 and b.n_train == 12000 and b.n_test == 2000
    assert b.input_task_identity == family.endswith("-ti")
    assert b.heads == ("single" if family == "scratch" else "multi")
    assert b.two_classes == (name != "ssmnist/masking-m1")  # the one README run without the flag
    assert cfg.model.name == "lstm" and cfg.model.options.hidden == 256
    assert cfg.method.name == METHOD_FILES[family]
    assert cfg.training.optimizer == "adam" and cfg.training.reset_optimizer and cfg.training.adam_beta1 == 0.9
    assert SOURCE.match(ref.source)
    assert ref.final is not None
    assert (ref.during is None) == (family == "multitask")
    assert ref.final_meaningful == (family != "scratch")
    if family == "scratch":
        assert "not meaningful" in ref.notes
    if family == "coresets":
        assert "200 unused extra output units" in ref.notes


def test_rows_are_numbered_once() -> None:
    rows = sorted(int(SOURCE.match(load_preset(n).reference.source).group(1)) for n in EXPECTED)
    assert rows == list(range(1, 41))


@pytest.mark.parametrize("stem", sorted(ROWS))
def test_values_match_the_readme_table(stem: str) -> None:
    row, batch, n_iter, lr, clip, method_opts, during, final = ROWS[stem]
    cfg = load_preset(f"ssmnist/{stem}")
    assert SOURCE.match(cfg.reference.source).group(1) == str(row)
    tr = cfg.training
    assert (tr.batch_size, tr.steps_per_task, tr.lr, tr.clip_grad_norm) == (batch, n_iter, lr, clip)
    for key, value in method_opts.items():
        assert getattr(cfg.method.options, key) == value, key
    assert (cfg.reference.during, cfg.reference.final) == (during, final)
