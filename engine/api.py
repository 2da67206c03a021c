"""The engine's one entry point: run, resume and describe. The CLI and the TUI both use this.

Errors a person can fix (bad config, missing data, no GPU, unwritable runs dir, unknown run) are
raised as CltuiError subclasses *before* anything is written. A failure during training is
recorded in the run (status 'failed', the error text) and returned, not raised.
"""

from __future__ import annotations

import shutil
import signal
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from engine import events as ev
from engine.benchmarks.base import Benchmark
from engine.catalog import load_all
from engine.checkpoint import load_checkpoint_verified
from engine.config import RunConfig, config_from_dict, config_to_dict
from engine.data.paths import resolve_data_dir
from engine.data.split import hold_out_validation
from engine.determinism import apply_determinism
from engine.env import environment, resolve_device
from engine.errors import RunStoreError
from engine.fsio import SPACE_ERRNOS, StorageError
from engine.loop import Trainer
from engine.memory import check_memory
from engine.methods.base import MethodContext
from engine.models.base import build_model
from engine.planning import override_hash
from engine.registry import BENCHMARKS, METHODS
from engine.rng import Streams, seed_everything
from engine.runlock import (
    RunLockedError,
    claim_run_dir,
    lock_held,
    still_running,
)
from engine.store import RUN_FILE, RunStore, RunWriter, read_run
from engine.store_read import truncation


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    metrics: dict[str, float]
    acc: np.ndarray
    error: str = ""
    kind: str = ""
    """'StorageError' when the run stopped because its files could not be written (status 'interrupted')."""


def build_trainer(cfg: RunConfig, data_dir: Path, emit: Callable[[Any], None], run_dir: Path | None = None,
                  checkpoint_extras: Callable[[], dict[str, Any]] | None = None) -> tuple[Trainer, torch.device]:
    """Device, data, model, method and loop for `cfg` (seeds every RNG first)."""
    load_all()
    device = resolve_device(cfg.device)
    apply_determinism(cfg.deterministic, device)  # before anything reaches the GPU (cuBLAS reads its env once)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    streams = Streams(cfg.seed)  # the run's named random streams; the Trainer saves them
    bench: Benchmark = BENCHMARKS.get(cfg.benchmark.name).impl(cfg.benchmark.options, device, data_dir, cfg.seed)
    tr = cfg.training
    bench = hold_out_validation(bench, tr.val_fraction, tr.val_per_task, streams.get("split/val"), device)
    model = build_model(cfg.model.name, cfg.model.options, bench.spec).to(device)
    ctx = MethodContext(model=model, benchmark=bench, device=device, training=cfg.training, seed=cfg.seed,
                        streams=streams)
    method = METHODS.get(cfg.method.name).impl(cfg.method.options, ctx)
    trainer = Trainer(cfg, bench, model, method, device, emit, run_dir, checkpoint_extras)
    check_memory(trainer)  # a batch that cannot fit is refused now, not out of memory minutes later
    return trainer, device


class Stoppable(Protocol):
    """What a stop request is set on: a Trainer, or an ensemble's flag (engine/ensemble.py)."""

    stop_requested: bool


