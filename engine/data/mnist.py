"""MNIST from the official IDX files: read, verify, and download when missing.

Files live in `<data_root>/MNIST/raw/` (torchvision's layout). Each is checked against its
published MD5 before use, so a truncated or corrupt file is reported instead of silently used.
Offline with no files, `load_mnist` raises a DataError naming the files and where to put them.
Numpy only (torch-free).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import DataError

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# name -> md5 (the values torchvision checks).
FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


@dataclass(frozen=True)
class MnistArrays:
    """The four MNIST arrays: images uint8 [N, 28, 28], labels int64 [N]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """Parse one gzipped IDX file (big-endian header: magic, then one int32 per dimension)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte payload
        raise DataError(f"{path} is not an IDX ubyte file (magic {magic:#x}); delete it and retry.")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if arr.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated ({arr.size} values for shape {dims}); delete it and retry.")
    return arr.reshape(dims)


def _download(name: str, dest: Path) -> None:
    """Fetch `name` from the first mirror that answers, verify its MD5, then move it in place."""
    errors = []
    for base in MIRRORS:
        try:
            with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
                with urllib.request.urlopen(base + name, timeout=30) as resp:
                    shutil.copyfileobj(resp, tmp)
            tmp_path = Path(tmp.name)
            if md5sum(tmp_path) != FILES[name]:
                tmp_path.unlink()
                errors.append(f"{base}: checksum mismatch")
                continue
            tmp_path.replace(dest)
            return
        except OSError as e:  # URLError is an OSError; covers offline machines
            errors.append(f"{base}: {e}")
            try:
                Path(tmp.name).unlink()
            except (OSError, UnboundLocalError):
                pass
    raise OSError("; ".join(errors))


def ensure_mnist(data_root: Path, download: bool = True) -> Path:
    """Make sure the four verified files exist under `data_root/MNIST/raw`; return that folder."""
    raw = Path(data_root) / "MNIST" / "raw"
    missing = [n for n in FILES if not (raw / n).is_file()]
    if missing and download:
        try:
            raw.mkdir(parents=True, exist_ok=True)
            for name in missing:
                _download(name, raw / name)
            missing = []
        except OSError:
            pass  # reported below as one line
    if missing:
        raise DataError(
            f"MNIST files missing in {raw}: {', '.join(missing)}. Download them from "
            f"{MIRRORS[0]} into that folder, or point --data-dir / CLTUI_DATA_DIR at a folder "
            "holding MNIST/raw/."
        )
    for name, md5 in FILES.items():
        if md5sum(raw / name) != md5:
            raise DataError(f"{raw / name} fails its MD5 check; delete it and run again to re-download.")
    return raw


def load_mnist(data_root: Path, download: bool = True) -> MnistArrays:
    """All of MNIST as numpy arrays, from verified official files."""
    raw = ensure_mnist(data_root, download)
    return MnistArrays(
        x_train=read_idx(raw / "train-images-idx3-ubyte.gz"),
        y_train=read_idx(raw / "train-labels-idx1-ubyte.gz").astype(np.int64),
        x_test=read_idx(raw / "t10k-images-idx3-ubyte.gz"),
        y_test=read_idx(raw / "t10k-labels-idx1-ubyte.gz").astype(np.int64),
    )
