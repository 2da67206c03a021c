"""Small CIFAR-100 archives in the exact official format, for tests (no CIFAR data is reachable here).

`write_cifar100(root, train_per_class, test_per_class, classes)` writes `root/cifar-100-python.tar.gz`
holding `cifar-100-python/{train,test,meta}` pickles with the official keys (`data` uint8 [N, 3072]
channel-major, `fine_labels`, `coarse_labels`, `filenames`, `batch_label`; meta `fine_label_names`,
`coarse_label_names`), and returns its MD5: pass it as `benchmark.archive_md5` (or `expected_md5`)
since it is not the official checksum.

Images are learnable: each class has a fixed random colour pattern at low resolution, upsampled,
plus per-image noise, so a small network can tell classes apart within a few epochs.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from engine.data.mnist import md5sum


def _images(rng: np.random.Generator, protos: np.ndarray, labels: np.ndarray) -> np.ndarray:
    base = protos[labels]  # [N, 3, 32, 32] float
    noisy = base + rng.normal(0, 40, size=base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8).reshape(len(labels), 3072)


def write_cifar100(root: Path, train_per_class: int = 20, test_per_class: int = 10, classes: int = 100,
                   seed: int = 0) -> str:
    """Write a generated archive under `root`; return its MD5. Classes beyond `classes` have no images."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, size=(100, 3, 4, 4))
    protos = low.repeat(8, axis=2).repeat(8, axis=3)
    pickles = {}
    for split, per in (("train", train_per_class), ("test", test_per_class)):
        # Interleaved like the official files (not sorted by class): the reader must not rely on order.
        labels = rng.permutation(np.repeat(np.arange(classes), per))
        pickles[split] = {
            "filenames": [f"img_{i}.png" for i in range(len(labels))],
            "batch_label": f"{split}ing batch 1 of 1",
            "fine_labels": labels.tolist(),
            "coarse_labels": (labels // 5).tolist(),
            "data": _images(rng, protos, labels),
        }
    pickles["meta"] = {"fine_label_names": [f"class{i:02d}" for i in range(100)],
                       "coarse_label_names": [f"super{i:02d}" for i in range(20)]}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in pickles.items():
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return md5sum(path)
