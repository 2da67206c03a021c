"""Linear probes and latent maps (engine/analyses/probes.py, latent.py): exact on toys whose answers
are worked out by hand, deterministic, read-only with respect to training, and exactly resumable."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from engine import api
from engine import events as ev
from engine.analyses.base import ObserverContext, Observers
from engine.analyses.latent import Latent, LatentOptions, pca_2d
from engine.analyses.probes import Probes, ProbesOptions, fit_softmax, probe_score, whiten
from engine.api import build_trainer
from engine.benchmarks.base import Benchmark, ImageTask, InputSpec
from engine.checkpoint import load_checkpoint
from engine.config import TrainingConfig
from engine.data.paths import resolve_data_dir
from engine.errors import ConfigError
from engine.methods.base import Method, MethodContext
from engine.models.base import CLModel
from engine.store import read_run
from tests.conftest import assert_resume_exact, tiny

torch.set_num_threads(1)
NAN = math.nan


# -- the probe itself -----------------------------------------------------------------------------
def test_a_probe_recovers_a_linearly_separable_toy_exactly() -> None:
    # Three classes in three separated blobs of 2-D points, with an irrelevant constant feature.
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    y = torch.arange(3).repeat_interleave(40)
    x = centres[y] + torch.rand(120, 2, generator=g) * 2 - 1
    x = torch.cat([x, torch.full((120, 1), 3.0)], 1)
    labels = y * 2 + 1  # global classes 1, 3, 5 of a 7-class space
    train, test = torch.arange(0, 120, 2), torch.arange(1, 120, 2)
    s = probe_score(x[train], labels[train], x[test], labels[test], 7, l2=1e-4, max_iter=100, tolerance=1e-6)
    assert s.overall == 100.0
    assert _eq(s.per_class, [NAN, 100, NAN, 100, NAN, 100, NAN])


def test_a_probe_fit_is_deterministic_to_the_bit() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 20, generator=g, dtype=torch.float64)
    y = (x[:, :4].argmax(1) + (torch.rand(500, generator=g) < 0.2).long()) % 4  # overlapping classes
    w1, b1 = fit_softmax(x, y, 4, 1e-4, 50, 1e-9)
    w2, b2 = fit_softmax(x.clone(), y.clone(), 4, 1e-4, 50, 1e-9)
    assert torch.equal(w1, w2) and torch.equal(b1, b2)
    assert not torch.equal(w1, torch.zeros_like(w1))
    s1 = probe_score(x.float(), y, x.float(), y, 4, 1e-4, 50, 1e-9)
    s2 = probe_score(x.float(), y, x.float(), y, 4, 1e-4, 50, 1e-9)
    assert s1 == s2 and 50.0 < s1.overall < 100.0


def test_whitening_gives_unit_covariance_and_drops_dead_units() -> None:
    g = torch.Generator().manual_seed(2)
    mixed = torch.randn(300, 3, generator=g) @ torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 0.1], [0.0, 0.0, 3.0]])
    x = torch.cat([mixed, torch.zeros(300, 1)], 1)  # a dead unit: constant 0
    mean, proj, z = whiten(x)
    assert proj.shape == (4, 3) and z.dtype == torch.float64
    assert torch.allclose(z.T @ z / 300, torch.eye(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(z, (x.double() - mean) @ proj, atol=1e-12)
    assert float(proj[3].abs().max()) < 1e-12  # the dead unit is not read


def test_probe_inputs_are_left_untouched() -> None:
    x = torch.randn(40, 3, dtype=torch.float64)
    y = torch.arange(40) % 2
    before = x.clone()
    probe_score(x, y, x, y, 2, 1e-4, 20, 1e-6)
    assert torch.equal(x, before)


# -- a toy benchmark whose probe results are worked out by hand -------------------------------------
# 2-D "images" (uint8, read as /255) that the model passes through as its features. Three tasks in the
# study's order style, task-incremental local labels 0/1 mapped to global classes by class_map:
# task 0 = classes (1, 2), task 1 = (3, 4), task 2 = (5, 0). Classes 1..4 sit at distinct points far
# apart; classes 5 and 0 sit at the SAME point, with 3 training images of class 5 for 1 of class 0, so
# any probe that sees both predicts 5 there: class 5 → 100 %, class 0 → 0 %.
POINTS = {1: (0, 0), 2: (250, 0), 3: (0, 250), 4: (250, 250), 5: (125, 125), 0: (125, 125)}
TRAIN = {1: 2, 2: 2, 3: 2, 4: 2, 5: 3, 0: 1}
TEST = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 0: 2}
CLASS_MAP = [[1, 2], [3, 4], [5, 0]]


class PassThrough(CLModel):
    """Features = the input; a Linear read-out only to be a model."""

    def __init__(self) -> None:
        super().__init__()
        self.n_outputs, self.unit_layers, self.readout = 6, {"h1": 2, "h2": 2}, "out"
        self.out = nn.Linear(2, 6)

    def features(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        return {"h1": x, "h2": 2 * x}

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        logits: Tensor = self.out(x)
        return logits


def _toy_context(class_map: list[list[int]] | None = CLASS_MAP) -> ObserverContext:
    images: dict[str, Tensor] = {}
    rows: dict[str, list[tuple[int, int]]] = {"train": [], "test": []}
    for split, counts in (("train", TRAIN), ("test", TEST)):
        for c, n in counts.items():
            rows[split] += [POINTS[c]] * n  # type: ignore[list-item]
        images[split] = torch.tensor(rows[split], dtype=torch.uint8)
    tasks = []
    for pair in CLASS_MAP:
        idx, lab = {}, {}
        for split, counts in (("train", TRAIN), ("test", TEST)):
            order = list(counts)
            start = {c: sum(counts[d] for d in order[: order.index(c)]) for c in order}
            ids = [start[c] + i for local, c in enumerate(pair) for i in range(counts[c])]
            idx[split] = torch.tensor(ids)
            lab[split] = torch.tensor([local for local, c in enumerate(pair) for _ in range(counts[c])])
        tasks.append(ImageTask(f"{pair[0]}/{pair[1]}", images, idx, lab))
    cols = torch.arange(6).view(3, 2)
    bench = Benchmark(tasks, cols, InputSpec((2,), 6), "toy", {},
                      class_map=None if class_map is None else torch.tensor(class_map))
    model = PassThrough()
    method = Method(None, MethodContext(model=model, benchmark=bench, device=torch.device("cpu"),
                                        training=TrainingConfig(), seed=0))
    return ObserverContext(model, bench, method, torch.device("cpu"), 0, 5, [[0], [1], [2]], [10, 10, 10])


def _phase_rows(obs: Any, phases: range = range(3)) -> list[dict[str, Any]]:
    rec = ev.Recorder()
    observers = Observers([obs], rec)
    out = []
    for p in phases:
        observers.on_phase_end(10 * (p + 1), p)
        out.append({e.name: np.asarray(e.value) for e in rec.events})
        rec.events.clear()
    return out


def _eq(a: Any, b: Any) -> bool:
    return np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


def _close(a: Any, b: Any) -> bool:
    """Equal up to the last bits of a percentage's division (NaN where NaN)."""
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=0, equal_nan=True)