@contextmanager
def stop_on_signals(targets: Sequence[Stoppable]) -> Iterator[None]:
    """Ctrl-C / SIGTERM ask the loop (each target's `stop_requested`) to checkpoint and stop at the
    next step; a second Ctrl-C aborts.

    Only a second SIGINT aborts: under `cltui run` a terminal's Ctrl-C reaches this process and
    `cltui` (which forwards a SIGTERM) both, and those two signals are one request to stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigints = 0

    def ask_stop(signum: int, frame: Any) -> None:
        nonlocal sigints
        if signum == signal.SIGINT:
            sigints += 1
            if sigints > 1:
                raise KeyboardInterrupt
        for target in targets:
            target.stop_requested = True

    old = {s: signal.signal(s, ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _fanout(sinks: Iterable[Callable[[Any], None]]) -> Callable[[Any], None]:
    sinks = list(sinks)

    def emit(event: Any) -> None:
        for s in sinks:
            s(event)

    return emit


def _execute(trainer: Trainer, writer: RunWriter, emit: Callable[[Any], None], stop_at_step: int | None) -> RunResult:
    run_dir = writer.path.parent
    kind = error = ""
    try:
        with stop_on_signals([trainer]):
            status = trainer.run(stop_at_step=stop_at_step)
    except Exception as e:
        status, error, kind = record_failure(e, writer, emit)
    finally:
        writer.set_elapsed(trainer.elapsed)
        writer.close()
    return RunResult(run_dir.name, run_dir, status, trainer.metrics(), trainer.acc.copy(), error, kind)


def record_failure(e: Exception, writer: RunWriter, emit: Callable[[Any], None]) -> tuple[str, str, str]:
    """(status, error line, kind) of a run stopped by `e`, recorded in the run where it can be. Call
    it from the `except` block (it records the traceback being handled)."""
    if isinstance(e, StorageError):  # disk full, read-only: stop; the record and the last checkpoint are intact
        error = storage_stop_line(e, writer.path.parent.name)
        writer.stopped_by(StorageError(error, e.errno))
        return "interrupted", error, "StorageError"
    error = f"{type(e).__name__}: {e}"  # recorded in the run; the caller shows one line
    try:
        emit(ev.RunFailed(error + "\n" + traceback.format_exc()))
    except StorageError:
        pass  # the failure cannot be recorded either; the caller still gets it
    return "failed", error, ""


def storage_stop_line(e: StorageError, run_id: str) -> str:
    """The one line for a run stopped by a storage error: what failed, and how to go on."""
    fix = "free some space" if e.errno in SPACE_ERRNOS else "make it writable"
    return f"{e}; the record and the last checkpoint are intact: {fix}, then resume with: cltui resume {run_id}"


def _checkpoint_extras(holder: dict[str, RunWriter]) -> Callable[[], dict[str, Any]]:
    """What each checkpoint stores about the run record: its row counts (flushing every row first)
    and the digest of those rows, which resume checks the record against."""
    def extras() -> dict[str, Any]:
        counts = holder["w"].counts()
        return {"store": counts, "store_digests": holder["w"].digests()}
    return extras


@dataclass
class Prepared:
    """A new run built but not yet recorded: its claimed directory and everything `open_record` needs."""

    cfg: RunConfig
    run_id: str
    run_dir: Path
    trainer: Trainer
    device: torch.device
    emit: Callable[[Any], None]
    holder: dict[str, RunWriter]
    overrides: Sequence[str]


def prepare_run(cfg: RunConfig, runs_dir: Path, data_dir: str | Path | None = None,
                sinks: Iterable[Callable[[Any], None]] = (), overrides: Sequence[str] = ()) -> Prepared:
    """Claim a run directory and build the run's trainer (nothing is recorded yet); on any failure
    the claimed directory is removed and the error raised."""
    store = RunStore(runs_dir)
    resolve_device(cfg.device)  # fail on a missing GPU before touching anything
    store.check_writable()
    run_id, run_dir = claim_run_dir(store.root, cfg.name, cfg.seed, override_hash(overrides))
    holder: dict[str, RunWriter] = {}
    emit = _fanout([lambda e: holder["w"](e) if "w" in holder else None, *sinks])
    try:
        trainer, device = build_trainer(cfg, resolve_data_dir(data_dir), emit, run_dir,
                                        checkpoint_extras=_checkpoint_extras(holder))
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # claimed but never written: leave nothing behind
        raise
    return Prepared(cfg, run_id, run_dir, trainer, device, emit, holder, overrides)


def open_record(p: Prepared, group: str = "", extra_env: dict[str, Any] | None = None) -> RunWriter:
    """Create the run's record (status running); `announce` then says it started."""
    cfg, trainer = p.cfg, p.trainer
    try:
        env = {**environment(p.device), **(extra_env or {})}
        env["overrides"] = list(p.overrides)
        env["data_source"] = trainer.bench.source
        env["benchmark_info"] = trainer.bench.info  # e.g. SSMNIST task seeds and class partitions
        env["method_info"] = trainer.method.describe()
        writer = RunWriter.create(p.run_dir, run_id=p.run_id, config=config_to_dict(cfg), environment=env,
                                  task_names=trainer.bench.task_names, phase_tasks=trainer.phase_tasks,
                                  phase_steps=trainer.phase_steps, series=trainer.declarations(), group=group)
    except BaseException:
        shutil.rmtree(p.run_dir, ignore_errors=True)
        raise
    p.holder["w"] = writer
    return writer


