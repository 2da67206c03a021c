"""The small stratified MNIST subset shipped inside cltui, so a fresh offline machine can run.

`mnist_subset.npz` (built by scripts/make_embedded_mnist.py from the official IDX files) holds
500 training and 100 test images per digit, with their indices into the official files. MNIST is
by Yann LeCun, Corinna Cortes and Christopher J. C. Burges (commonly CC BY-SA 3.0). The file's
SHA-256 is checked at load, so a damaged install is reported rather than used.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

from engine.data.mnist import MnistArrays
from engine.errors import DataError

FILE = "mnist_subset.npz"
SHA256 = "1ed153d0b3d54526f91fca5871b15131dc5df0da947aebe5c778fc004df54300"


def embedded_path() -> Path:
    return Path(str(resources.files("engine.data") / FILE))


def load_embedded() -> MnistArrays:
    path = embedded_path()
    if not path.is_file():
        raise DataError(f"embedded MNIST subset missing at {path}; reinstall cltui (pip install -e .).")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise DataError(f"embedded MNIST subset {path} fails its checksum; reinstall cltui.")
    with np.load(path) as z:
        return MnistArrays(z["x_train"], z["y_train"].astype(np.int64), z["x_test"], z["y_test"].astype(np.int64))