def test_probe_rows_per_class_and_seen_unseen_match_the_hand_computed_values() -> None:
    ctx = _toy_context()
    probes = Probes(ProbesOptions(enabled=True), ctx, "probes")
    specs = {s.name: s for s in probes.declare_series()}
    assert list(specs) == ["probe_h1", "probe_h1_class", "probe_h2", "probe_h2_class"]
    assert specs["probe_h1"].columns == ("seen", "all", "unseen") and specs["probe_h1"].cadence == "phase"
    assert specs["probe_h1_class"].shape == (3, 6) and specs["probe_h1_class"].columns == tuple("012345")
    rows = _phase_rows(probes)
    # Per class: 1..4 always right; 5 and 0 share a point, and 5 has more training images.
    all_cls = [0, 100, 100, 100, 100, 100]
    all_acc = 100 * 10 / 12  # 12 test images, the two of class 0 wrong
    expected = [
        # after task 0: seen {1,2}; unseen = tasks 1 and 2 = {3,4,5,0} (8 test images, 2 wrong)
        ([100, all_acc, 75], [[NAN, 100, 100, NAN, NAN, NAN], all_cls, [0, NAN, NAN, 100, 100, 100]]),
        # after task 1: seen {1..4}; unseen {5,0}: 2 of 4 right
        ([100, all_acc, 50], [[NAN, 100, 100, 100, 100, NAN], all_cls, [0, NAN, NAN, NAN, NAN, 100]]),
        # after task 2: seen = all; no unseen class
        ([all_acc, all_acc, NAN], [all_cls, all_cls, [NAN] * 6]),
    ]
    for got, (overall, per_class) in zip(rows, expected):
        for layer in ("h1", "h2"):
            assert _close(got[f"probe_{layer}"], overall), (layer, got[f"probe_{layer}"])
            assert _close(got[f"probe_{layer}_class"], per_class), (layer, got[f"probe_{layer}_class"])