def announce(p: Prepared, notes: Sequence[str] = ()) -> None:
    """RunStarted: the record exists (the engine's channel announces the run on it)."""
    t = p.trainer
    p.emit(ev.RunStarted(p.run_id, str(p.run_dir), config_to_dict(p.cfg), t.bench.task_names, t.phase_tasks,
                         t.phase_steps, str(p.device), notes=tuple(notes)))


def run(cfg: RunConfig, runs_dir: Path, data_dir: str | Path | None = None,
        sinks: Iterable[Callable[[Any], None]] = (), group: str = "", stop_at_step: int | None = None,
        overrides: Sequence[str] = ()) -> RunResult:
    """Start a new run of `cfg` under `runs_dir`; returns when it finishes, fails or is interrupted.

    `overrides` (engine.planning.PlannedRun.overrides) are recorded and hashed into the run id."""
    p = prepare_run(cfg, runs_dir, data_dir, sinks, overrides)
    writer = open_record(p, group)
    announce(p)
    return _execute(p.trainer, writer, p.emit, stop_at_step)


def resume(run_ref: str, runs_dir: Path, data_dir: str | Path | None = None,
           sinks: Iterable[Callable[[Any], None]] = (), stop_at_step: int | None = None) -> RunResult:
    """Continue a stored run from its last checkpoint, to exactly the result of an uninterrupted run."""
    run_dir = RunStore(runs_dir).find(run_ref)
    run_id = run_dir.name
    try:
        rec = read_run(run_dir, with_series=False)
    except RunStoreError:
        if not truncation(run_dir / RUN_FILE):
            raise
        rec = None  # cut off: its status proves nothing; RunWriter.reopen rebuilds it from the checkpoint or refuses
    if rec is not None and rec.status == "finished":
        raise RunStoreError(f"run {run_id} already finished; nothing to resume.")
    if rec is not None and rec.status == "diverged":  # deterministic: it would diverge again at the same step
        raise RunStoreError(f"run {run_id} diverged; resuming would diverge again: change the config and start it again.")
    if lock_held(run_dir):  # RunWriter.reopen takes the lock itself; this only fails before the slow setup
        raise RunLockedError(still_running(run_dir))
    loaded = load_checkpoint_verified(run_dir)  # newest that passes its checksum; damaged ones are reported
    state = loaded.state
    notes = tuple(f"skipped {line}; resuming from the previous checkpoint" for line in loaded.skipped)
    cfg = config_from_dict(state["config"], where=f"checkpoint of {run_id}")
    resolve_device(cfg.device)
    holder: dict[str, RunWriter] = {}
    sinks = list(sinks)
    emit = _fanout([lambda e: holder["w"](e) if "w" in holder else None, *sinks])
    trainer, device = build_trainer(cfg, resolve_data_dir(data_dir), emit, run_dir,
                                    checkpoint_extras=_checkpoint_extras(holder))
    trainer.load_state_dict(state)
    # The record rebuilt to the checkpoint: its row count per series, checked against the rows'
    # digest (checkpoints older than digests carry counts only).
    writer = RunWriter.reopen(run_dir, state["store"], state.get("store_digests"), state["config"])
    # Rows evaluated after the checkpoint belong to the abandoned continuation: reset them.
    writer.f["acc"][:] = trainer.acc
    writer.f["acc_initial"][:] = trainer.acc_initial  # a record rebuilt after damage gets it from here too
    writer.f["phase_seconds"][:] = trainer.phase_seconds
    writer.f["progress"][0] = trainer.global_step
    holder["w"] = writer
    emit(ev.RunStarted(run_id, str(run_dir), config_to_dict(cfg), trainer.bench.task_names, trainer.phase_tasks,
                       trainer.phase_steps, str(device), resumed_at_step=trainer.global_step, notes=notes))
    return _execute(trainer, writer, emit, stop_at_step)


def describe(cfg: RunConfig, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Sizes of what `cfg` would build (tasks, parameters), without training."""
    trainer, device = build_trainer(cfg, resolve_data_dir(data_dir), lambda e: None)
    return {
        "device": str(device), "tasks": trainer.bench.task_names, "phases": trainer.phase_steps,
        "model_params": trainer.model.num_params(), "data_source": trainer.bench.source,
        **trainer.method.describe(),
    }
