"""Shared fixtures: the offline MNIST copy in ../shared/data and tiny run configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One intra-op thread for torch here and in the engine processes the tests start: the models are
# tiny, and on a busy 2-core machine two spinning OpenMP threads per process made a 7 s test take
# over a minute (measured). Set before any test imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The official MNIST files, from $CLTUI_TEST_DATA, else ../shared/data (this project's
    machines), else the user data cache, where cltui downloads and checks them on a machine with a
    network. Integration tests fail (never skip) when none of these can provide them."""
    from engine.data.mnist import ensure_mnist
    from engine.data.paths import default_data_dir
    from engine.errors import DataError

    env = os.environ.get("CLTUI_TEST_DATA")
    roots = [Path(env)] if env else [SHARED_DATA, default_data_dir()]
    for root in roots:
        if (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
            return root
    try:
        ensure_mnist(roots[-1], download=True)  # MD5-checked download into the cache
    except DataError as e:
        pytest.fail(f"real MNIST not found in {', '.join(map(str, roots))} and not downloadable: {e}")
    return roots[-1]


def tiny(*overrides: str, method: str = "finetune", steps: int = 20):
    """A seconds-long config on the embedded subset (3 tasks, small MLP)."""
    from engine.presets import load_preset

    base = [
        f"method.name={method}", "benchmark.num_tasks=3", "model.hidden=[32]",
        f"training.steps_per_task={steps}", "training.batch_size=32", "analyses.curves.every=10",
        "analyses.curves.samples=50", "training.log_every=5",
    ]
    return load_preset("demo", [*base, *overrides])


TIMING_SERIES = {"steps_per_sec"}
"""Series whose values are wall-clock measurements: equal steps, values free."""


def assert_same_series(a_dir: Path, b_dir: Path) -> None:
    """Two stored runs hold the same declared series with the same rows (timings: same steps only)."""
    import numpy as np

    from engine.store import read_run

    a, b = read_run(a_dir), read_run(b_dir)
    assert a.series_specs == b.series_specs
    assert set(a.series) == set(a.series_specs) == set(b.series)
    for name, sa in a.series.items():
        sb = b.series[name]
        assert np.array_equal(sa.steps, sb.steps), f"series {name!r}: steps differ"
        if name not in TIMING_SERIES:
            assert np.array_equal(sa.values, sb.values, equal_nan=True), f"series {name!r}: values differ"
    assert np.array_equal(a.acc, b.acc, equal_nan=True) and np.array_equal(a.acc_initial, b.acc_initial, equal_nan=True)
    assert a.metrics.keys() == b.metrics.keys()
    assert np.array_equal(list(a.metrics.values()), list(b.metrics.values()), equal_nan=True)


def assert_resume_exact(cfg, tmp_path: Path, stop_at: int):  # noqa: ANN001, ANN201
    """Run `cfg` whole, and again stopped at `stop_at` then resumed: the accuracy matrices and every
    stored series (training scalars, method diagnostics, analyses) must be equal."""
    import numpy as np

    from engine import api

    full = api.run(cfg, tmp_path / "full")
    part = api.run(cfg, tmp_path / "part", stop_at_step=stop_at)
    assert part.status == "interrupted"
    resumed = api.resume(part.run_id, tmp_path / "part")
    assert resumed.status == "finished", resumed.error
    assert np.array_equal(resumed.acc, full.acc, equal_nan=True)
    assert_same_series(full.run_dir, resumed.run_dir)
    assert_same_final_state(full.run_dir, resumed.run_dir)
    return full, resumed


def assert_same_state(a: object, b: object, path: str = "state") -> None:
    """Two checkpoint (sub)trees are equal exactly: tensors by torch.equal, floats including NaN."""
    import math

    import numpy as np
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for k in a:
            assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=True), path
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def assert_same_final_state(full_dir: Path, resumed_dir: Path) -> None:
    """The last checkpoints of two runs hold the same weights, optimizer, method state and random streams.

    Only when both runs wrote one at the end (checkpoint.every_task); 'loop' differs in timings only.
    """
    from engine.checkpoint import CHECKPOINT, load_checkpoint

    if not ((full_dir / CHECKPOINT).is_file() and (resumed_dir / CHECKPOINT).is_file()):
        return
    a, b = load_checkpoint(full_dir), load_checkpoint(resumed_dir)
    for key in ("model", "optimizer", "method", "samplers", "streams", "rng"):
        if key in a or key in b:
            assert_same_state(a.get(key), b.get(key), key)