def test_unseen_excludes_classes_a_seen_task_already_has() -> None:
    # Tasks 0 and 2 share class 1 (class_map [[1,2],[3,4],[5,1]] on the same images): after task 0
    # the unseen set is task 1's {3,4} and task 2's class 5 only.
    ctx = _toy_context([[1, 2], [3, 4], [5, 1]])
    probes = Probes(ProbesOptions(enabled=True, layers=["h1"]), ctx, "probes")
    (first,) = _phase_rows(probes, range(1))
    assert [c for c, v in enumerate(first["probe_h1_class"][2]) if not math.isnan(v)] == [3, 4, 5]


def test_probe_subsets_are_fixed_and_capped() -> None:
    ctx = _toy_context()
    probes = Probes(ProbesOptions(enabled=True, layers=["h1"], train_samples=3, test_samples=4), ctx, "probes")
    pools = probes.set_pools(2)
    assert [(len(tr), len(te)) for tr, te in pools] == [(3, 4), (3, 4), (0, 0)]
    again = probes.set_pools(2)
    assert all(torch.equal(a[0].index, b[0].index) and torch.equal(a[1].task, b[1].task) for a, b in zip(pools, again))


def test_probes_and_latent_refuse_benchmarks_without_global_classes_and_unknown_layers() -> None:
    bare = _toy_context(None)
    with pytest.raises(ConfigError, match=r"^analyses\.probes needs global class labels, which this benchmark does not give"):
        Probes(ProbesOptions(enabled=True), bare, "probes")
    with pytest.raises(ConfigError, match=r"^analyses\.latent needs global class labels, which this benchmark does not give"):
        Latent(LatentOptions(enabled=True), bare, "latent")
    with pytest.raises(ConfigError, match=r"analyses\.probes\.layers: no layer 'h3' in this model; its layers are h1, h2"):
        Probes(ProbesOptions(enabled=True, layers=["h2", "h3"]), _toy_context(), "probes")
    with pytest.raises(ConfigError, match=r"analyses\.latent\.layer: no layer 'fc1'"):
        Latent(LatentOptions(enabled=True, layer="fc1"), _toy_context(), "latent")


def test_bad_probe_and_latent_options_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"analyses\.probes\.train_samples = -1 must be >= 0"):
        tiny("analyses.probes.train_samples=-1")
    with pytest.raises(ConfigError, match=r"analyses\.latent\.samples = 1 must be >= 2"):
        tiny("analyses.latent.samples=1")
    if importlib.util.find_spec("sklearn") is None:
        with pytest.raises(ConfigError, match=r"analyses\.latent\.method = 'tsne' needs scikit-learn, which is not "
                                              r"installed: pip install scikit-learn, or use method = 'pca'"):
            tiny("analyses.latent.method='tsne'")
    else:  # where it is installed, t-SNE maps are valid and deterministic
        ctx = _toy_context()
        rows = [_phase_rows(Latent(LatentOptions(enabled=True, method="tsne", samples=12), ctx, "latent"),
                            range(1))[0] for _ in range(2)]
        assert rows[0]["latent_h2"].shape == (12, 2) and _eq(rows[0]["latent_h2"], rows[1]["latent_h2"])


# -- latent maps ----------------------------------------------------------------------------------
def test_pca_matches_a_hand_computed_map_with_its_sign_convention() -> None:
    # Points t·u + s·v with u = (0.6, 0.8), v = (-0.8, 0.6), t = ±2, s = ±1, and a constant third
    # coordinate. The leading component is ±u (variance 4 > 1), then ±v; the convention makes each
    # component's largest loading positive: u as is (0.8 > 0), v flipped to (0.8, -0.6). So the
    # point (t, s) maps to (t, -s).
    u, v = torch.tensor([0.6, 0.8]), torch.tensor([-0.8, 0.6])
    ts = [(2.0, 1.0), (2.0, -1.0), (-2.0, 1.0), (-2.0, -1.0)]
    x = torch.stack([torch.cat([t * u + s * v, torch.tensor([5.0])]) for t, s in ts])
    expected = torch.tensor([[t, -s] for t, s in ts], dtype=torch.float64)
    assert torch.allclose(pca_2d(x), expected, atol=1e-12)
    # The components are fixed by the convention, not by the data's sign: a mirrored cloud maps mirrored,
    # and the rows in another order map to the same points.
    assert torch.allclose(pca_2d(-x), -expected, atol=1e-12)
    assert torch.allclose(pca_2d(x.flip(0)), expected.flip(0), atol=1e-12)
    assert torch.equal(pca_2d(x), pca_2d(x.clone()))
    # Rank 1: the second coordinate is 0, not noise.
    line = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    got = pca_2d(line)
    assert torch.equal(got[:, 1], torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(got[:, 0].abs(), torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) * 5**0.5)


