"""A full disk and a read-only file system (issue 10 item 6): one line naming the path and the cause,
a non-zero exit, the record and the checkpoints left intact, the run listed and resumable once there
is room again, and the resumed run equal to an uninterrupted one.

Three ways to make a write fail, none needing a real full disk: the test-only fault injection of
engine/fsio.py (CLTUI_TEST_FAULT, in real engine processes), a small tmpfs (real ENOSPC from the
kernel) and a read-only bind mount (real EROFS), both inside a private mount namespace made with
`unshare` (skipped where this machine does not allow it)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from engine import api
from engine.checkpoint import CHECKPOINT, checkpoint_files, read_checkpoint_file
from engine.config import config_to_dict
from engine.errors import RunStoreError
from engine.executor import LocalExecutor, RunStartError, engine_command
from engine.fsio import FAULT_ENV, StorageError, reset_faults, storage_error
from engine.planning import PlannedRun
from engine.store import RUN_FILE, RunStore, read_run
from tests.conftest import assert_same_final_state, assert_same_series, tiny

CKPT = ("checkpoint.every_steps=15", "checkpoint.every_seconds=0", "threads=1")


def config():  # noqa: ANN201
    return tiny(*CKPT, steps=60)


def digests(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file of a run directory but the lock (whose holder line changes)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.iterdir())
            if p.is_file() and p.name not in ("writer.lock", "engine.log")}


def wait(ex: LocalExecutor, handle):  # noqa: ANN001, ANN201
    assert handle.proc is not None
    handle.proc.wait(timeout=300)
    return ex.poll(handle)


def resume_equals_uninterrupted(run_dir: Path, tmp_path: Path) -> None:
    full = api.run(config(), tmp_path / "full")
    res = api.resume(str(run_dir), run_dir.parent)
    assert res.status == "finished", res.error
    assert_same_series(full.run_dir, run_dir)
    assert_same_final_state(full.run_dir, run_dir)


def test_storage_errors_map_to_one_line_naming_the_path() -> None:
    for code, words in ((errno.ENOSPC, "no space left on device"), (errno.EROFS, "read-only file system"),
                        (errno.EDQUOT, "disk quota exceeded"), (errno.EACCES, "permission denied")):
        err = storage_error(OSError(code, os.strerror(code)), "/r/run.h5", "flushing the run record")
        assert isinstance(err, StorageError) and isinstance(err, RunStoreError) and isinstance(err, OSError)
        assert str(err) == f"cannot write /r/run.h5 (flushing the run record): {words}" and err.errno == code
    # h5py reports HDF5's failed writes as RuntimeError with the errno only in its text
    h5 = RuntimeError("Unable to synchronously flush file (file write failed: errno = 28, error message = 'No space')")
    assert "no space left on device" in str(storage_error(h5, "x", "y"))
    assert storage_error(OSError(errno.ENOENT, "gone"), "x", "y") is None  # not a storage error: passes through
    assert storage_error(ValueError("errno-free"), "x", "y") is None


@pytest.mark.parametrize("fault, words", [("ENOSPC:checkpoint:3", "checkpoint.pt.tmp (the checkpoint at step 30)"),
                                          ("ENOSPC:store:4", "run.h5 (flushing the run record)"),
                                          ("EROFS:any:12", "read-only file system")])
def test_a_write_failing_mid_run_stops_it_resumable(fault: str, words: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, fault)
    ex = LocalExecutor(tmp_path / "runs")
    handle = ex.submit(PlannedRun(config()))
    status = wait(ex, handle)
    monkeypatch.delenv(FAULT_ENV)
    assert status == "interrupted" and handle.proc is not None and handle.proc.returncode == 3
    assert words in handle.error and "then resume with: cltui resume" in handle.error
    assert "\n" not in handle.error and ("no space left on device" in handle.error or "EROFS" in fault)
    print(f"{fault}: {handle.error}")
    # The record is readable and listed; every checkpoint left verifies; no partial temp file remains.
    rec = read_run(handle.run_dir)
    assert rec.live_status == "interrupted"
    assert [r.run_id for r in RunStore(tmp_path / "runs").records()] == [handle.run_id]
    files = checkpoint_files(handle.run_dir)
    assert files and not (handle.run_dir / (CHECKPOINT + ".tmp")).exists()
    for p in files:
        read_checkpoint_file(p)
    # Once there is room again it resumes to exactly the uninterrupted run.
    resume_equals_uninterrupted(handle.run_dir, tmp_path)


def test_a_resume_while_the_disk_is_still_full_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    part = api.run(config(), tmp_path / "runs", stop_at_step=40)
    before = digests(part.run_dir)
    ex = LocalExecutor(tmp_path / "runs")
    for fault, where in (("ENOSPC:lock:1", "writer.lock (taking the run's writer lock)"),
                         ("ENOSPC:store:1", "run.h5 (rebuilding the run record to its checkpoint)")):
        monkeypatch.setenv(FAULT_ENV, fault)
        with pytest.raises(RunStartError) as e:
            ex.resume(part.run_dir)
        assert where in str(e.value) and "no space left on device" in str(e.value)
        print(f"resume with {fault}: {e.value}")
        assert digests(part.run_dir) == before  # refused before anything was written
        assert read_run(part.run_dir).live_status == "interrupted"
    monkeypatch.delenv(FAULT_ENV)
    resume_equals_uninterrupted(part.run_dir, tmp_path)


def test_in_process_a_full_disk_stops_the_run_and_resume_continues_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """engine.api in one process (as a notebook uses it): the stopped run's abandoned file handle
    does not block the resume."""
    monkeypatch.setenv(FAULT_ENV, "ENOSPC:store:6")
    reset_faults()
    res = api.run(config(), tmp_path / "runs")
    monkeypatch.delenv(FAULT_ENV)
    assert res.status == "interrupted" and res.kind == "StorageError" and "no space left on device" in res.error
    resume_equals_uninterrupted(res.run_dir, tmp_path)


def test_a_new_run_refused_by_a_full_disk_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for fault in ("ENOSPC:rundir:1", "ENOSPC:store:1", "EDQUOT:lock:1"):
        monkeypatch.setenv(FAULT_ENV, fault)
        reset_faults()
        with pytest.raises(StorageError, match="cannot write .*: (no space left on device|disk quota exceeded)$"):
            api.run(config(), tmp_path / "runs")
        assert list((tmp_path / "runs").iterdir()) == []  # no half-made run directory


def test_the_record_rebuilt_on_resume_keeps_only_rows_its_checkpoint_proves(tmp_path: Path) -> None:
    """Rows past the checkpoint are dropped (covered by every resume); rows before it that differ from
    what the checkpoint's digest says are refused, never trained on or shown as data."""
    part = api.run(tiny(*CKPT, "checkpoint.on_interrupt=false", steps=60), tmp_path, stop_at_step=40)
    with h5py.File(part.run_dir / RUN_FILE, "r+", libver="latest") as f:
        f["series/loss/value"][1] = 0.0  # as damage that kept the row count would leave it
    with pytest.raises(RunStoreError, match="first 6 rows of series 'loss' differ from what its checkpoint recorded"):
        api.resume(part.run_id, tmp_path)
    assert read_run(part.run_dir).live_status == "interrupted"  # still listed, lock released


