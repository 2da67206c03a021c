"""Seeding and capturing every random number generator a run uses (torch CPU/CUDA, NumPy, Python)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed for the named random stream of a run: a hash of (run seed, component name).

    Every component that draws randomness gets its own stream, so adding a draw in one never
    shifts another's numbers (STYLE §13). blake2b, not hash(): stable across processes and versions.
    """
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def stream_generator(seed: int, name: str) -> torch.Generator:
    """A CPU torch.Generator for the named stream (draw on the CPU, then move indices to the device)."""
    return torch.Generator().manual_seed(stream_seed(seed, name))
