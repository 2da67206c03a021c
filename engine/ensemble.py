"""Several runs trained in one process, in lockstep, as a batched ensemble (`cltui run --ensemble`).

Each member is an ordinary run: its own directory, record, writer lock, checkpoints, named random
streams and global RNG state, built by engine.api exactly as a run alone. What the members share is
the heavy part of each training step: the loop (engine/loop.py) is a generator that yields a step's
batch and expects the forward and task-loss backward back (engine/step_forward.py's `task_backward`);
here the members' batches go through one batched forward and one backward (`StackedMLP`), everything else
(method hooks, penalties, clipping, optimizer steps, evaluation, checkpoints, records) is each
member's own code, run in turn with that member's global RNG state swapped in.

Exactness. A member's weights, optimizer state, method state and every recorded series equal those
of the same config run alone, bit for bit on CPU, so a member can be resumed alone (`cltui resume`)
to the same result. The batched forward keeps that because on CPU `baddbmm` of one member's slice
computes what `F.linear` computes (same GEMM per slice); the read-out layer, whose small GEMM does not
agree, runs per member. Since that is a property of the BLAS and the shapes, `StackedMLP.probe`
checks it on the actual shapes before training: if any layer disagrees, every step falls back to
per-member forwards (still one process, still exact) and the run says so. On CUDA the batched GEMMs
are not the single-run kernels: members equal their solo runs only to float rounding there.

Which steps batch: members whose model is an MLP without BatchNorm or Dropout, whose method forwards
through the plain model (finetune, EWC, SI, OGD, ...), with no L1 activation term, and whose step is
one task's batch (a mixed multitask batch, a masked or generated-weight forward run per member).
Members may differ in seed and in any setting that keeps those shapes (a grid over learning rates or
λ); they must share device, threads, determinism, model and batch size.

Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from engine import api
from engine.api import RunResult
from engine.config import RunConfig, config_to_dict
from engine.errors import ConfigError
from engine.loop import Trainer
from engine.step_forward import Groups, TaskGrad
from engine.methods.base import Method
from engine.models.mlp import MLP
from engine.rng import rng_state, set_rng_state
from engine.store import RunWriter

SHARED_KEYS = ("device", "threads", "deterministic", "model")
"""Config keys every member must share (besides training.batch_size and the benchmark's inputs)."""


def check_members(cfgs: Sequence[RunConfig]) -> None:
    """Refuse an ensemble whose members cannot share a process (one line naming the key)."""
    if len(cfgs) < 1:
        raise ConfigError("an ensemble needs at least one run")
    first = config_to_dict(cfgs[0])
    for cfg in cfgs[1:]:
        d = config_to_dict(cfg)
        for key in SHARED_KEYS:
            if d[key] != first[key]:
                raise ConfigError(f"ensemble members must share {key!r} ({first[key]!r} vs {d[key]!r}); "
                                  "run them as separate processes (--parallel) instead")
        if d["training"]["batch_size"] != first["training"]["batch_size"]:
            raise ConfigError("ensemble members must share training.batch_size; run them with --parallel instead")
        if d["benchmark"]["name"] != first["benchmark"]["name"]:
            raise ConfigError("ensemble members must share the benchmark; run them with --parallel instead")


def config_reason(cfg: RunConfig) -> str | None:
    """`batch_reason` from the config alone, before anything is built (the CLI then starts separate
    processes instead of an ensemble whose forwards could not batch)."""
    from engine.catalog import load_all
    from engine.registry import METHODS

    load_all()
    if cfg.model.name != "mlp":
        return f"model {cfg.model.name!r} has no batched forward here (the MLP has)"
    if cfg.model.options.batchnorm or cfg.model.options.dropout > 0:
        return "the MLP has BatchNorm or Dropout"
    impl = METHODS.get(cfg.method.name).impl
    if impl.forward is not Method.forward or impl.head_logits is not Method.head_logits:
        return f"method {cfg.method.name!r} has its own forward"
    if cfg.training.l1_activation > 0:
        return "training.l1_activation > 0 reads each member's activations"
    if impl.schedule is not Method.schedule:
        return f"method {cfg.method.name!r} trains mixed batches of several tasks"
    return None


def batch_reason(trainer: Trainer) -> str | None:
    """Why `trainer`'s steps cannot join the batched forward (None: they can): its config decides."""
    return config_reason(trainer.cfg)


class StackedMLP:
    """One forward of K same-shaped MLPs on K batches: hidden layers as batched GEMMs (baddbmm) on
    the members' weights stacked per step (the stack's backward hands each member its own .grad),
    the read-out per member. Returns each member's full logits [B, n_outputs]."""

    def __init__(self, models: Sequence[MLP]) -> None:
        self.models = list(models)

    def forward(self, xs: Tensor) -> list[Tensor]:
        k = len(self.models)
        h = xs.reshape(k, xs.shape[1], -1)
        layers = [m._layers() for m in self.models]
        for j in range(len(layers[0])):
            fcs = [lay[j][1] for lay in layers]
            for lay in layers:  # a unit gate with a gain set (masking) is per member: never batched here
                assert lay[j][3].gain is None, "a gated unit layer reached the batched forward"
            w = torch.stack([fc.weight for fc in fcs])
            b = torch.stack([fc.bias for fc in fcs]).unsqueeze(1)
            h = self.models[0].act(torch.baddbmm(b, h, w.transpose(1, 2)))
        return [m.out(h[i]) for i, m in enumerate(self.models)]

    def probe(self, batch: int, generator: torch.Generator) -> str | None:
        """Whether the batched forward and backward equal each member's own, bit for bit, on these
        shapes (None), or which tensor first differs. Uses copies of the weights: touches nothing."""
        dev = self.models[0].out.weight.device
        n_in = self.models[0].n_in
        xs = torch.randn(len(self.models), batch, n_in, generator=generator, device=dev)
        copies = [copy.deepcopy(m) for m in self.models]
        for c in copies:
            c.zero_grad(set_to_none=True)
        batched = type(self)(copies).forward(xs)
        torch.autograd.backward([o.square().sum() for o in batched])
        got = [[p.grad.clone() for p in c.parameters()] for c in copies]  # type: ignore[union-attr]
        for c in copies:
            c.zero_grad(set_to_none=True)
        for i, c in enumerate(copies):
            out = c(xs[i])
            if not torch.equal(out, batched[i]):
                return f"member {i}'s logits"
            torch.autograd.backward(out.square().sum())
            for (name, p), g in zip(c.named_parameters(), got[i]):
                if not torch.equal(p.grad, g):  # type: ignore[arg-type]
                    return f"member {i}'s gradient of {name}"
        return None


@dataclass
class Member:
    """One run of the ensemble: its trainer, the loop generator, what it asked for, how it ended."""

    trainer: Trainer
    finish: Callable[[str | None, BaseException | None], str]
    """Called once when the member's loop ends, with its status, or with the exception that ended it
    (then it records the failure and returns the final status); closes the member's record."""
    gen: Generator[Groups, TaskGrad, str]
    rng: dict[str, Any] = field(default_factory=rng_state)
    """This member's global RNG state (the process has one; each member's code runs with its own)."""
    batchable: bool = False
    """Whether this member's steps may join the batched forward (`batch_reason`; fixed for a run)."""
    request: Groups | None = None
    status: str | None = None

    @contextmanager
    def own_rng(self) -> Iterator[None]:
        set_rng_state(self.rng)
        try:
            yield
        finally:
            self.rng = rng_state()

    def advance(self, answer: Callable[[], TaskGrad] | None) -> None:
        """Answer the member's last request (None: start it) and run its loop to its next step's
        forward, or to its end. An exception ends this member only (recorded in its run)."""
        with self.own_rng():
            try:
                self.request = next(self.gen) if answer is None else self.gen.send(answer())
            except StopIteration as done:
                self.request, self.status = None, self.finish(done.value, None)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                self.gen.close()
                self.request, self.status = None, self.finish(None, e)


def batched_answers(members: Sequence[Member]) -> list[TaskGrad]:
    """Forward and task-loss backward of members whose requests are one same-shaped batch each."""
    requests = [m.request[0] for m in members if m.request is not None]
    logits = StackedMLP([cast(MLP, m.trainer.model) for m in members]).forward(torch.stack([b.x for _, b in requests]))
    out: list[TaskGrad] = []
    for m, (task, b), full in zip(members, requests, logits):
        head = full.index_select(1, m.trainer.bench.head(task))
        loss, correct = m.trainer.fwd.task_loss([(task, b, head)])
        out.append((loss, correct, None))
    torch.autograd.backward([loss for loss, _, _ in out])
    return out


@dataclass
class StopFlag:
    """The ensemble's stop request (set by a signal at any moment), handed to every member between
    two steps, so all stop at the same step."""

    stop_requested: bool = False


def drive(members: Sequence[Member], batched: bool, stop: StopFlag | None = None) -> None:
    """Run every member's loop to its end, batching each step's forwards where possible."""
    for m in members:
        m.advance(None)
    while live := [m for m in members if m.status is None and m.request is not None]:
        if stop is not None and stop.stop_requested:
            for m in live:
                m.trainer.stop_requested = True
        group = [m for m in live if batched and m.batchable and m.request is not None and len(m.request) == 1]
        if len({tuple(m.request[0][1].x.shape) for m in group if m.request is not None}) != 1:
            group = []
        answers: dict[int, Callable[[], TaskGrad]] = {}
        if len(group) > 1:
            try:
                done = batched_answers(group)
                answers.update({id(m): partial(_given, a) for m, a in zip(group, done)})
            except Exception as e:  # e.g. out of memory: each member of the batch ends with it
                answers.update({id(m): partial(_raise, e) for m in group})
        for m in live:
            m.advance(answers.get(id(m), partial(_alone, m)))


def _alone(m: Member) -> TaskGrad:
    """A member's own forward and backward (runs inside its RNG scope: a dropout draws from it)."""
    assert m.request is not None
    return m.trainer.fwd.task_backward(m.request)


def _given(a: TaskGrad) -> TaskGrad:
    return a


def _raise(e: BaseException) -> TaskGrad:
    raise e


@dataclass(frozen=True)
class EnsembleRun:
    """One member to start: its resolved config, seed group and the overrides that made it."""

    cfg: RunConfig
    group: str = ""
    overrides: tuple[str, ...] = ()


def run_ensemble(runs: Sequence[EnsembleRun], runs_dir: Path, data_dir: str | Path | None = None,
                 sinks: Iterable[Callable[[Any], None]] = (), stop_at_step: int | None = None) -> list[RunResult]:
    """Start `runs` as one ensemble (see the module doc); returns each member's result, in order,
    once every member finished, failed, diverged or was interrupted (a signal stops them all)."""
    check_members([r.cfg for r in runs])
    sinks = list(sinks)
    prepared: list[api.Prepared] = []
    rngs: list[dict[str, Any]] = []
    writers: list[RunWriter] = []
    try:
        for r in runs:  # each built exactly as alone: seeds, data, model draws
            prepared.append(api.prepare_run(r.cfg, runs_dir, data_dir, sinks, r.overrides))
            rngs.append(rng_state())  # the global RNG as this member's build left it
        batched, note = _batching(prepared)
        info = {"members": [p.run_id for p in prepared], "batched": batched, "note": note}
        for p, r in zip(prepared, runs):
            writers.append(api.open_record(p, r.group, {"ensemble": info}))
    except BaseException:
        for w in writers:
            w.close()
        for p in prepared:
            shutil.rmtree(p.run_dir, ignore_errors=True)  # nothing trained yet: leave nothing behind
        raise
    for p in prepared:
        api.announce(p, [note] if note else [])
    results: dict[str, RunResult] = {}

    def finisher(p: api.Prepared, w: RunWriter) -> Callable[[str | None, BaseException | None], str]:
        def finish(status: str | None, exc: BaseException | None) -> str:
            error = kind = ""
            try:
                if isinstance(exc, Exception):
                    status, error, kind = api.record_failure(exc, w, p.emit)
            finally:
                w.set_elapsed(p.trainer.elapsed)
                w.close()
            assert status is not None
            results[p.run_id] = RunResult(p.run_id, p.run_dir, status, p.trainer.metrics(), p.trainer.acc.copy(),
                                          error, kind)
            return status
        return finish

    members = [Member(p.trainer, finisher(p, w), p.trainer.steps(stop_at_step), rng, batch_reason(p.trainer) is None)
               for p, w, rng in zip(prepared, writers, rngs)]
    try:
        stop = StopFlag()
        with api.stop_on_signals([stop]):
            drive(members, batched, stop)
    finally:  # a second Ctrl-C (KeyboardInterrupt): close the records of members still going
        for m, p, w in zip(members, prepared, writers):
            if m.status is None:
                w.set_elapsed(p.trainer.elapsed)
                w.close()
    return [results[p.run_id] for p in prepared]


def _batching(prepared: Sequence[Any]) -> tuple[bool, str]:
    """Whether the members' forwards are batched, and a note for the user when they are not."""
    if len(prepared) < 2:
        return False, ""
    reasons = {r for p in prepared if (r := batch_reason(p.trainer)) is not None}
    if reasons:
        return False, f"ensemble: forwards run member by member ({sorted(reasons)[0]})"
    models = [cast(MLP, p.trainer.model) for p in prepared]
    gen = torch.Generator(models[0].out.weight.device).manual_seed(0)
    differs = StackedMLP(models).probe(prepared[0].cfg.training.batch_size, gen)
    if differs is None:
        return True, ""
    if models[0].out.weight.device.type == "cpu":
        return False, (f"ensemble: the batched forward is not bit-exact on this machine ({differs} differs), "
                       "so forwards run member by member (exact, without the batching speed-up)")
    return True, (f"ensemble: batched GEMMs on {models[0].out.weight.device.type} round differently ({differs} "
                  "differs): members equal their solo runs to float rounding, not bit for bit")
