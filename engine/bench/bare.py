"""The bench's yardstick: a bare training loop, written the way one would by hand, without cltui.

It trains the same model (built by the registry, so the same architecture and initialisation) on
the same benchmark tensors, with the same batch size, optimizer, learning rate, steps per task,
gradient clipping and method (fine-tuning or online EWC), and evaluates what a hand-written
continual-learning script evaluates: every task seen so far on its full test set after each task
(the lower triangle of the accuracy matrix). No store, no events, no checkpoints, no observers, no
stop rules, no named random streams; one host read of the loss per `log_every` steps, as a script
printing its loss would do. Its numbers are not cltui's (other batch order); its cost is the point.

Imports torch; used only by engine/bench/child.py.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.bench import BARE_METHODS
from engine.config import RunConfig
from engine.optim import make_optimizer


def bare_run(cfg: RunConfig, bench: Any, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
    """Train `model` on `bench` as the preset says, by hand; returns CPU/wall seconds and the accuracies."""
    method = cfg.method.name
    if method not in BARE_METHODS:
        raise ValueError(f"the bare loop implements {', '.join(BARE_METHODS)}, not {method!r}")
    tr, o = cfg.training, cfg.method.options
    gen = torch.Generator().manual_seed(cfg.seed)
    cols = bench.head_columns
    n_tasks = bench.num_tasks
    fisher: list[Tensor] | None = None
    anchor: list[Tensor] | None = None
    acc: list[list[float]] = []
    params: list[Tensor] = list(model.parameters())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    eval_cpu = 0.0
    for t, task in enumerate(bench.tasks):
        opt = make_optimizer(params, cfg.training)  # torch's optimizer as the run builds it
        n = task.size("train")
        perm, cursor = torch.randperm(n, generator=gen), 0
        for step in range(tr.steps_per_task):
            if cursor + tr.batch_size > n:
                perm, cursor = torch.randperm(n, generator=gen), 0
            idx = perm[cursor : cursor + tr.batch_size].to(device)
            cursor += tr.batch_size
            b = task.get("train", idx)
            loss = F.cross_entropy(model(b.x, b.lengths)[:, cols[t]], b.y)
            if fisher is not None and anchor is not None:
                pen = sum((f * (p - a).square()).sum() for f, p, a in zip(fisher, params, anchor))
                loss = loss + o.ewc_lambda * 0.5 * pen
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)  # = loss.backward(), which is untyped
            if tr.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, tr.clip_grad_norm)
            opt.step()
            if step % tr.log_every == 0:
                float(loss.detach())  # what a script printing its loss reads back
        if method == "ewc" and t < n_tasks - 1:
            # Online EWC's empirical Fisher, one sample at a time (the reference's way, spec §4.2).
            model.eval()
            n_f = n if o.n_fisher < 0 else min(o.n_fisher, n)
            sel = torch.randperm(n, generator=gen)[:n_f].to(device)
            sq = [torch.zeros_like(p) for p in params]
            for i in range(n_f):
                b = task.get("train", sel[i : i + 1])
                loss = F.cross_entropy(model(b.x, b.lengths)[:, cols[t]], b.y)
                for s, g in zip(sq, torch.autograd.grad(loss, params)):
                    s.add_(g.square())
            new = [s / n_f for s in sq]
            fisher = new if fisher is None else [a + o.gamma * f for a, f in zip(new, fisher)]
            anchor = [p.detach().clone() for p in params]
            model.train()
        e0 = time.process_time()
        acc.append([_evaluate(model, bench, j, cfg.evaluation.batch_size, device) for j in range(t + 1)])
        eval_cpu += time.process_time() - e0
    return {"cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
            "eval_cpu_s": eval_cpu, "steps": tr.steps_per_task * n_tasks, "acc": acc}


@torch.no_grad()
def _evaluate(model: torch.nn.Module, bench: Any, task: int, batch_size: int, device: torch.device) -> float:
    model.eval()
    data = bench.tasks[task]
    correct = 0
    n: int = data.size("test")
    for start in range(0, n, batch_size):
        b = data.get("test", torch.arange(start, min(n, start + batch_size), device=device))
        correct += int((model(b.x, b.lengths)[:, bench.head_columns[task]].argmax(1) == b.y).sum())
    model.train()
    return float(correct * 100.0 / max(1, n))
