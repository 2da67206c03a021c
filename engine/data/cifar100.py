"""CIFAR-100 from the official python archive: read, verify, and download when missing.

The archive `cifar-100-python.tar.gz` lives directly under the data root (torchvision's layout, so
a root torchvision filled works as is). It holds three pickles: `cifar-100-python/train` and
`cifar-100-python/test` (dicts with `data`, uint8 [N, 3072] in channel-major R,G,B order, and
`fine_labels`) and `cifar-100-python/meta` (`fine_label_names`). It is read straight from the
tar.gz, never extracted.

The archive is checked against its MD5 before use. The official value is the default; a caller may
name another one (`expected_md5`), which is how tests use small archives generated in the exact
official format (tests/cifar_fixture.py) and how the benchmark's `archive_md5` option reaches
here. Offline with no archive, `load_cifar100` raises a DataError naming the file and where to put
it. Numpy only (torch-free).
"""

from __future__ import annotations

import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.mnist import md5sum
from engine.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
ARCHIVE = "cifar-100-python.tar.gz"
OFFICIAL_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
MEMBERS = ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta")


@dataclass(frozen=True)
class Cifar100Arrays:
    """Images uint8 [N, 3, 32, 32], fine labels int64 [N], and the 100 class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]


def _download(dest: Path, expected_md5: str) -> None:
    """Fetch the archive, verify its MD5, then move it in place (a partial file is never left)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(URL, timeout=60) as resp:
                shutil.copyfileobj(resp, tmp)
        except OSError:
            tmp_path.unlink(missing_ok=True)
            raise
    if md5sum(tmp_path) != expected_md5:
        tmp_path.unlink(missing_ok=True)
        raise OSError(f"{URL}: checksum mismatch")
    tmp_path.replace(dest)


def ensure_cifar100(data_root: Path, download: bool = True, expected_md5: str = OFFICIAL_MD5) -> Path:
    """The verified archive under `data_root` (downloaded first when missing and allowed)."""
    path = Path(data_root) / ARCHIVE
    if not path.is_file() and download:
        try:
            _download(path, expected_md5)
        except OSError:
            pass  # reported below as one line
    if not path.is_file():
        raise DataError(f"CIFAR-100 archive missing: put {ARCHIVE} (from {URL}) into {Path(data_root)}, "
                        "or point --data-dir / CLTUI_DATA_DIR at a folder holding it.")
    if md5sum(path) != expected_md5:
        raise DataError(f"{path} fails its MD5 check (expected {expected_md5}); delete it and run again to "
                        "re-download, or set benchmark.archive_md5 for a generated archive.")
    return path


def _member(tar: tarfile.TarFile, name: str, path: Path) -> dict[str, Any]:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise DataError(f"{path} has no member {name}; it is not the CIFAR-100 python archive.")
    # The official pickles were written by Python 2: byte-string keys and values need latin1.
    out: dict[str, Any] = pickle.load(f, encoding="latin1")
    return out


def _split(d: dict[str, Any], path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.asarray(d["data"], dtype=np.uint8)
        labels = np.asarray(d["fine_labels"], dtype=np.int64)
    except KeyError as e:
        raise DataError(f"{path}: {name} lacks {e}; it is not the CIFAR-100 python archive.") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: {name} has data {data.shape} and {len(labels)} labels, expected [N, 3072] and N.")
    if labels.size and (labels.min() < 0 or labels.max() > 99):
        raise DataError(f"{path}: {name} has fine labels outside 0..99.")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar100(data_root: Path, download: bool = True, expected_md5: str = OFFICIAL_MD5) -> Cifar100Arrays:
    """All of CIFAR-100 (fine labels) as numpy arrays, from a verified archive."""
    path = ensure_cifar100(data_root, download, expected_md5)
    try:
        with tarfile.open(path, "r:gz") as tar:
            train, test, meta = (_member(tar, m, path) for m in MEMBERS)
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError) as e:
        raise DataError(f"{path} cannot be read ({type(e).__name__}: {e}); delete it and run again.") from None
    x_train, y_train = _split(train, path, "train")
    x_test, y_test = _split(test, path, "test")
    names = [str(n) for n in meta.get("fine_label_names", [])] or [str(i) for i in range(100)]
    return Cifar100Arrays(x_train, y_train, x_test, y_test, names)
