"""What each figure shows, read out of a RunRecord into plain numpy dataclasses (no drawing here).

The series read are the ones of the series contract of the analyses (README "Figures"): `curves`,
`sparsity`/`dormant`, `class_prob`, `weight_update`, `grad_layer`/`grad_units_<param>`,
`hist_<param>`(+`_range`), `probe_<layer>`(+`_class`), `latent_<layer>`/`latent_labels`,
`plasticity`, `epoch_test_acc`, the accuracy matrix and `phase_steps`.

Phase-cadence rows are matched to phases by their step (the global step at which the phase ended),
so a run still training shows the phases it finished. Each loader raises `NoFigureData` with one line
that says which analysis to turn on when the run has nothing to show.

The dataclasses carry an optional `std` of the same shape as their values: one run leaves it None;
a seed group's mean ± std figure fills it. Torch-free and matplotlib-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.errors import CltuiError
from engine.presentation import phase_label
from engine.series import CURVES
from engine.store_read import RunRecord, Series

PROBE_SETS = ("seen", "all", "unseen")
"""The column order of `probe_<layer>` (and the rows of `probe_<layer>_class`)."""
MAX_SHOWN_PHASES = 6
"""Histograms and latent maps show at most this many phase ends (evenly spaced, first and last kept)."""


class NoFigureData(CltuiError):
    """A figure was asked of a run that has no data for it (the line says what to turn on)."""


@dataclass(frozen=True)
class Lines:
    """Curves over training steps, one per label (a column of `y`); NaN = no value at that row."""

    title: str
    ylabel: str
    x: np.ndarray
    """global step of each row [N]"""
    y: np.ndarray
    """[N, K]"""
    labels: list[str]
    boundaries: list[int] = field(default_factory=list)
    """global steps at which a phase (task) ended, drawn as vertical lines"""
    logy: bool = False
    ylim: tuple[float, float] | None = None
    std: np.ndarray | None = None
    markers: bool = False
    """a marker on every point (few points: one per phase end)"""


@dataclass(frozen=True)
class Heat:
    """A labelled matrix drawn as a heat map (NaN cells are left blank)."""

    title: str
    values: np.ndarray
    """[R, C]"""
    rows: list[str]
    cols: list[str]
    row_label: str = ""
    col_label: str = ""
    vmin: float | None = None
    vmax: float | None = None
    unit: str = ""
    """what a value is (colour-bar label)"""
    std: np.ndarray | None = None


@dataclass(frozen=True)
class Histograms:
    """One parameter's histograms at several phase ends (bins equal-width in [lo, hi] per row)."""

    param: str
    counts: np.ndarray
    """[S, bins]"""
    ranges: np.ndarray
    """[S, 2]: lo, hi of each row"""
    phases: list[str]


@dataclass(frozen=True)
class Latent:
    """One layer's 2-D maps at several phase ends, with the class of every point."""

    layer: str
    points: np.ndarray
    """[S, n, 2]"""
    labels: np.ndarray
    """[S, n] class labels"""
    phases: list[str]


@dataclass(frozen=True)
class Stages:
    """Per phase (stage): the best test accuracy reached during it, optionally beside a baseline run's."""

    stage: np.ndarray
    """1-based stage numbers [S]"""
    best: np.ndarray
    """max of the run's per-epoch test accuracy within each stage [S]"""
    baseline: np.ndarray | None = None
    baseline_id: str = ""
    run_id: str = ""
    best_std: np.ndarray | None = None


# -- phases --------------------------------------------------------------------------------------
def phase_ends(rec: RunRecord) -> np.ndarray:
    """Global step at which each phase ends: the recorded ones (`phase_steps` rows, written when a
    phase ended, possibly early by a stop rule), then the planned lengths for phases not ended yet."""
    planned = np.cumsum(rec.phase_steps).astype(np.int64)
    done = rec.series.get("phase_steps")
    if done is None or done.steps.shape[0] == 0:
        return planned
    ends = done.steps.astype(np.int64)[: len(planned)]
    rest = ends[-1] + np.cumsum(rec.phase_steps[ends.shape[0]:]).astype(np.int64)
    return np.concatenate([ends, rest])


