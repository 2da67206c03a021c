"""Seeding and capturing every random number generator a run uses (torch CPU/CUDA, NumPy, Python)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def global_rng_from_stream(seed: int, name: str, device: torch.device) -> Iterator[None]:
    """Inside the block, torch's global RNG (CPU and `device`) is seeded from the named stream; outside,
    it is exactly as before. For re-initialisations that go through torch's init functions (which
    draw from the global RNG): their draws depend only on (run seed, name), never on what else used
    the global RNG, so a resumed run draws the same, and nothing else's numbers shift."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(stream_seed(seed, name))
        yield


def stream_generator(seed: int, name: str) -> torch.Generator:
    """A CPU torch.Generator for the named stream (draw on the CPU, then move indices to the device)."""
    return torch.Generator().manual_seed(stream_seed(seed, name))


class Streams:
    """The run's named random streams: one CPU torch.Generator per component name, made on first use.

    Owned by the Trainer (one object per run, shared with the method through MethodContext) and
    saved whole in the checkpoint. Names in use: "sampler/<task index>" (batch order), "mix" (task of
    each slot of a mixed batch), "split/val" (the validation hold-out), "fisher" (EWC's sample),
    "coresets/select" and "coresets/replay", "hnet/reg_subset", "augment" (training-batch augmentation),
    "cbp" (continual backprop's new weights); analyses use "analysis/<name>".
    The global RNGs stay for what a reference fixes (model init, masks) and for dropout ("training").
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._gens: dict[str, torch.Generator] = {}

    def get(self, name: str) -> torch.Generator:
        """The generator of stream `name` (created from (seed, name) the first time it is asked for)."""
        gen = self._gens.get(name)
        if gen is None:
            gen = self._gens[name] = stream_generator(self.seed, name)
        return gen

    def names(self) -> list[str]:
        return sorted(self._gens)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "streams": {name: g.get_state() for name, g in self._gens.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore every saved stream; a stream not in `state` had not been used yet and starts fresh."""
        if state["seed"] != self.seed:
            raise ValueError(f"random streams were saved for seed {state['seed']}, not {self.seed}")
        for name, st in state["streams"].items():
            self.get(name).set_state(st)
