"""The engine's file layer under a full disk or a read-only file system: one line for people,
space reserved before HDF5 writes, and a test-only fault injection.

- **One line.** `writing(path, doing)` turns an OSError (or h5py's RuntimeError, which carries the
  C library's `errno = N` only in its text) with errno ENOSPC, EDQUOT, EROFS, EACCES, EPERM or EFBIG
  into a `StorageError` naming the path and saying "no space left on device", "read-only file
  system", ... Other errors pass through unchanged.
- **Reserve, then write.** HDF5 left a file cut off (its superblock's end of file beyond the bytes
  on disk, half of a flush missing) when a write failed mid-flush: measured with RLIMIT_FSIZE, the
  record then read zeros where rows were. So the run store reserves room first (`reserve`:
  posix_fallocate from HDF5's end of allocation) and only then lets HDF5 write; a full disk fails
  the reservation, before HDF5 has touched the file, and the record stays as its last flush left it.
  `trim_to_superblock` drops the unused reserved tail once the file is closed.
- **Fault injection (tests only).** `CLTUI_TEST_FAULT=ERRNO:SITE:N` (e.g. `ENOSPC:checkpoint:3`)
  makes the N-th and every later write at SITE raise OSError(ERRNO), as a disk that filled up would.
  Sites: `store` (each run.h5 flush), `checkpoint` (each checkpoint file), `lock` (the writer lock
  file), `rundir` (creating a run directory); `any` counts them all. Never set outside tests.

Torch-free.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import RunStoreError

FAULT_ENV = "CLTUI_TEST_FAULT"
SITES = ("store", "checkpoint", "lock", "rundir")
ERRNO_TEXT = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large (a file-size limit was reached)",
}
"""The errnos that mean 'this place cannot take the run's files', with the words the line uses."""
SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Of those, the ones that freeing space (or raising a limit) fixes."""


class StorageError(RunStoreError, OSError):
    """A run's file could not be written (disk full, quota, read-only, no permission); one line."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.errno = code  # str() stays the message: OSError formats errno only when it also has strerror


def errno_of(e: BaseException) -> int | None:
    """The errno of an OSError, or the `errno = N` HDF5 writes into h5py's error text."""
    code = getattr(e, "errno", None)
    if isinstance(code, int) and code:
        return code
    m = re.search(r"errno = (\d+)", str(e))
    return int(m.group(1)) if m else None


def storage_error(e: BaseException, path: Path | str, doing: str) -> StorageError | None:
    """The one-line StorageError for `e` while `doing` something to `path`; None if `e` is not one."""
    if isinstance(e, StorageError):
        return e
    code = errno_of(e)
    if code not in ERRNO_TEXT:
        return None
    return StorageError(f"cannot write {path} ({doing}): {ERRNO_TEXT[code]}", code)


@contextmanager
def writing(path: Path | str, doing: str) -> Iterator[None]:
    """Map the storage errors of the block to StorageError (others pass through)."""
    try:
        yield
    except (OSError, RuntimeError) as e:  # h5py reports HDF5's failed writes as RuntimeError too
        err = storage_error(e, path, doing)
        if err is None:
            raise
        raise err from None


_fault_counts: dict[str, int] = {}


def fault_point(site: str, path: Path | str) -> None:
    """Test-only fault injection (module doc): raise OSError(ERRNO) at the N-th and later writes at `site`."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, where, nth = spec.split(":")
    if where not in (site, "any"):
        return
    _fault_counts[where] = _fault_counts.get(where, 0) + 1
    if _fault_counts[where] >= int(nth):
        code = getattr(errno, name)
        raise OSError(code, os.strerror(code), str(path))


def reset_faults() -> None:
    """Forget the fault counters (tests that run the engine in-process more than once)."""
    _fault_counts.clear()


def reserve(fd: int, start: int, nbytes: int) -> None:
    """Make sure the file behind `fd` has `nbytes` of disk space allocated from offset `start` (OSError
    ENOSPC/EDQUOT/... if the file system cannot give them); the file grows only where it was shorter."""
    try:
        os.posix_fallocate(fd, start, nbytes)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # A file system without fallocate (some network ones): no reservation, HDF5 writes unguarded.


def superblock_eof(path: Path) -> int | None:
    """The end-of-file address an HDF5 superblock (versions 2, 3: what libver='latest' writes) records."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(48)
    except OSError:
        return None
    if head[:8] != b"\x89HDF\r\n\x1a\n" or len(head) < 12 or head[8] not in (2, 3):
        return None
    o = head[9]
    if o not in (4, 8) or len(head) < 12 + 3 * o:
        return None
    return int.from_bytes(head[12 + 2 * o: 12 + 3 * o], "little")


def trim_to_superblock(path: Path) -> None:
    """Drop the reserved, unused tail of a closed HDF5 file (bytes past its recorded end of file)."""
    eof = superblock_eof(path)
    try:
        if eof is not None and path.stat().st_size > eof:
            os.truncate(path, eof)
    except OSError:
        pass  # a longer file is still a valid one; only disk space is lost


def fsync_dir(path: Path) -> None:
    """Make a rename inside directory `path` durable (POSIX: the directory entry needs its own fsync)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename itself has happened
    finally:
        os.close(fd)
