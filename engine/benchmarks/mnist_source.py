"""Load MNIST arrays for a benchmark: the full official files or the embedded subset."""

from __future__ import annotations

from pathlib import Path

from engine.data.embedded import load_embedded
from engine.data.mnist import MnistArrays, load_mnist


def mnist_arrays(data: str, data_dir: Path) -> tuple[MnistArrays, str]:
    """(arrays, source description) for `data` = 'full' or 'embedded'."""
    if data == "embedded":
        return load_embedded(), "embedded MNIST subset (500 train + 100 test per digit)"
    return load_mnist(data_dir), f"MNIST official files in {data_dir}/MNIST/raw"