def boundaries(rec: RunRecord) -> list[int]:
    """Task boundaries to draw: the ends of the phases that ended, except the run's last phase."""
    done = rec.series.get("phase_steps")
    n_done = done.steps.shape[0] if done is not None else int(np.sum(~np.isnan(rec.acc).all(axis=1)))
    ends = phase_ends(rec)[: min(n_done, len(rec.phase_steps) - 1)]
    return [int(e) for e in ends]


def phase_names(rec: RunRecord) -> list[str]:
    """One short label per phase: its number and the tasks it trains ('1: 0/1')."""
    return [f"{k + 1}: {phase_label(rec.task_names, tasks)}" for k, tasks in enumerate(rec.phase_tasks)]


def phase_of_rows(rec: RunRecord, s: Series) -> np.ndarray:
    """The phase index of each row of a phase-cadence series (rows are written at the phase's last step)."""
    ends = phase_ends(rec)
    return np.minimum(np.searchsorted(ends, s.steps, side="left"), len(ends) - 1)


def shown_rows(n: int, most: int = MAX_SHOWN_PHASES) -> list[int]:
    """At most `most` row indices out of n, evenly spaced, keeping the first and the last."""
    if n <= most:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, most)})


# -- looking series up ---------------------------------------------------------------------------
def declared_figures(rec: RunRecord) -> set[str]:
    """The figures whose series `rec` declares (their rows may not be written yet)."""
    names = set(rec.series_specs)

    def pre(p: str) -> bool:
        return any(n.startswith(p) for n in names)

    found = {"matrix"}
    checks = {"curves": CURVES in names, "sparsity": bool({"sparsity", "dormant"} & names),
              "classprobs": "class_prob" in names, "updates": "weight_update" in names,
              "probes": pre("probe_"), "gradients": "grad_layer" in names or pre("grad_units_"),
              "histograms": pre("hist_"), "latent": pre("latent_"), "plasticity": "plasticity" in names,
              "stages": "epoch_test_acc" in names}
    return found | {k for k, v in checks.items() if v}


def _need(rec: RunRecord, names: Sequence[str], what: str, turn_on: str) -> list[Series]:
    """The named series that have rows; NoFigureData naming the analysis to turn on when none does."""
    have = [rec.series[n] for n in names if n in rec.series and rec.series[n].steps.shape[0] > 0]
    if have:
        return have
    if any(n in rec.series_specs for n in names):
        raise NoFigureData(f"run {rec.run_id} has no {what} rows yet (they are written as the run goes on); "
                           "try again later")
    hint = turn_on if " " in turn_on and not turn_on.startswith("[") else f"turn on {turn_on} and run it again"
    raise NoFigureData(f"run {rec.run_id} has no {what} data: {hint}")


def _prefixed(rec: RunRecord, prefix: str, suffix: str = "") -> list[str]:
    """Declared series named prefix + X + suffix, in declaration order (which is layer order)."""
    return [n for n in rec.series_specs if n.startswith(prefix) and n.endswith(suffix) and len(n) > len(prefix)]


def _columns(s: Series, default: str = "") -> list[str]:
    cols = s.spec.columns
    k = s.spec.shape[-1] if s.spec.shape else 1
    return list(cols) if cols is not None else [f"{default}{i}" for i in range(k)]


def _col2(v: np.ndarray) -> np.ndarray:
    return v.astype(float).reshape(v.shape[0], -1)


# -- one loader per figure -----------------------------------------------------------------------
def matrix_data(rec: RunRecord) -> Heat:
    """acc[i, j]: test accuracy (%) on task j after phase i."""
    if rec.acc.size == 0 or np.isnan(rec.acc).all():
        raise NoFigureData(f"run {rec.run_id} has no accuracy matrix yet: no phase has finished")
    return Heat(f"accuracy (%) · {rec.run_id}", rec.acc.astype(float), [f"after {p}" for p in phase_names(rec)],
                list(rec.task_names), row_label="phase", col_label="task tested", vmin=0.0, vmax=100.0, unit="%")


def curves_data(rec: RunRecord) -> Lines:
    """Forgetting curves: every seen task's accuracy on its fixed test subset vs step."""
    (s,) = _need(rec, [CURVES], "forgetting-curve", "[analyses.curves] enabled = true")
    return Lines(f"forgetting curves · {rec.run_id}", "test accuracy (%)", s.steps, _col2(s.values),
                 list(rec.task_names), boundaries(rec), ylim=(0.0, 100.0))


