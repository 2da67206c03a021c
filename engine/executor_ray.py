"""The Ray executor: each planned run is one Ray task, on a local Ray instance or a cluster (`--ray-address`).

Ray is an optional extra (`pip install "cltui[ray]"`), imported only when a RayExecutor is built; without it
the user gets one line saying how to install it (RayMissing).

How a task runs: the worker trains in its own process through engine.api (no extra child process, so when
a worker dies its run dies with it), writing into the runs dir the driver reads; on a cluster that dir must
be on a shared filesystem (the same path on every node). On RunStarted it records the run as the slot's
member (engine.groups). Ray retries a task whose worker died (max_retries); the retry finds the slot's
member and resumes that run from its last checkpoint (engine.api.resume: bit-identical to an uninterrupted
run); only when there is no checkpoint to resume does it start the run again. Each task asks for the
config's CPU threads (1 when 0 = torch's default) and one GPU when the config says device = "cuda".

The driver side satisfies engine.executor.Executor, so engine.executor.run_all / engine.sweep drive it:
`submit` returns once the worker has recorded the run (the record exists), `poll` reads the task's
result (the run's final status), `stop` cancels the task (the engine sees SIGINT: checkpoint and stop).

Torch-free on the driver; the task function imports the engine (torch) on the worker.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import CltuiError
from engine.executor import RunHandle, RunStartError, record_status
from engine.groups import member_key, read_member, write_member

if TYPE_CHECKING:
    from engine.planning import PlannedRun

INSTALL = 'the Ray executor needs Ray: pip install "cltui[ray]" (or: pip install ray)'
START_TIMEOUT = 600.0
"""Seconds `submit` waits for a task's run to exist (a busy cluster may queue it that long)."""


class RayMissing(CltuiError):
    """Ray is not installed."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayMissing(INSTALL) from None
    return ray


def train_slot(config: dict[str, Any], group: str, overrides: list[str], runs_dir: str, data_dir: str | None,
               member_file: str) -> str:
    """The task body, on a worker: start the slot's run, or resume it when an earlier attempt started it
    (its worker died); the run's final status."""
    from engine import api
    from engine.config import config_from_dict
    from engine.events import RunStarted
    from engine.presentation import resume_of
    from engine.store import read_run

    member = Path(member_file)

    def record(event: Any) -> None:
        if isinstance(event, RunStarted):
            write_member(member, event.run_id)

    prior = read_member(member)
    if prior is not None:
        run_dir = Path(runs_dir) / prior["run_id"]
        rec = read_run(run_dir, with_series=False)
        if rec.live_status in ("finished", "failed", "diverged"):
            return rec.live_status  # the earlier attempt ended it; its worker died after
        if resume_of(rec).possible:
            return api.resume(prior["run_id"], Path(runs_dir), data_dir, sinks=[record]).status
        # killed before its first checkpoint: nothing to resume; its record stays (interrupted), a new run starts
    cfg = config_from_dict(config, where="sweep task")
    return api.run(cfg, Path(runs_dir), data_dir, sinks=[record], group=group, overrides=overrides).status


class RayHandle(RunHandle):
    """A run started as a Ray task: the task's ObjectRef beside the run's id and directory."""

    ref: Any = None


class RayExecutor:
    """Runs planned runs as Ray tasks; members of the sweep are recorded by the workers (`writes_members`)."""

    writes_members = True

    def __init__(self, runs_dir: Path, members_dir: Path, data_dir: str | Path | None = None,
                 address: str | None = None, max_retries: int = 3, num_cpus: int | None = None) -> None:
        """Connect to the Ray cluster at `address`, else start a local instance (with `num_cpus`, default
        every core). `members_dir` is the sweep's engine.groups members folder."""
        self.ray = _import_ray()
        self.runs_dir = Path(runs_dir).absolute()
        self.members_dir = Path(members_dir).absolute()
        self.data_dir = str(Path(data_dir).absolute()) if data_dir else None
        self.max_retries = max_retries
        if not self.ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None and num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            try:
                self.ray.init(address=address, logging_level=logging.WARNING, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise CltuiError(f"cannot reach Ray at {address or 'a new local instance'}: {str(e).splitlines()[0]}") from None
        self._remote = self.ray.remote(train_slot)
        self._refs: list[Any] = []

    def submit(self, run: PlannedRun, stop_at_step: int | None = None) -> RunHandle:
        from engine.config import config_to_dict

        if stop_at_step is not None:
            raise CltuiError("the Ray executor does not stop runs at a step")
        member = self.members_dir / f"{member_key(run.overrides, run.config.seed)}.json"
        cfg = run.config
        self._check_fits(max(1, cfg.threads), 1 if cfg.device == "cuda" else 0)
        ref = self._remote.options(
            num_cpus=max(1, cfg.threads), num_gpus=1 if cfg.device == "cuda" else 0,
            max_retries=self.max_retries, retry_exceptions=False,
        ).remote(config_to_dict(cfg), run.group, list(run.overrides), str(self.runs_dir), self.data_dir, str(member))
        self._refs.append(ref)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:  # the record exists once the worker wrote the member
            info = read_member(member)
            if info is not None:
                h = RayHandle(info["run_id"], self.runs_dir / info["run_id"])
                h.ref = ref
                return h
            done, _ = self.ray.wait([ref], timeout=0.2)
            if done:
                try:
                    self.ray.get(ref)
                except Exception as e:  # the task raised before its run existed: the engine's one line
                    cause = getattr(e, "cause", None) or e
                    raise RunStartError(str(cause).strip().splitlines()[-1], type(cause).__name__) from None
        self.ray.cancel(ref, force=True)
        raise RunStartError(f"no run started within {START_TIMEOUT:.0f} s (is the Ray cluster busy?)", "Timeout")

    def _check_fits(self, cpus: int, gpus: int) -> None:
        """Refuse a task no node of the cluster could ever run (Ray would keep it pending forever)."""
        have = self.ray.cluster_resources()
        for what, need in (("CPU", cpus), ("GPU", gpus)):
            if need > have.get(what, 0):
                hint = "set device=auto or cpu" if what == "GPU" else "lower threads"
                raise RunStartError(f"the run asks Ray for {need} {what}, the cluster has {have.get(what, 0):g}; "
                                    f"{hint}", "ResourceError")

    def resume(self, run_dir: Path, stop_at_step: int | None = None) -> RunHandle:
        raise CltuiError("resume a single run with: cltui resume RUN (the local executor)")

    def poll(self, handle: RunHandle) -> str | None:
        ref = getattr(handle, "ref", None)
        if ref is None:
            return record_status(handle.run_dir)
        done, _ = self.ray.wait([ref], timeout=0)
        if not done:
            return None
        try:
            return str(self.ray.get(ref))
        except Exception:  # retries exhausted or cancelled: the record says how far it got
            return record_status(handle.run_dir) or "failed"

    def stop(self, handle: RunHandle) -> None:
        ref = getattr(handle, "ref", None)
        if ref is not None:
            self.ray.cancel(ref)  # KeyboardInterrupt/SIGINT in the worker: the engine checkpoints and stops

    def stop_all(self) -> None:
        """Cancel every task not done: running ones checkpoint and stop ('interrupted'), queued ones never start."""
        for ref in self._refs:
            self.ray.cancel(ref)

    def kill_all(self) -> list[int]:
        """Force-cancel every task (its worker is killed: the steps since its last checkpoint are lost)."""
        for ref in self._refs:
            self.ray.cancel(ref, force=True)
        return []

    def shutdown(self) -> None:
        self.ray.shutdown()

