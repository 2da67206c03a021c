"""Task inference: evaluation when the task is not given at test time (`evaluation.task_inference`).

"given" (the default) is the ordinary evaluation: the accuracy matrix uses the true task's head and
whatever the method keeps per task. "h" and "g" add SupSup's one-shot inference (the method's
`infer_task` hook, engine/methods/base.py; only methods with `infers_task` accept these settings):

* each learned task's test set is shuffled (stream "inference/<k>/<task>", k = tasks learned: a
  fixed order per evaluation point, independent of every other draw and of resuming) and cut into
  batches of `evaluation.inference_batch_size` (128, the reference's test batch);
* the task of each batch is inferred from its FIRST example only, with the objective
    H: the entropy of the softmax over all output units, or
    G: logsumexp over all output units with the real-class units (the benchmark's heads) detached,
       so the gradient flows only through the superfluous units;
* the whole batch is classified with the inferred task; a batch whose task was inferred wrongly
  counts as entirely wrong (labels are not shared between tasks).

It runs after the accuracy matrix's evaluation of each phase whose number of learned tasks is in
`evaluation.inference_at` (every phase when that list is empty) and writes two declared series
(phase cadence, one value per task, NaN for tasks not learned yet):

    inferred_task_acc  % of a task's test batches whose task was inferred correctly
    inference_acc      % of a task's test images classified correctly with the inferred task

Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from engine.benchmarks.base import Benchmark
from engine.config import EvaluationConfig
from engine.errors import ConfigError
from engine.methods.base import Method
from engine.rng import stream_generator
from engine.series import SeriesSpec


def entropy_objective(logits: Tensor) -> Tensor:
    """H: the entropy of the softmax over all output units, per row."""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


def g_objective(real: Tensor) -> Callable[[Tensor], Tensor]:
    """G: logsumexp over all units per row, the units in `real` (bool [O]) detached (no gradient through them)."""
    def objective(logits: Tensor) -> Tensor:
        return torch.where(real, logits.detach(), logits).logsumexp(1)
    return objective


class TaskInference:
    """The inference evaluation of one run; the loop builds it only when task_inference != "given"."""

    def __init__(self, ev: EvaluationConfig, method: Method, bench: Benchmark, device: torch.device, seed: int) -> None:
        self.ev, self.method, self.bench, self.device, self.seed = ev, method, bench, device, seed
        method.check_task_inference()  # e.g. SupSup refuses a model with per-task BatchNorm
        too_many = [k for k in ev.inference_at if k > bench.num_tasks]
        if too_many:
            raise ConfigError(f"evaluation.inference_at = {list(ev.inference_at)}: {too_many} exceed the run's "
                              f"{bench.num_tasks} tasks")
        n_out = int(method.model.n_outputs)
        real = torch.zeros(n_out, dtype=torch.bool, device=device)
        real[bench.head_columns.flatten()] = True
        self.objective = entropy_objective if ev.task_inference == "h" else g_objective(real)

    def declare_series(self) -> list[SeriesSpec]:
        shape, cols = (self.bench.num_tasks,), tuple(self.bench.task_names)
        return [
            SeriesSpec("inferred_task_acc", shape, cadence="phase", columns=cols,
                       description=f"task inference ({self.ev.task_inference}): % of each task's test batches "
                                   "whose task was inferred correctly from their first example (NaN: not learned)"),
            SeriesSpec("inference_acc", shape, cadence="phase", columns=cols,
                       description="% of each task's test images classified correctly with the inferred task; "
                                   "a wrongly inferred batch counts wrong (NaN: not learned)"),
        ]

    def due(self, learned: list[int]) -> bool:
        return not self.ev.inference_at or len(learned) in self.ev.inference_at

    @torch.no_grad()
    def task_accuracy(self, task: int, learned: list[int]) -> tuple[float, float]:
        """(% batches inferred right, % images classified right) on `task`'s test set."""
        data = self.bench.tasks[task]
        n = data.size("test")
        gen = stream_generator(self.seed, f"inference/{len(learned)}/{task}")
        order = torch.randperm(n, generator=gen).to(self.device)
        batches = torch.split(order, self.ev.inference_batch_size)
        first = data.get("test", torch.stack([b[0] for b in batches]))
        predicted = self.method.infer_task(first.x, first.lengths, learned, self.objective).tolist()
        right = [b for b, p in zip(batches, predicted) if p == task]
        correct = 0
        if right:
            idx = torch.cat(right)
            for chunk in torch.split(idx, self.ev.batch_size):
                b = data.get("test", chunk)
                correct += int((self.method.head_logits(b.x, b.lengths, task).argmax(1) == b.y).sum())
        return 100.0 * len(right) / len(batches), 100.0 * correct / n

    def run(self, learned: list[int]) -> dict[str, np.ndarray]:
        """Both series' rows after learning `learned` (the model is put in eval mode, then back)."""
        task_acc = np.full(self.bench.num_tasks, np.nan)
        cls_acc = np.full(self.bench.num_tasks, np.nan)
        model = self.method.model
        was_training = model.training
        model.eval()
        try:
            for t in learned:
                task_acc[t], cls_acc[t] = self.task_accuracy(t, learned)
        finally:
            model.train(was_training)
        return {"inferred_task_acc": task_acc, "inference_acc": cls_acc}
