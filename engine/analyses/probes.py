"""Linear probes: how well a linear read-out trained afresh decodes the classes from each hidden layer.

At each phase end, for each chosen layer of `model.features()` and for three sets of classes,

    seen    the classes of the tasks trained so far
    all     the classes of every task
    unseen  the classes of the tasks not trained yet that no trained task has (empty at the end)

a multinomial logistic regression over the set's classes is fitted on the FROZEN features (eval
mode) of the set's training images and scored on its test images. Classes are global
(`Benchmark.class_map`, the digits of Split-MNIST in any scenario); a benchmark without them is
refused with one line. Series (the session's series contract):

    probe_<layer>        (3,)   ("seen", "all", "unseen"): test accuracy (%), NaN for an empty set
    probe_<layer>_class  (3, C) per-class test accuracy (% of the class's test images predicted as
                                it) in each set; NaN where the class is not in the set

The fit is deterministic: no randomness, no minibatches. The training features are whitened in
float64 (centred, projected on their principal directions and scaled to unit variance; directions
of negligible variance, e.g. dead units, dropped: WHITEN_RTOL), the weights and bias start at 0,
and the loss mean CE + l2/2·‖W‖² (W on the whitened features; bias not penalised) is minimised by
full-batch L-BFGS (strong-Wolfe line search, at most `max_iter` iterations, stopping early once the
largest |gradient| entry is below `tolerance`), with the gradient written out in closed form.
Whitening is what makes this fast: on correlated ReLU features plain standardisation left L-BFGS
far from the optimum after 200 iterations, whitened it is within 2e-4 of its loss after 50 (MNIST
h2, measured). Every step is a deterministic function of the features (no random draw; the
eigendecomposition and the products are deterministic on one device with one thread count), so the
same features give the same bits; and mathematically the probe does not depend on which eigenvector
signs or basis within an eigenspace the solver returns (an orthogonal change of basis of the
whitened features, to which both the penalty and L-BFGS from 0 are blind). Cost: one L-BFGS iteration is ~1.2 evaluations of
2 (n × r × k) multiply-adds; 50 iterations on 60,000 MNIST images × 84 features take ~2-3 s of
one CPU core (measured; README).

Reads the model's own features: a method's masks or generated weights are not applied. Imports
torch; never textual/typer/rich.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.analyses.base import Observer, ObserverContext
from engine.analyses.frozen import ClassLabels, Pool, check_layers, fixed_subset, model_layers, pooled_features
from engine.registry import ANALYSES
from engine.schema import opt
from engine.series import SeriesSpec

SETS = ("seen", "all", "unseen")


@dataclass(frozen=True)
class ProbesOptions:
    """Linear probes (multinomial logistic regression) on frozen hidden features at each phase end."""

    enabled: bool = opt(False, "fit linear probes at each phase end")
    layers: list[str] = opt([], "layers of model.features() to probe, e.g. [\"h2\"] (empty = all)")  # noqa: RUF009 (opt copies lists per instance)
    train_samples: int = opt(0, "training images per probe: 0 = all of the set's classes, else a fixed subset")
    test_samples: int = opt(0, "test images per probe: 0 = all of the set's classes, else a fixed subset")
    l2: float = opt(1e-4, "L2 penalty l2/2·‖W‖² on the probe's weights over whitened features (not the bias), beside the mean cross-entropy")
    max_iter: int = opt(50, "L-BFGS iterations at most (full batch)")
    tolerance: float = opt(1e-6, "stop early once every gradient entry is below this in absolute value")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "analyses.probes." in front.
        for n in ("train_samples", "test_samples"):
            if getattr(self, n) < 0:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 0 (0 = all)")
        if self.l2 < 0:
            raise ValueError(f"l2 = {self.l2!r} must be >= 0")
        if self.max_iter < 1:
            raise ValueError(f"max_iter = {self.max_iter!r} must be >= 1")
        if self.tolerance < 0:
            raise ValueError(f"tolerance = {self.tolerance!r} must be >= 0")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers = {self.layers!r} names a layer twice")


# -- the probe: pure functions --------------------------------------------------------------------
WHITEN_RTOL = 1e-10
"""Directions whose variance is below this fraction of the largest are dropped before whitening:
float32 features hold ~7 digits, so such a direction is rounding (or a dead unit), not signal."""


def whiten(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(mean [d], projection P [d, r], whitened rows [n, r]) of features `x` [n, d], in float64:
    (x - mean) @ P has identity covariance over its r kept principal directions (WHITEN_RTOL).
    `x` is left untouched; one float64 copy of it is the largest temporary."""
    xc = x.to(torch.float64, copy=True)
    mean = xc.mean(0)
    xc.sub_(mean)
    values, vectors = torch.linalg.eigh(xc.T @ xc / max(1, x.shape[0]))
    top = float(values[-1]) if values.numel() else 0.0
    # Every feature constant (top = 0): no direction is kept and the probe is its bias alone.
    keep = values > top * WHITEN_RTOL if top > 0 else torch.zeros_like(values, dtype=torch.bool)
    proj = vectors[:, keep] / values[keep].sqrt()
    return mean, proj, xc @ proj


