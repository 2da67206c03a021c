"""Latent map: a 2-D picture of one hidden layer's representation at each phase end.

A fixed subset of n test images (all tasks' test images pooled in task order, cut by a permutation
that depends only on the pool's size, so the same images for every seed and phase) is passed through
the model in eval mode; the chosen layer's features are mapped to 2-D by

    pca   (default) the projection on the two leading principal components, computed in float64
          from the eigendecomposition of the features' covariance. Sign convention: each component
          is flipped so that its largest-magnitude loading is positive (the first such, on ties), so
          the map never mirrors between runs or phases for no reason. Deterministic.
    tsne  scikit-learn's t-SNE (PCA initialisation, a fixed random_state), where scikit-learn is
          installed; asking for it elsewhere is refused when the config is validated.

Series (the session's series contract): `latent_<layer>` (n, 2) ("x", "y") and `latent_labels`
(n,) int64: the global class of each image (`Benchmark.class_map`), the same every row. Each phase's
map has its own basis (PCA's axes are refitted). Reads the model's own features: a method's masks
or generated weights are not applied. Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from engine.analyses.base import Observer, ObserverContext
from engine.analyses.frozen import ClassLabels, check_layers, fixed_subset, model_layers, pooled_features
from engine.analyses.probes import series_layer
from engine.registry import ANALYSES
from engine.schema import opt
from engine.series import SeriesSpec

TSNE_SEED = 0
"""t-SNE's random_state: fixed, so a map is a function of the features alone."""


@dataclass(frozen=True)
class LatentOptions:
    """A 2-D map (PCA or t-SNE) of one hidden layer on a fixed subset of test images, at each phase end."""

    enabled: bool = opt(False, "record a 2-D map of a hidden layer at each phase end")
    layer: str = opt("", "layer of model.features() to map, e.g. \"h2\" (empty = the last one)")
    samples: int = opt(1000, "number of test images in the map (a fixed subset of all tasks' test images)")
    method: Literal["pca", "tsne"] = opt("pca", "'pca' = two leading principal components; 'tsne' = scikit-learn's t-SNE")
    perplexity: float = opt(30.0, "t-SNE perplexity (method = 'tsne' only; capped below the number of images)")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "analyses.latent." in front.
        if self.samples < 2:
            raise ValueError(f"samples = {self.samples!r} must be >= 2")
        if self.perplexity <= 0:
            raise ValueError(f"perplexity = {self.perplexity!r} must be > 0")
        if self.method == "tsne" and importlib.util.find_spec("sklearn") is None:
            raise ValueError("method = 'tsne' needs scikit-learn, which is not installed: "
                             "pip install scikit-learn, or use method = 'pca'")


def pca_2d(x: Tensor) -> Tensor:
    """[n, 2] float64: rows of `x` [n, d] projected on their two leading principal components (the
    sign convention of the module doc); a missing component (d < 2 or rank < 2) gives zeros."""
    x = x.to(torch.float64)
    xc = x - x.mean(0)
    cov = xc.T @ xc / max(1, x.shape[0] - 1)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    # Variance below the usual rank tolerance is rounding noise, not a direction of the cloud.
    tol = float(values[-1].clamp(min=0)) * x.shape[1] * torch.finfo(torch.float64).eps if x.shape[1] else 0.0
    out = torch.zeros(x.shape[0], 2, dtype=torch.float64, device=x.device)
    for k in range(min(2, x.shape[1])):
        if values[-1 - k] <= tol:
            break
        v = vectors[:, -1 - k]
        lead = int(v.abs().argmax())  # the first of equally large loadings
        out[:, k] = xc @ (v if v[lead] > 0 else -v)
    return out


def tsne_2d(x: Tensor, perplexity: float) -> Tensor:
    """[n, 2] float64 t-SNE map of `x` by scikit-learn (imported here only: an optional dependency)."""
    from sklearn.manifold import TSNE  # type: ignore[import-not-found, unused-ignore]

    n = x.shape[0]
    tsne = TSNE(n_components=2, perplexity=min(perplexity, max(1.0, (n - 1) / 3)), init="pca",
                random_state=TSNE_SEED)
    return torch.as_tensor(tsne.fit_transform(x.detach().cpu().double().numpy()), dtype=torch.float64)


@ANALYSES.register(LatentOptions)
class Latent(Observer):
    def __init__(self, opts: LatentOptions, ctx: ObserverContext, name: str) -> None:
        super().__init__(opts, ctx, name)
        labels = ClassLabels(ctx, name, ("test",), ctx.eval_batch_size)
        known = model_layers(ctx)
        if opts.layer:
            check_layers([opts.layer], known, f"analyses.{name}.layer")
        self.layer = opts.layer or list(known)[-1]
        every = list(range(ctx.benchmark.num_tasks))
        self.pool = fixed_subset(labels.pool("test", every), opts.samples, 7300)
        self.n = len(self.pool)

    def declare_series(self) -> list[SeriesSpec]:
        return [
            SeriesSpec(f"latent_{series_layer(self.layer)}", (self.n, 2), cadence="phase", columns=("x", "y"),
                       description=f"2-D {self.opts.method.upper()} map of frozen {self.layer} features of "
                                   f"{self.n} fixed test images"),
            SeriesSpec("latent_labels", (self.n,), dtype="i8", cadence="phase",
                       description="global class of each image of the latent map (the same every row)"),
        ]

    def on_phase_end(self, step: int, phase: int) -> dict[str, Any]:
        feats, (rows,) = pooled_features(self.ctx, "test", [self.pool], [self.layer])
        x = feats[self.layer][rows]
        xy = pca_2d(x) if self.opts.method == "pca" else tsne_2d(x, self.opts.perplexity)
        return {f"latent_{series_layer(self.layer)}": xy.cpu().numpy(),
                "latent_labels": self.pool.label.cpu().numpy()}
