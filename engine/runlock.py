"""Run-directory bookkeeping outside `run.h5`: claiming a unique run directory, the lock its writer
holds, and liveness. (A checkpoint's step is in the checkpoint's own header: engine.checkpoint.)

- **Claiming.** `claim_run_dir` creates the directory with `mkdir` (atomic: exactly one caller wins),
  trying `-2`, `-3`, ... suffixes on a clash, so two runs of the same preset and seed started in the
  same second still get distinct ids.
- **Writer lock.** The process writing a run holds `fcntl.flock(LOCK_EX)` on `writer.lock` in its
  directory from opening the run until closing it. The kernel drops the lock when the process dies
  (SIGKILL included), so "is anyone writing this run?" needs no pid, and a recycled pid or a zombie
  child can never make a dead run look alive. Readers probe with a non-blocking shared lock.
- **Liveness** (`liveness`): a 'running' record whose lock is free is interrupted; where no lock file
  exists (a record written before locks existed, or on a machine whose locks this one cannot see),
  the store's heartbeat `times[0]` decides.

Torch-free; POSIX only (fcntl).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from engine.errors import RunStoreError
from engine.fsio import fault_point, writing

LOCK_FILE = "writer.lock"
HEARTBEAT_STALE_S = 300.0
"""Without a lock file, a 'running' record whose heartbeat is older than this reads as interrupted
(the writer flushes at least at every logged step, curve point and evaluation)."""


class RunLockedError(RunStoreError):
    """Another process is writing the run."""


def slug(name: str) -> str:
    """A preset name as it appears in a run id: runs of non-alphanumerics become '-'."""
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def claim_run_dir(root: Path, preset: str, seed: int, tag: str, stamp: str | None = None) -> tuple[str, Path]:
    """Create and return a fresh run directory `<stamp>-<preset>-s<seed>-<tag>[-n]` under `root`.

    `tag` is the short hash of the run's overrides (engine.planning.override_hash). The directory
    is made with mkdir without exist_ok, so of two processes racing for one id exactly one gets it
    and the other moves on to the next suffix."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{stamp or time.strftime('%Y%m%d-%H%M%S')}-{slug(preset)}-s{seed}" + (f"-{tag}" if tag else "")
    for n in range(1, 10_000):
        run_id = base if n == 1 else f"{base}-{n}"
        try:
            with writing(root / run_id, "creating the run's directory"):  # full or read-only: one line
                fault_point("rundir", root / run_id)
                (root / run_id).mkdir()
        except FileExistsError:
            continue
        return run_id, root / run_id
    raise RunStoreError(f"no free run id for {base} in {root}")  # 10,000 runs in one second: not a real case


class WriterLock:
    """The exclusive lock of one run's writer; released by `release()` or by the process ending."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def acquire(cls, run_dir: Path, wait: float = 2.0) -> WriterLock:
        """Take the lock of `run_dir`; RunLockedError if another process keeps it for `wait` seconds.

        The short wait only rides out readers' probes (each holds a shared lock for microseconds)."""
        path = Path(run_dir) / LOCK_FILE
        with writing(path, "taking the run's writer lock"):  # a read-only run directory: one line
            fault_point("lock", path)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        end = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Say who holds it, for the message a second writer gets (only ever read, never trusted
                # for liveness: the flock alone says whether the holder is alive).
                try:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
                except OSError:
                    pass  # a full disk: the holder's line is only for messages; the flock is what counts
                return cls(fd, path)
            except BlockingIOError:
                if time.monotonic() > end:
                    os.close(fd)
                    raise RunLockedError(still_running(run_dir)) from None
                time.sleep(0.02)

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def lock_holder(run_dir: Path) -> str:
    """Who took `run_dir`'s lock last, as its holder wrote it ('pid 123 on host since ...')."""
    try:
        return (Path(run_dir) / LOCK_FILE).read_text(errors="replace").strip() or "holder unknown"
    except OSError:
        return "holder unknown"


def still_running(run_dir: Path) -> str:
    """The one line every refusal to touch a live run gives: who holds it, and how to follow it."""
    name = Path(run_dir).name
    return f"run {name} is still running ({lock_holder(run_dir)}); watch it with: cltui watch {name}"


def lock_held(run_dir: Path) -> bool | None:
    """True if a writer holds `run_dir`'s lock, False if not, None if the run has no lock file."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError:
        return None  # unreadable: let the heartbeat decide
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def liveness(status: str, held: bool | None, heartbeat: float, now: float | None = None) -> str:
    """The status a reader should show: `status`, except that a 'running' record nobody writes is
    'interrupted'. `held` is `lock_held(...)`; `heartbeat` the record's last update (unix time)."""
    if status != "running":
        return status
    if held is not None:
        return "running" if held else "interrupted"
    now = time.time() if now is None else now
    return "running" if now - heartbeat < HEARTBEAT_STALE_S else "interrupted"

