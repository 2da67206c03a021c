"""Run records carrying every analysis series of the series contract, written through the real store
(engine.store.RunWriter with declared SeriesSpecs, as the loop writes them), for the figure tests.

The values are synthetic but shaped like a class-incremental Split-MNIST MLP (784-120-84-10, layers
h1 and h2, 10 classes, 5 tasks): sparsity that grows task after task, probes that stay high on seen
classes, a few dead units with zero gradient, PCA-like clusters per class.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from engine import events as ev
from engine.metrics import summary
from engine.series import CURVES, TRAINING_SERIES, SeriesSpec
from engine.store import RunWriter

LAYERS = ("h1", "h2")
UNITS = {"h1": 120, "h2": 84}
PARAMS = {"fc1_weight": 120, "fc1_bias": None, "fc2_weight": 84, "fc2_bias": None, "fc3_weight": 10, "fc3_bias": None}
CLASSES = tuple(str(c) for c in range(10))
TASKS = ["1/2", "3/4", "5/6", "7/8", "9/0"]
TASK_CLASSES = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 0)]
BINS, N_LATENT = 30, 200


def contract_specs(n_tasks: int = 5, analyses: tuple[str, ...] = ("all",)) -> list[SeriesSpec]:
    """The declarations of the contract's analyses (`analyses` picks some; 'all' = every one)."""
    on = (lambda a: True) if "all" in analyses else (lambda a: a in analyses)
    p = list(PARAMS)
    cols = (*LAYERS, "all")
    out = [*TRAINING_SERIES, SeriesSpec(CURVES, (n_tasks,), cadence="curve", columns=tuple(TASKS[:n_tasks])),
           SeriesSpec("phase_steps", dtype="i8", cadence="phase"), SeriesSpec("phase_stop", dtype="i4", cadence="phase")]
    if on("sparsity"):
        out += [SeriesSpec("sparsity", (3,), cadence="curve", columns=cols),
                SeriesSpec("dormant", (3,), cadence="curve", columns=cols)]
    if on("class_probs"):
        out.append(SeriesSpec("class_prob", (10,), cadence="curve", columns=CLASSES))
    if on("weight_updates"):
        out.append(SeriesSpec("weight_update", (len(p),), cadence="curve", columns=tuple(p)))
    if on("gradients"):
        out.append(SeriesSpec("grad_layer", (len(p),), cadence="phase", columns=tuple(p)))
        out += [SeriesSpec(f"grad_units_{k}", (u,), cadence="phase") for k, u in PARAMS.items() if u]
    if on("histograms"):
        for k in p:
            out += [SeriesSpec(f"hist_{k}", (BINS,), cadence="phase"),
                    SeriesSpec(f"hist_{k}_range", (2,), cadence="phase", columns=("lo", "hi"))]
    if on("probes"):
        for layer in LAYERS:
            out += [SeriesSpec(f"probe_{layer}", (3,), cadence="phase", columns=("seen", "all", "unseen")),
                    SeriesSpec(f"probe_{layer}_class", (3, 10), cadence="phase", columns=CLASSES)]
    if on("latent"):
        out += [SeriesSpec(f"latent_{layer}", (N_LATENT, 2), cadence="phase", columns=("x", "y")) for layer in LAYERS]
        out.append(SeriesSpec("latent_labels", (N_LATENT,), dtype="i8", cadence="phase"))
    if on("plasticity"):
        out += [SeriesSpec("plasticity", (4,), cadence="phase",
                           columns=("dormant", "stable_rank", "effective_rank", "mean_abs_weight")),
                SeriesSpec("plasticity_dormant", (2,), cadence="phase", columns=LAYERS)]
    if on("stages"):
        out.append(SeriesSpec("epoch_test_acc", cadence="epoch"))
    return out


