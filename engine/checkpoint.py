"""Checkpoint files: one explicit dict, written atomically (temp file + rename).

Contents (format 2): format_version, config, loop (phase, step_in_phase, global_step, elapsed,
acc, acc_initial, phase_seconds, phase_done, tracker), model, method, optimizer, samplers, streams (every named
random stream), rng (the global RNGs), analyses
(each observer's state), store (the run store's row count per series, added by engine/api.py).
Format 1 kept the store's counts as a (curves, scalars) tuple inside `loop`; it is not resumable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from engine.errors import RunStoreError

CHECKPOINT = "checkpoint.pt"
FORMAT_VERSION = 2


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    path = Path(run_dir) / CHECKPOINT
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"format_version": FORMAT_VERSION, **state}, tmp)
    os.replace(tmp, path)  # atomic: a crash leaves the previous checkpoint intact
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise RunStoreError(f"run {run_dir} has no checkpoint to resume from (it stopped before its first one).")
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)  # we wrote a dict
    except Exception as e:  # torch raises many kinds for a damaged file
        raise RunStoreError(f"checkpoint {path} is unreadable ({type(e).__name__}); the run cannot be resumed.") from None
    if state.get("format_version") != FORMAT_VERSION:
        raise RunStoreError(f"checkpoint {path} has format {state.get('format_version')}, this cltui reads {FORMAT_VERSION}.")
    return state
