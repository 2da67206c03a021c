"""The 'ssmnist' benchmark on the device (spec §1-§2): batches, truncation, TI, heads, stroke cache,
and one tiny run of every registered method.

Stroke data is synthetic (a derived-strokes cache written into a temporary data root), so nothing
is traced or downloaded. The task construction itself (seed chain, partitions, disjoint pools,
balance) is tested in test_ssmnist_data.py and not repeated here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.benchmarks.ssmnist import SsmnistOptions, build_ssmnist, cache_root_for, load_stroke_sets
from engine.data.skeleton import DERIVE_VERSION
from engine.data.ssmnist import build_tasks
from engine.data.strokes import StrokeSet, save_cache

CPU = torch.device("cpu")


def _synthetic(n: int, split: str, seed: int, source: str = "derived") -> StrokeSet:
    """n digits, random labels; digit i has 2 + i % 9 rows (label, i % 100, 0, 0)..., then 0 0 1 1."""
    labels = np.random.RandomState(seed).randint(10, size=n)
    lengths = 2 + np.arange(n) % 9
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    steps = np.zeros((offsets[-1], 4), dtype=np.int8)
    owner = np.repeat(np.arange(n), lengths)
    steps[:, 0], steps[:, 1] = labels[owner], owner % 100
    steps[offsets[1:] - 1] = (0, 0, 1, 1)
    return StrokeSet(steps, offsets, labels.astype(np.int64), split, source)


@pytest.fixture(scope="module")
def strokes() -> tuple[StrokeSet, StrokeSet]:
    return _synthetic(60000, "train", 0), _synthetic(10000, "test", 1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory, strokes: tuple[StrokeSet, StrokeSet]) -> Path:
    """A data root holding only a derived-strokes cache (what load_strokes finds before tracing MNIST)."""
    root = tmp_path_factory.mktemp("data")
    save_cache(root / "stroke_mnist" / "derived.npz", *strokes, derive_version=DERIVE_VERSION)
    return root


def _bench(root: Path, **kw):
    kw = {"n_train": 200, "n_test": 60, "n_val": 20, **kw}
    return build_ssmnist(SsmnistOptions(**kw), CPU, root, seed=0)


def test_shapes_heads_and_record(data_root: Path, strokes) -> None:
    from engine.catalog import load_all
    from engine.registry import BENCHMARKS

    load_all()
    assert BENCHMARKS.get("ssmnist").impl is build_ssmnist and BENCHMARKS.get("ssmnist").options is SsmnistOptions
    b = _bench(data_root, m=2)
    assert b.task_names == ["0/1", "2/3", "4/5", "6/7", "8/9"]
    assert b.spec.sequential and b.spec.n_outputs == 10 and b.spec.input_shape[1] == 4
    assert b.head_columns.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert [t.size("train") for t in b.tasks] == [200] * 5
    assert b.tasks[0].size("test") == 60 and b.tasks[0].size("val") == 20
    assert "derived" in b.source and "not de Jong's official" in b.source
    assert b.info["stroke_source"] == "derived"
    assert b.info["task_seeds"] == [15795, 860, 76820, 54886, 6265]
    assert b.info["partitions"][0] == [2, 3]  # spec §1.5, m = 2, task 0
    single = _bench(data_root, m=2, heads="single")
    assert single.spec.n_outputs == 2 and single.head_columns.tolist() == [[0, 1]] * 5
    many = _bench(data_root, m=2, two_classes=False)
    assert many.spec.n_outputs == 20 and many.head_columns[1].tolist() == [4, 5, 6, 7]


def test_batches_are_raw_truncated_and_match_the_data_layer(data_root: Path, strokes) -> None:
    b = _bench(data_root, m=3)
    family = build_tasks(*strokes, 3, True, n_train=200, n_test=60, n_val=20)
    for t in (0, 3):
        for split in ("train", "test", "val"):
            arr = getattr(family[t], split)
            idx = torch.tensor([5, 0, 17, 11])
            batch = b.tasks[t].get(split, idx)
            longest = int(arr.lengths[idx.numpy()].max())
            assert batch.x.dtype == torch.float32
            assert batch.x.shape == (4, longest, 4)  # cut to this batch's longest sequence
            # Raw integer values, no normalisation.
            assert torch.equal(batch.x, torch.from_numpy(arr.x[idx.numpy(), :longest]).float())
            assert batch.lengths.tolist() == arr.lengths[idx.numpy()].tolist()
            assert batch.y.tolist() == arr.labels[idx.numpy()].tolist()
    assert b.spec.input_shape[0] == max(t.max_length for t in b.tasks)


def test_labels_two_classes_and_patterns(data_root: Path, strokes) -> None:
    two = _bench(data_root, m=2)
    every = torch.arange(200)
    y = two.tasks[2].get("train", every).y
    assert set(y.tolist()) == {0, 1}
    patterns = build_tasks(*strokes, 2, True, n_train=200, n_test=60, n_val=20)[2].train.patterns
    assert y.tolist() == np.isin(patterns, [0, 3]).astype(int).tolist()  # task 2 partition {0, 3}
    four = _bench(data_root, m=2, two_classes=False)
    assert sorted(set(four.tasks[2].get("train", every).y.tolist())) == [0, 1, 2, 3]


def test_task_identity_is_appended_at_every_step(data_root: Path) -> None:
    b = _bench(data_root, m=1, input_task_identity=True)
    assert b.spec.input_shape[1] == 9 and b.info["input_features"] == 9
    plain = _bench(data_root, m=1)
    for t in range(5):
        idx = torch.tensor([3, 1, 4, 1, 5])
        batch = b.tasks[t].get("test", idx)
        assert batch.x.shape[2] == 9
        assert torch.equal(batch.x[:, :, :4], plain.tasks[t].get("test", idx).x)
        code = torch.zeros(5)
        code[t] = 1
        assert torch.equal(batch.x[:, :, 4:], code.expand(5, batch.x.shape[1], 5))  # padded steps too


def test_read_only_root_caches_elsewhere(tmp_path: Path, strokes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only data root (e.g. a shared offline MNIST copy) sends the stroke cache to CLTUI_DATA_DIR."""
    ro = tmp_path / "shared"
    ro.mkdir()
    cache = tmp_path / "cache"
    monkeypatch.setenv("CLTUI_DATA_DIR", str(cache))
    os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        assert cache_root_for(ro) == cache
        save_cache(cache / "stroke_mnist" / "derived.npz", *strokes, derive_version=DERIVE_VERSION)
        train, test = load_stroke_sets("derived", ro)
        assert len(train) == 60000 and train.source == "derived"
        assert not (ro / "stroke_mnist").exists()
    finally:
        os.chmod(ro, stat.S_IRWXU)
    assert cache_root_for(tmp_path) == tmp_path


