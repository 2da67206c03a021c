"""Build engine/data/mnist_subset.npz: a stratified subset of the official MNIST files.

Usage: python scripts/make_embedded_mnist.py /path/to/data_root   (holding MNIST/raw/*.gz)
Takes the first 500 training and 100 test images of each digit in a fixed random order (seed 0),
keeps their official indices, and writes the SHA-256 into engine/data/embedded.py.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np

from engine.data.mnist import load_mnist

PER_CLASS = {"train": 500, "test": 100}


def pick(labels: np.ndarray, per_class: int, rng: np.random.RandomState) -> np.ndarray:
    order = rng.permutation(labels.shape[0])
    chosen = [order[labels[order] == c][:per_class] for c in range(10)]
    return np.sort(np.concatenate(chosen))


def main(root: str) -> None:
    m = load_mnist(Path(root), download=False)
    rng = np.random.RandomState(0)
    tr = pick(m.y_train, PER_CLASS["train"], rng)
    te = pick(m.y_test, PER_CLASS["test"], rng)
    repo = Path(__file__).resolve().parents[1]
    out = repo / "engine" / "data" / "mnist_subset.npz"
    np.savez_compressed(out, x_train=m.x_train[tr], y_train=m.y_train[tr].astype(np.uint8), train_index=tr,
                        x_test=m.x_test[te], y_test=m.y_test[te].astype(np.uint8), test_index=te)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    mod = repo / "engine" / "data" / "embedded.py"
    mod.write_text(re.sub(r'SHA256 = "[^"]*"', f'SHA256 = "{digest}"', mod.read_text()))
    print(f"wrote {out} ({out.stat().st_size} bytes, sha256 {digest})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