def sparsity_data(rec: RunRecord) -> list[Lines]:
    """Population sparsity and dormant fraction per layer (+ 'all') vs step."""
    out = []
    for s in _need(rec, ["sparsity", "dormant"], "sparsity", "[analyses.sparsity] enabled = true"):
        what = "population sparsity (fraction of zero activations)" if s.spec.name == "sparsity" \
            else "dormant units (fraction)"
        out.append(Lines(what, "fraction", s.steps, _col2(s.values), _columns(s, "layer "), boundaries(rec),
                         ylim=(0.0, 1.0)))
    return out


def class_probs_data(rec: RunRecord) -> Lines:
    """Mean softmax probability of the true class on each class's fixed test subset vs step."""
    (s,) = _need(rec, ["class_prob"], "class-probability", "[analyses.class_probs] enabled = true")
    return Lines(f"predicted probability of the true class · {rec.run_id}", "mean p(true class)", s.steps,
                 _col2(s.values), _columns(s, "class "), boundaries(rec), ylim=(0.0, 1.0))


def updates_data(rec: RunRecord) -> Lines:
    """Relative update ‖W_t − W_{t−1}‖/‖W_{t−1}‖ of every parameter vs step (log scale)."""
    (s,) = _need(rec, ["weight_update"], "weight-update", "[analyses.weight_updates] enabled = true")
    y = _col2(s.values)
    y = np.where(y > 0, y, np.nan)  # log axis: a zero update (frozen parameter) has no point
    return Lines(f"relative weight update ‖ΔW‖/‖W‖ · {rec.run_id}", "relative update", s.steps, y,
                 _columns(s, "param "), boundaries(rec), logy=True)


@dataclass(frozen=True)
class Gradients:
    """Σ|∂L/∂W| per phase: per parameter tensor, and per output unit of each weight matrix."""

    per_param: Heat | None
    """rows = parameters, cols = phases"""
    per_unit: list[Heat]
    """one per weight matrix: rows = units, cols = phases"""


def gradients_data(rec: RunRecord) -> Gradients:
    names = ["grad_layer", *_prefixed(rec, "grad_units_")]
    found = _need(rec, names, "gradient", "[analyses.gradients] enabled = true")
    phases = phase_names(rec)
    per_param, per_unit = None, []
    for s in found:
        cols = [phases[k] for k in phase_of_rows(rec, s)]
        v = _col2(s.values).T  # [params or units, phases]
        if s.spec.name == "grad_layer":
            per_param = Heat("Σ|∂L/∂W| per parameter and phase", v, _columns(s, "param "), cols,
                             row_label="parameter", col_label="phase", unit="Σ|∂L/∂W|")
        else:
            param = s.spec.name.removeprefix("grad_units_")
            per_unit.append(Heat(param, v, [str(i) for i in range(v.shape[0])], cols, row_label="unit",
                                 col_label="phase", unit="Σ|∂L/∂W| of incoming weights"))
    return Gradients(per_param, per_unit)


def histograms_data(rec: RunRecord) -> list[Histograms]:
    """Each parameter's histogram at (up to MAX_SHOWN_PHASES of) the phase ends."""
    names = [n for n in _prefixed(rec, "hist_") if not n.endswith("_range") and f"{n}_range" in rec.series_specs]
    found = _need(rec, names, "histogram", "[analyses.histograms] enabled = true")
    phases = phase_names(rec)
    out = []
    for s in found:
        rng = rec.series.get(f"{s.spec.name}_range")
        if rng is None:
            continue
        n = min(s.steps.shape[0], rng.steps.shape[0])
        rows = shown_rows(n)
        ph = phase_of_rows(rec, s)
        out.append(Histograms(s.spec.name.removeprefix("hist_"), s.values[rows].astype(float),
                              rng.values[rows].astype(float), [phases[ph[r]] for r in rows]))
    return out


@dataclass(frozen=True)
class Probes:
    """One layer's linear probes: accuracy per phase on seen/all/unseen, and per class for each set."""

    layer: str
    overall: Heat
    per_class: list[Heat]
    """one per set of PROBE_SETS (rows = phases, cols = classes); empty when not recorded"""