def fit_softmax(x: Tensor, y: Tensor, k: int, l2: float, max_iter: int, tolerance: float) -> tuple[Tensor, Tensor]:
    """(W [d, k], b [k]) of multinomial logistic regression of labels `y` (0..k-1) on features `x`
    [n, d], by full-batch L-BFGS from zero (see the module doc); `x`'s dtype is the solver's."""
    n, d = x.shape
    onehot = F.one_hot(y, k).to(x.dtype)
    w = torch.zeros(d, k, dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(k, dtype=x.dtype, device=x.device, requires_grad=True)
    lbfgs = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance,
                              tolerance_change=0.0, history_size=10, line_search_fn="strong_wolfe")

    def closure() -> float:
        # The gradient in closed form, Xᵀ(softmax − onehot)/n + l2·W: no autograd graph per
        # evaluation, and one exp over the [n, k] logits (the softmax and the log-sum-exp share it).
        with torch.no_grad():
            logits = torch.addmm(b, x, w)
            top = logits.max(1, keepdim=True).values
            e = torch.exp(logits - top)
            total = e.sum(1, keepdim=True)
            lse = (top + total.log()).squeeze(1)
            loss = (lse - logits.gather(1, y[:, None]).squeeze(1)).mean() + 0.5 * l2 * w.square().sum()
            err = e.div_(total).sub_(onehot).div_(n)
            w.grad = torch.addmm(w, x.T, err, beta=l2)
            b.grad = err.sum(0)
        return float(loss)

    lbfgs.step(closure)  # type: ignore[no-untyped-call]
    return w.detach(), b.detach()


@dataclass(frozen=True)
class ProbeScore:
    """Test accuracy (%) of one probe, overall and per global class (NaN for classes outside the set)."""

    overall: float
    per_class: list[float]


def probe_score(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, num_classes: int,
                l2: float, max_iter: int, tolerance: float) -> ProbeScore:
    """Fit a probe over the classes present in (y_train, y_test) (global labels 0..num_classes-1) on
    features `x_train` [n, d] (any float dtype; the fit runs in float64) and score it on the test rows. No training rows, or a single class: nothing to fit; the probe then
    predicts the only class it knows (the accuracy a constant read-out gets)."""
    nan = math.nan
    if y_test.numel() == 0:
        return ProbeScore(nan, [nan] * num_classes)
    classes = torch.unique(torch.cat([y_train, y_test]))  # sorted: local label = position here
    local = torch.full((num_classes,), -1, dtype=torch.long, device=y_test.device)
    local[classes] = torch.arange(classes.numel(), device=y_test.device)
    train_classes = torch.unique(y_train)
    if train_classes.numel() <= 1:
        only = int(train_classes[0]) if train_classes.numel() else int(classes[0])
        pred = torch.full_like(y_test, only)
    else:
        # float64 throughout the fit (features come in float32), on whitened features.
        mean, proj, z = whiten(x_train)
        w, b = fit_softmax(z, local[y_train], int(classes.numel()), l2, max_iter, tolerance)
        del z
        pred = classes[torch.addmm(b, (x_test.to(torch.float64) - mean) @ proj, w).argmax(1)]
    hit = (pred == y_test).to(torch.float64)
    per_class = [nan] * num_classes
    for c in classes.tolist():
        mask = y_test == c
        if bool(mask.any()):  # a class with training images but no test image stays NaN
            per_class[c] = float(hit[mask].mean()) * 100.0
    return ProbeScore(float(hit.mean()) * 100.0, per_class)


