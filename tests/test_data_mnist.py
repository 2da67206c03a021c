"""MNIST files: IDX parsing, checksum checks, the offline error, and the embedded subset."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.data import mnist
from engine.data.embedded import load_embedded
from engine.errors import DataError


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = (0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_read_idx_round_trip(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    write_idx(tmp_path / "x.gz", arr)
    assert np.array_equal(mnist.read_idx(tmp_path / "x.gz"), arr)


def test_truncated_idx_is_reported(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write((0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (5, 28, 28)) + b"\0" * 10)
    with pytest.raises(DataError, match="truncated"):
        mnist.read_idx(tmp_path / "x.gz")


def test_offline_without_files_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as e:
        mnist.load_mnist(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "MNIST" / "raw") in msg and "\n" not in msg


def test_corrupt_file_fails_its_checksum(tmp_path: Path, mnist_root: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist.FILES:
        shutil.copy(mnist_root / "MNIST" / "raw" / name, raw / name)
    with open(raw / "t10k-labels-idx1-ubyte.gz", "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff")
    with pytest.raises(DataError, match="fails its MD5 check"):
        mnist.load_mnist(tmp_path, download=False)


@pytest.mark.integration
def test_official_files_load(mnist_root: Path) -> None:
    m = mnist.load_mnist(mnist_root, download=False)
    assert m.x_train.shape == (60000, 28, 28) and m.x_test.shape == (10000, 28, 28)
    assert np.bincount(m.y_train)[0] == 5923 and m.y_train[0] == 5 and m.y_test[0] == 7


def test_embedded_subset_is_stratified_real_mnist(mnist_root: Path) -> None:
    e = load_embedded()
    assert np.bincount(e.y_train).tolist() == [500] * 10 and np.bincount(e.y_test).tolist() == [100] * 10
    import numpy as _np

    with _np.load(Path(mnist.__file__).parent / "mnist_subset.npz") as z:
        idx = z["train_index"]
    full = mnist.load_mnist(mnist_root, download=False)
    assert np.array_equal(full.x_train[idx], e.x_train)  # byte-identical to the official images
