"""Where data lives: `--data-dir`, else $CLTUI_DATA_DIR, else a per-user cache directory.

Torch-free. The layout under the root follows torchvision's (`MNIST/raw/*.gz`), so a root that
torchvision already filled works as is.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """$CLTUI_DATA_DIR if set, else $XDG_CACHE_HOME/cltui/data (~/.cache/cltui/data)."""
    env = os.environ.get("CLTUI_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cltui" / "data"


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The data root for a run: the explicit argument wins over the environment and the cache."""
    return Path(data_dir).expanduser() if data_dir else default_data_dir()