class AnalysisRun:
    """A Split-MNIST-like run being written with the chosen analyses' series: `phase(k)` writes one
    phase's rows (steps, curve points, epoch rows, phase-end rows), `close()` ends it (finished when
    every phase was written)."""

    def __init__(self, root: Path, run_id: str, *, n_tasks: int = 5, steps: int = 100,
                 analyses: tuple[str, ...] = ("all",), seed: int = 0, stage_offset: float = 0.0) -> None:
        self.rng = np.random.default_rng(seed)
        specs = contract_specs(n_tasks, analyses)
        self.names = {s.name for s in specs}
        self.n_tasks, self.steps, self.stage_offset = n_tasks, steps, stage_offset
        cfg = {"name": "study/test", "seed": seed, "benchmark": {"name": "split_mnist"}, "model": {"name": "mlp"},
               "method": {"name": "finetune"}, "training": {"steps_per_task": steps}}
        self.w = RunWriter.create(root / run_id, run_id=run_id, config=cfg, environment={"device": "cpu"},
                                  task_names=TASKS[:n_tasks], phase_tasks=[[k] for k in range(n_tasks)],
                                  phase_steps=[steps] * n_tasks, series=specs)
        self.w(ev.InitialEvaluated([0.0] * n_tasks))
        self.run_dir = root / run_id
        self.acc = np.full((n_tasks, n_tasks), np.nan)
        self.dead = self.rng.choice(120, 15, replace=False)  # h1 units that never get a gradient
        self.centres = self.rng.normal(0, 4, (10, 2))
        self.done = 0

    def phase(self, ph: int) -> None:
        w, rng, names, steps, n_tasks = self.w, self.rng, self.names, self.steps, self.n_tasks
        for s in range(1, steps + 1):
            g = ph * steps + s
            if s % 10 == 0:
                loss = 2 * math.exp(-s / 30) + 0.1
                w(ev.StepLogged(g, ph, {"loss": loss, "task_loss": loss, "penalty": 0.0, "train_acc": 90.0,
                                        "grad_norm": 1.0, "lr": 1e-3}, steps_per_sec=100.0))
            if s % 20 == 0:
                t = s / steps
                curve = [99.0 * min(1, 0.6 + t) if j == ph else (99.0 * math.exp(-3 * t) if j < ph else math.nan)
                         for j in range(n_tasks)]
                w(ev.SeriesPoint(CURVES, g, curve))
                level = min(0.95, 0.45 + 0.1 * ph + 0.05 * t)
                if "sparsity" in names:
                    w(ev.SeriesPoint("sparsity", g, [level, level + 0.03, level + 0.01]))
                    w(ev.SeriesPoint("dormant", g, [level / 3, level / 2, level / 2.5]))
                if "class_prob" in names:
                    seen = {c for k in range(ph + 1) for c in TASK_CLASSES[k]}
                    w(ev.SeriesPoint("class_prob", g, [(0.95 if c in TASK_CLASSES[ph] else 0.05 * (1 - t))
                                                       if c in seen else math.nan for c in range(10)]))
                if "weight_update" in names:
                    w(ev.SeriesPoint("weight_update", g, 1e-3 * math.exp(-s / 50) * (1 + rng.random(len(PARAMS)))))
            if "epoch_test_acc" in names and s % 25 == 0:
                w(ev.SeriesPoint("epoch_test_acc", g, 60 - 4 * ph + 10 * s / steps + self.stage_offset))
        self.acc[ph] = [99.0 - 60 * (ph > j) + j * 0.1 if j <= ph else 10.0 for j in range(n_tasks)]
        w(ev.PhaseEvaluated(ph, self.acc[ph].tolist(), seconds=1.0))
        g = (ph + 1) * steps
        w(ev.SeriesPoint("phase_steps", g, steps))
        w(ev.SeriesPoint("phase_stop", g, 0))
        if "grad_layer" in names:
            w(ev.SeriesPoint("grad_layer", g, rng.random(len(PARAMS)) * 10 ** rng.uniform(0, 3, len(PARAMS))))
            for k, u in PARAMS.items():
                if u:
                    v = rng.random(u) * 5
                    if k == "fc1_weight":
                        v[self.dead] = 0.0
                    w(ev.SeriesPoint(f"grad_units_{k}", g, v))
        if "hist_fc1_weight" in names:
            for k in PARAMS:
                spread = 0.05 * (1 + 0.3 * ph)
                vals = rng.normal(0, spread, 5000)
                lo, hi = float(vals.min()), float(vals.max())
                counts, _ = np.histogram(vals, BINS, (lo, hi))
                w(ev.SeriesPoint(f"hist_{k}", g, counts))
                w(ev.SeriesPoint(f"hist_{k}_range", g, [lo, hi]))
        if "probe_h1" in names:
            seen = {c for k in range(ph + 1) for c in TASK_CLASSES[k]}
            for li, layer in enumerate(LAYERS):
                per = np.array([[95.0 - 3 * ph - li if c in seen else math.nan for c in range(10)],
                                [85.0 - li for _ in range(10)],
                                [80.0 if c not in seen else math.nan for c in range(10)]])
                w(ev.SeriesPoint(f"probe_{layer}_class", g, per))
                w(ev.SeriesPoint(f"probe_{layer}", g, [np.nanmean(r) if not np.isnan(r).all() else math.nan
                                                       for r in per]))
        if "latent_labels" in names:
            labels = np.arange(N_LATENT) % 10
            w(ev.SeriesPoint("latent_labels", g, labels))
            for li, layer in enumerate(LAYERS):
                pts = self.centres[labels] * (1 + 0.2 * ph) + rng.normal(0, 1 + li, (N_LATENT, 2))
                w(ev.SeriesPoint(f"latent_{layer}", g, pts))
        if "plasticity" in names:
            w(ev.SeriesPoint("plasticity", g, [0.1 * ph, 80 - 5 * ph, 90 - 4 * ph, 0.05 + 0.01 * ph]))
            w(ev.SeriesPoint("plasticity_dormant", g, [0.1 * ph, 0.12 * ph]))
        self.done = ph + 1
        w.flush(force=True)

    def close(self) -> Path:
        if self.done == self.n_tasks:
            self.w(ev.RunFinished(summary(self.acc), seconds=5.0))
        self.w.close()
        return self.run_dir


def write_analysis_run(root: Path, run_id: str, *, phases_done: int | None = None, **kw: Any) -> Path:
    """A stored run (finished, or stopped after `phases_done` phases) with the chosen analyses' series."""
    run = AnalysisRun(root, run_id, **kw)
    for ph in range(run.n_tasks if phases_done is None else phases_done):
        run.phase(ph)
    return run.close()
