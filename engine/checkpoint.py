"""Checkpoint files: one explicit dict, checksummed, written atomically, the last K kept.

Contents (format 3): format_version, config, loop (phase, step_in_phase, global_step, elapsed, acc,
acc_initial, phase_seconds, phase_done, tracker), model, method, optimizer, samplers, streams (every
named random stream), rng (the global RNGs), analyses (each observer's state), store and
store_digests (the run store's row count per series and a SHA-256 of those rows, added by
engine/api.py; resume checks run.h5 against them).

On disk: `checkpoint.pt` is the newest, `checkpoint.1.pt` … `checkpoint.<K-1>.pt` the older ones.
Each file is one header line `CLTUI-CHECKPOINT 3 <sha256 of the payload> <payload bytes> <global
step>` followed by the payload (torch.save of the dict), so a damaged file (flipped bytes, a cut
tail) is detected before anything is loaded from it, and a UI reads a checkpoint's step from its
header alone (`checkpoint_step`, no torch). Writing: the new file goes to `checkpoint.pt.tmp`, its
space reserved first and its bytes fsynced; then the older ones shift down by one name, the temp
file takes `checkpoint.pt` and the directory is fsynced. A kill at any moment leaves at least one
complete, verifiable file; a full disk or read-only directory fails before anything is renamed
(StorageError, engine/fsio.py) and leaves no temp file. Loading tries the newest first and falls
back to older ones, reporting every file it skipped and why. Formats 1 and 2 (no checksum) are refused.

Torch is imported inside the functions that serialise, so the UIs may import this module.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import RunStoreError
from engine.fsio import fault_point, fsync_dir, reserve, writing

CHECKPOINT = "checkpoint.pt"
FORMAT_VERSION = 3
_MAGIC = b"CLTUI-CHECKPOINT"


def checkpoint_files(run_dir: Path, keep: int = 64) -> list[Path]:
    """Existing checkpoint files of a run, newest first (the temp file of an interrupted write
    comes right after `checkpoint.pt`: it is newer, but only used once verified)."""
    run_dir = Path(run_dir)
    names = [CHECKPOINT, CHECKPOINT + ".tmp", *(f"checkpoint.{i}.pt" for i in range(1, keep))]
    return [run_dir / n for n in names if (run_dir / n).is_file()]


def _rotated(run_dir: Path, i: int) -> Path:
    return run_dir / (CHECKPOINT if i == 0 else f"checkpoint.{i}.pt")


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep: int = 2) -> Path:
    """Write `state` as the newest checkpoint and keep the `keep` newest files.

    A full disk or a read-only directory raises engine.fsio.StorageError (one line) and leaves the
    existing checkpoints as they were: the temp file is removed and nothing has been renamed yet."""
    import torch

    run_dir = Path(run_dir)
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buf)
    payload = buf.getvalue()
    step = int(state["loop"]["global_step"])
    header = b"%s %d %s %d %d\n" % (_MAGIC, FORMAT_VERSION, hashlib.sha256(payload).hexdigest().encode(),
                                   len(payload), step)
    tmp = run_dir / (CHECKPOINT + ".tmp")
    try:
        with writing(tmp, f"the checkpoint at step {step}"):
            fault_point("checkpoint", tmp)
            with open(tmp, "wb") as f:
                # Room for the whole file first: a full disk fails here, not after a partial write.
                reserve(f.fileno(), 0, len(header) + len(payload))
                f.write(header)
                f.write(payload)
                f.flush()
                _test_slow_write()
                os.fsync(f.fileno())  # the bytes are on disk before the name says they are a checkpoint
    except BaseException:
        tmp.unlink(missing_ok=True)  # a partial file is no checkpoint (and would be reported as damaged)
        raise
    # Shift older files down one name (the oldest falls off), then the new one takes checkpoint.pt.
    if keep > 1:
        _rotated(run_dir, keep - 1).unlink(missing_ok=True)
    for i in range(keep - 2, -1, -1):
        if _rotated(run_dir, i).is_file():
            os.replace(_rotated(run_dir, i), _rotated(run_dir, i + 1))
    path = _rotated(run_dir, 0)
    os.replace(tmp, path)
    fsync_dir(run_dir)  # the renames survive a power cut too
    return path


SLOW_WRITE_ENV = "CLTUI_TEST_SLOW_CHECKPOINT"
"""Test-only: seconds to sleep inside every checkpoint write (after the bytes, before fsync and the
renames), so that a kill test can land kills inside checkpoint writes. Never set outside tests."""


def _test_slow_write() -> None:
    delay = os.environ.get(SLOW_WRITE_ENV)
    if delay:
        import time

        time.sleep(float(delay))


def read_checkpoint_file(path: Path) -> dict[str, Any]:
    """One verified checkpoint file; RunStoreError saying what is wrong with it otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise RunStoreError(f"checkpoint {path} cannot be read ({e.strerror})") from None
    import torch

    head, sep, payload = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 5 or parts[0] != _MAGIC:
        raise RunStoreError(f"checkpoint {path} is not a format-{FORMAT_VERSION} cltui checkpoint "
                            "(older cltui versions wrote formats without a checksum; those runs cannot be resumed)")
    if parts[1] != str(FORMAT_VERSION).encode():
        raise RunStoreError(f"checkpoint {path} has format {parts[1].decode(errors='replace')}, "
                            f"this cltui reads {FORMAT_VERSION}")
    if len(payload) != int(parts[3]) or hashlib.sha256(payload).hexdigest().encode() != parts[2]:
        raise RunStoreError(f"checkpoint {path} is damaged (checksum mismatch: {len(payload)} of "
                            f"{int(parts[3])} bytes, content changed or cut)")
    try:
        # Our own file, verified by its checksum: it may hold numpy arrays and plain objects.
        state: dict[str, Any] = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as e:  # a payload we wrote but torch cannot read: report, never train on it
        raise RunStoreError(f"checkpoint {path} is unreadable ({type(e).__name__})") from None
    return state


def checkpoint_step(run_dir: Path) -> int | None:
    """The global step of `run_dir`'s newest checkpoint, read from its header (not verified: for
    display; resuming verifies). None when the run has none."""
    for path in checkpoint_files(run_dir):
        try:
            with open(path, "rb") as f:
                parts = f.readline(200).split(b" ")
            if len(parts) == 5 and parts[0] == _MAGIC:
                return int(parts[4])
        except (OSError, ValueError):
            continue
    return None


@dataclass
class LoadedCheckpoint:
    state: dict[str, Any]
    path: Path
    skipped: list[str] = field(default_factory=list)
    """One line per newer file that was not used, with the reason."""


def load_checkpoint_verified(run_dir: Path) -> LoadedCheckpoint:
    """The newest checkpoint of `run_dir` that verifies; skipped ones are reported, none trained on."""
    files = checkpoint_files(run_dir)
    if not files:
        raise RunStoreError(f"run {run_dir} has no checkpoint to resume from (it stopped before its first one).")
    skipped: list[str] = []
    for path in files:
        try:
            return LoadedCheckpoint(read_checkpoint_file(path), path, skipped)
        except RunStoreError as e:
            skipped.append(str(e))
    raise RunStoreError(f"no usable checkpoint in {run_dir}: " + "; ".join(skipped))


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The state of the newest checkpoint of `run_dir` that verifies."""
    return load_checkpoint_verified(run_dir).state
