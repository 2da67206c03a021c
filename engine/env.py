"""The environment a run ran in: package versions, git commit, device, host. Stored with every run."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from engine.determinism import determinism_state
from engine.errors import DeviceError


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when present, else CPU; 'cuda' without a GPU is a DeviceError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no GPU is visible to torch here; use --device cpu or --device auto.")
    return torch.device(name)


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment(device: torch.device) -> dict[str, Any]:
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "cltui": _version("cltui"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "numpy": _version("numpy"),
        "h5py": _version("h5py"),
        "git_commit": git_commit(),
        "device": str(device),
        "device_name": dev_name,
        "torch_threads": torch.get_num_threads(),
        # CUDA only: CPU runs are deterministic without flags (engine/determinism.py)
        "determinism": determinism_state() if device.type == "cuda" else {},
    }