def probes_data(rec: RunRecord) -> list[Probes]:
    layers = [n for n in _prefixed(rec, "probe_") if not n.endswith("_class")]
    found = _need(rec, layers, "linear-probe", "[analyses.probes] enabled = true")
    phases = phase_names(rec)
    out = []
    for s in found:
        layer = s.spec.name.removeprefix("probe_")
        rows = [f"after {phases[k]}" for k in phase_of_rows(rec, s)]
        overall = Heat(f"probe accuracy (%) · {layer}", _col2(s.values), rows, _columns(s) or list(PROBE_SETS),
                       row_label="phase", col_label="classes probed", vmin=0.0, vmax=100.0, unit="%")
        per_class = []
        pc = rec.series.get(f"{s.spec.name}_class")
        if pc is not None and pc.steps.shape[0]:
            pc_rows = [f"after {phases[k]}" for k in phase_of_rows(rec, pc)]
            for i, name in enumerate(PROBE_SETS[: pc.values.shape[1]]):
                per_class.append(Heat(f"{name} classes, per class", pc.values[:, i, :].astype(float), pc_rows,
                                      _columns(pc, ""), row_label="phase", col_label="class", vmin=0.0,
                                      vmax=100.0, unit="%"))
        out.append(Probes(layer, overall, per_class))
    return out


def latent_data(rec: RunRecord) -> list[Latent]:
    """Each layer's 2-D map at (up to MAX_SHOWN_PHASES of) the phase ends, with the points' classes."""
    layers = [n for n in _prefixed(rec, "latent_") if n != "latent_labels"]
    found = _need(rec, layers, "latent-map", "[analyses.latent] enabled = true")
    labels = rec.series.get("latent_labels")
    phases = phase_names(rec)
    out = []
    for s in found:
        n = s.steps.shape[0] if labels is None else min(s.steps.shape[0], labels.steps.shape[0])
        rows = shown_rows(n)
        lab = labels.values[rows].astype(int) if labels is not None else np.zeros(s.values[rows].shape[:2], int)
        ph = phase_of_rows(rec, s)
        out.append(Latent(s.spec.name.removeprefix("latent_"), s.values[rows].astype(float), lab,
                          [phases[ph[r]] for r in rows]))
    return out


def plasticity_data(rec: RunRecord) -> list[Lines]:
    """The §10.4 plasticity metrics per phase end, one panel each (x = the phase's end step)."""
    (s,) = _need(rec, ["plasticity"], "plasticity", "[analyses.plasticity] enabled = true")
    v = _col2(s.values)
    out = [Lines(name.replace("_", " "), name.replace("_", " "), s.steps, v[:, [k]], [name], boundaries(rec),
                 markers=True) for k, name in enumerate(_columns(s, "metric "))]
    per_layer = rec.series.get("plasticity_dormant")
    if per_layer is not None and per_layer.steps.shape[0]:
        out.append(Lines("dormant units per layer", "dormant fraction", per_layer.steps, _col2(per_layer.values),
                         _columns(per_layer, "layer "), boundaries(rec), markers=True))
    return out


def stage_best(rec: RunRecord) -> np.ndarray:
    """Max of `epoch_test_acc` within each phase (stage), NaN for stages without a row."""
    (s,) = _need(rec, ["epoch_test_acc"], "per-epoch test accuracy (series epoch_test_acc)",
                 "it is recorded by benchmarks with test accuracy per epoch (incremental CIFAR-100, the lop/ presets)")
    ph = phase_of_rows(rec, s)
    v = s.values.astype(float).reshape(-1)
    best = np.full(len(rec.phase_steps), np.nan)
    for k in range(best.shape[0]):
        sel = v[ph == k]
        sel = sel[~np.isnan(sel)]
        if sel.size:
            best[k] = sel.max()
    # Trailing stages that have not started yet are not drawn.
    last = int(np.max(np.nonzero(~np.isnan(best))[0])) + 1 if (~np.isnan(best)).any() else 0
    return best[:last]


def stages_data(rec: RunRecord, baseline: RunRecord | None = None) -> Stages:
    """Accuracy per stage (LoP §10.4: the max over the stage), and the baseline's when given."""
    best = stage_best(rec)
    if baseline is None:
        return Stages(np.arange(1, best.shape[0] + 1), best, run_id=rec.run_id)
    try:
        base = stage_best(baseline)
    except NoFigureData as e:
        raise NoFigureData(f"baseline {e}") from None
    base = np.concatenate([base, np.full(max(0, best.shape[0] - base.shape[0]), np.nan)])[: best.shape[0]]
    return Stages(np.arange(1, best.shape[0] + 1), best, base, baseline.run_id, rec.run_id)