def test_official_source_is_named(tmp_path: Path) -> None:
    train, test = _synthetic(60000, "train", 0, "official"), _synthetic(10000, "test", 1, "official")
    save_cache(tmp_path / "stroke_mnist" / "official.npz", train, test)
    b = _bench(tmp_path, m=1, source="official")
    assert b.info["stroke_source"] == "official" and "official pen-stroke" in b.source


# ------------------------------------------------------------------------------------------------
# Every registered method, one tiny SSMNIST run

# Options that a tiny run needs to stay tiny; any method not listed runs with its defaults.
TINY_METHOD_OPTIONS = {
    "coresets": {"coreset_size": 8},
    "ewc": {"n_fisher": 8},
    "hnet": {"hidden": [8], "chunk_size": 200, "temb_size": 4, "cemb_size": 4},
}


NEEDS_MODEL = {"cbp": "unit wiring", "supsup": "needs model.name = 'supermask_mlp'"}
"""Methods the LSTM cannot serve, with the refusal they give: cbp re-initialises units through
model.unit_wiring(), which the LSTM does not offer; supsup needs fixed weights with per-task masks."""


def _methods() -> list[str]:
    from engine.catalog import load_all
    from engine.registry import METHODS

    load_all()
    return METHODS.names()


@pytest.mark.parametrize("method", _methods())
def test_every_method_runs_on_ssmnist(method: str, data_root: Path) -> None:
    from engine.api import build_trainer
    from engine.config import config_from_dict

    torch.set_num_threads(1)
    raw = {
        "seed": 1, "device": "cpu",
        "benchmark": {"name": "ssmnist", "m": 2, "n_train": 32, "n_test": 16, "n_val": 0,
                      "input_task_identity": method == "finetune",
                      "heads": "single" if method == "scratch" else "multi"},
        "model": {"name": "lstm", "hidden": 6},
        "method": {"name": method, **TINY_METHOD_OPTIONS.get(method, {})},
        "training": {"steps_per_task": 3, "batch_size": 8, "clip_grad_norm": 1.0, "log_every": 1},
        "analyses": {"curves": {"every": 2, "samples": 8}},
        "checkpoint": {"every_task": False},
    }
    cfg = config_from_dict(raw, where=f"tiny {method} run")
    events: list = []
    if method in NEEDS_MODEL:  # the LSTM's units are not rows of Linear/Conv layers, nor masked weights
        from engine.errors import ConfigError

        with pytest.raises(ConfigError, match=NEEDS_MODEL[method]):
            build_trainer(cfg, data_root, events.append)
        return
    trainer, _ = build_trainer(cfg, data_root, events.append)
    assert trainer.run() == "finished"
    last = trainer.acc[-1]
    assert np.all((last >= 0) & (last <= 100))
    assert np.isfinite(trainer.metrics()["final"])
    assert type(events[-1]).__name__ == "RunFinished"