def series_layer(layer: str) -> str:
    """A layer name as it appears in series names (lower case; anything but [a-z0-9_] becomes '_')."""
    return re.sub(r"[^a-z0-9_]", "_", layer.lower())


# -- the observer ---------------------------------------------------------------------------------
@ANALYSES.register(ProbesOptions)
class Probes(Observer):
    def __init__(self, opts: ProbesOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        self.labels = ClassLabels(ctx, name, ("train", "test"), ctx.eval_batch_size)
        known = model_layers(ctx)
        check_layers(opts.layers, known, f"analyses.{name}.layers")
        self.layers = list(opts.layers) or list(known)
        self.num_classes = self.labels.num_classes

    def declare_series(self) -> list[SeriesSpec]:
        cols = tuple(str(c) for c in range(self.num_classes))
        specs = []
        for layer in self.layers:
            s = series_layer(layer)
            specs += [
                SeriesSpec(f"probe_{s}", (3,), cadence="phase", columns=SETS,
                           description=f"linear-probe test accuracy (%) on frozen {layer} features: seen, all "
                                       f"and unseen classes (NaN = empty set)"),
                SeriesSpec(f"probe_{s}_class", (3, self.num_classes), cadence="phase", columns=cols,
                           description=f"per-class linear-probe test accuracy (%) on frozen {layer} features, "
                                       f"rows seen/all/unseen (NaN = class not in the set)"),
            ]
        return specs

    def set_pools(self, phase: int) -> list[tuple[Pool, Pool]]:
        """(train pool, test pool) of each class set of SETS after `phase` (fixed subsets when asked)."""
        seen = self.ctx.seen_tasks(phase)
        every = list(range(self.ctx.benchmark.num_tasks))
        unseen = [t for t in every if t not in seen]
        spec = [(seen, None), (every, None), (unseen, self.labels.classes_of(seen))]
        # Salts fixed per split: the same images for every seed and set (cf. the curves' subsets),
        # so the seen and all sets are the same pools once every task is trained.
        return [(fixed_subset(self.labels.pool("train", tasks, exclude), self.opts.train_samples, 7100),
                 fixed_subset(self.labels.pool("test", tasks, exclude), self.opts.test_samples, 7200))
                for tasks, exclude in spec]

    def on_phase_end(self, step: int, phase: int) -> dict[str, Any]:
        o = self.opts
        pools = self.set_pools(phase)
        # A set whose pools equal an earlier set's (seen = all after the last task) is fitted once.
        same = [next(j for j in range(i + 1) if _same_pools(pools[j], pools[i])) for i in range(len(pools))]
        train, train_rows = pooled_features(self.ctx, "train", [p[0] for p in pools], self.layers)
        test, test_rows = pooled_features(self.ctx, "test", [p[1] for p in pools], self.layers)
        rows: dict[str, Any] = {}
        for layer in self.layers:
            scores: list[ProbeScore] = []
            for i, (tr, te) in enumerate(pools):
                scores.append(scores[same[i]] if same[i] < i else
                              probe_score(train[layer][train_rows[i]], tr.label, test[layer][test_rows[i]], te.label,
                                          self.num_classes, o.l2, o.max_iter, o.tolerance))
            s = series_layer(layer)
            rows[f"probe_{s}"] = [sc.overall for sc in scores]
            rows[f"probe_{s}_class"] = [sc.per_class for sc in scores]
        return rows


def _same_pools(a: tuple[Pool, Pool], b: tuple[Pool, Pool]) -> bool:
    return all(len(p) == len(q) and torch.equal(p.task, q.task) and torch.equal(p.index, q.index)
               for p, q in zip(a, b))