def test_latent_rows_are_the_pca_map_of_a_fixed_subset_with_its_classes() -> None:
    ctx = _toy_context()
    latent = Latent(LatentOptions(enabled=True, samples=7), ctx, "latent")
    specs = {s.name: s for s in latent.declare_series()}
    assert specs["latent_h2"].shape == (7, 2) and specs["latent_h2"].columns == ("x", "y")
    assert specs["latent_labels"].shape == (7,) and specs["latent_labels"].dtype == "i8"
    rows = _phase_rows(latent, range(2))
    pool = latent.pool
    images = torch.stack([ctx.benchmark.tasks[int(t)].get("test", i.view(1)).x[0]
                          for t, i in zip(pool.task, pool.index)])
    assert _eq(rows[0]["latent_h2"], pca_2d(2 * images).numpy())
    assert _eq(rows[0]["latent_labels"], pool.label.numpy()) and _eq(rows[1]["latent_labels"], rows[0]["latent_labels"])
    labels_of = {POINTS[c]: c for c in (1, 2, 3, 4)}
    for img, lab in zip(images, pool.label.tolist()):
        point = tuple(round(float(p) * 255) for p in img)
        assert labels_of.get(point, lab) == lab  # each label is the class at its point (5/0 share one)
    assert Latent(LatentOptions(enabled=True), ctx, "latent").n == sum(TEST.values())  # capped at the pool


# -- in a run: read-only and exactly resumable ------------------------------------------------------
ON = ("analyses.probes.enabled=true", "analyses.latent.enabled=true", "analyses.latent.samples=64")


def test_probes_and_latent_leave_training_bit_identical() -> None:
    def train(*extra: str) -> tuple[dict[str, Tensor], np.ndarray, ev.Recorder]:
        rec = ev.Recorder()
        trainer, _ = build_trainer(tiny(*extra, method="ewc"), resolve_data_dir(None), rec)
        assert trainer.run() == "finished"
        return {k: v.clone() for k, v in trainer.model.state_dict().items()}, trainer.acc.copy(), rec

    w0, acc0, _ = train()
    w1, acc1, rec = train(*ON)
    assert np.array_equal(acc0, acc1, equal_nan=True)
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    names = [e.name for e in rec.of(ev.SeriesPoint)]
    assert names.count("probe_h1") == 3 and names.count("latent_h1") == 3 and names.count("latent_labels") == 3


def test_a_run_with_probes_resumes_exactly(tmp_path: Path) -> None:
    full, resumed = assert_resume_exact(tiny(*ON), tmp_path, stop_at=30)
    rec = read_run(resumed.run_dir)
    assert rec.series["probe_h1"].values.shape == (3, 3)
    assert rec.series_specs["probe_h1_class"].source == "analysis/probes"
    assert rec.series["latent_h1"].values.shape == (3, 64, 2)


def test_class_maps_of_the_mnist_benchmarks() -> None:
    """The global classes the probes read: the digits, in every Split-MNIST scenario."""
    for scenario, expected in (("task", [[0, 1], [2, 3], [4, 5]]), ("domain", [[0, 1], [2, 3], [4, 5]]),
                               ("class", [list(range(10))] * 3)):
        trainer, _ = build_trainer(tiny(f"benchmark.scenario='{scenario}'"), resolve_data_dir(None), ev.Recorder())
        cmap = trainer.bench.class_map
        assert cmap is not None and cmap.tolist() == expected
        task = trainer.bench.tasks[1]
        b = task.get("test", torch.arange(task.size("test")))
        assert set(cmap[1][b.y].tolist()) == {2, 3}


def test_checkpoint_holds_no_probe_state_beyond_its_stream(tmp_path: Path) -> None:
    """Probes draw nothing: their fixed subsets depend on the data alone, so the checkpoint keeps only
    the observer's (unused) stream, and a replace()d benchmark (validation hold-out) keeps class_map."""
    res = api.run(tiny(*ON, "training.val_fraction=0.1"), tmp_path)
    assert res.status == "finished", res.error
    state = load_checkpoint(res.run_dir)["analyses"]
    assert set(state["probes"]) == {"gen"} and set(state["latent"]) == {"gen"}
    bench = Benchmark([], torch.zeros(0, 2), InputSpec((1,), 2), "", {}, class_map=torch.tensor([[0, 1]]))
    assert replace(bench, tasks=[]).class_map is bench.class_map


def test_a_probe_on_constant_features_is_its_bias_alone() -> None:
    # Nothing to read: the probe learns the class frequencies and predicts the majority class.
    x = torch.full((5, 3), 2.0)
    s = probe_score(x, torch.tensor([4, 4, 4, 1, 1]), x[:4], torch.tensor([4, 1, 1, 4]), 5, 1e-4, 20, 1e-9)
    assert s.overall == 50.0 and _eq(s.per_class, [NAN, 0, NAN, NAN, 100])