def test_a_record_cut_at_its_tail_is_rebuilt_from_what_its_checkpoint_proves(tmp_path: Path) -> None:
    """As a disk that filled up in the middle of a flush leaves it (before the store reserved room):
    the rows its checkpoint counted are intact and hash to its digests, so resume rebuilds the record
    from them and finishes exactly as the uninterrupted run; the damaged file is kept beside it."""
    from engine.salvage import DAMAGED_SUFFIX

    part = api.run(tiny(*CKPT, "checkpoint.on_interrupt=false", steps=60), tmp_path / "runs", stop_at_step=40)
    path = part.run_dir / RUN_FILE
    os.truncate(path, path.stat().st_size - 2000)
    with pytest.raises(RunStoreError, match="cut off"):
        read_run(part.run_dir)
    resume_equals_uninterrupted(part.run_dir, tmp_path)
    assert (part.run_dir / (RUN_FILE + DAMAGED_SUFFIX)).is_file()


# -- real file systems, in a private mount namespace ---------------------------------------------

def _unshare_ok() -> bool:
    if not shutil.which("unshare"):
        return False
    flags = ["-m"] if os.geteuid() == 0 else ["-rm"]
    probe = subprocess.run(["unshare", *flags, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp"],
                           capture_output=True)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(not _unshare_ok(), reason="cannot make a private mount namespace here")


def _in_namespace(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    flags = ["-m"] if os.geteuid() == 0 else ["-rm"]
    return subprocess.run(["unshare", *flags, "sh", "-c", script], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **env))


def _engine(*args: str) -> str:
    return " ".join([*engine_command(), *args])


@needs_mounts
def test_a_real_full_disk_mid_run(tmp_path: Path) -> None:
    """A tmpfs too small for the whole run: the final record plus 2.5 checkpoints, where keep=2 needs
    room for three (two files and the one being written) from the third checkpoint on."""
    full = api.run(config(), tmp_path / "full")
    ckpt = (full.run_dir / CHECKPOINT).stat().st_size
    size_kib = ((full.run_dir / RUN_FILE).stat().st_size + int(2.5 * ckpt)) // 1024 + 64
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(json.dumps(config_to_dict(config())))
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    proc = _in_namespace(f"mount -t tmpfs -o size={size_kib}k tmpfs {mnt} && "
                         f"{_engine('run', '--config', str(cfg_file), '--runs-dir', str(mnt))}; echo $? > {out}/rc; "
                         f"cp -a {mnt}/. {out}/")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (out / "rc").read_text().strip() == "3", proc.stderr[-2000:]
    assert lines[1]["kind"] == "StorageError" and "no space left on device" in lines[1]["error"]
    assert str(mnt) in lines[1]["error"]
    print(f"real ENOSPC: {lines[1]['error']}")
    run_dir = out / lines[0]["run_id"]
    assert read_run(run_dir).live_status == "interrupted"  # listed, its record readable
    for p in checkpoint_files(run_dir):
        read_checkpoint_file(p)
    res = api.resume(str(run_dir), out)  # "space is back": the copy lives on the real disk
    assert res.status == "finished", res.error
    assert_same_series(full.run_dir, run_dir)
    assert_same_final_state(full.run_dir, run_dir)


@needs_mounts
def test_a_read_only_runs_dir(tmp_path: Path) -> None:
    """Resuming a run, and starting one, on a file system mounted read-only: one line, exit 2,
    nothing changed; the run resumes once the file system is writable."""
    part = api.run(config(), tmp_path / "runs", stop_at_step=40)
    before = digests(part.run_dir)
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(json.dumps(config_to_dict(config())))
    runs = tmp_path / "runs"
    for args in (("resume", str(part.run_dir), "--runs-dir", str(runs)),
                 ("run", "--config", str(cfg_file), "--runs-dir", str(runs))):
        proc = _in_namespace(f"mount --bind {runs} {runs} && mount -o remount,bind,ro {runs} && {_engine(*args)}")
        line = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 2 and "read-only file system" in line["error"] and str(runs) in line["error"]
        print(f"read-only {args[0]}: {line['error']}")
        assert digests(part.run_dir) == before
    assert [r.run_id for r in RunStore(runs).records()] == [part.run_id]
    resume_equals_uninterrupted(part.run_dir, tmp_path)
