"""What the Rich views and the TUI show about runs, computed once: phase labels, progress and ETA,
metric rows beside the reference, seed-group mean ± std, resume eligibility, number formatting.

Plain data and strings only: the views (cltui/views.py, cltui/live.py, cltui/tui/*) add colour and
layout and never recompute any of this. Functions take plain values, with `*_of(rec)` helpers for a
store RunRecord (most also take the index's RunSummary). Must not import rich, textual, typer or torch,
nor numpy at import: the runs listings (`cltui runs`, the TUI's first screen) use it without numpy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.checkpoint import checkpoint_files, checkpoint_step
from engine.run_index import RunSummary

if TYPE_CHECKING:
    import numpy as np

    from engine.store_read import RunRecord

NAN = math.nan
METRIC_LABELS = {"during": "during", "final": "final", "average": "average", "bwt": "BWT", "fwt": "FWT",
                 "forgetting": "forgetting"}
"""The metrics shown, in order, with their display names."""
STD_LABEL = "sample std (n−1)"
"""Which spread group statistics report: the sample standard deviation, ddof = 1."""
RATE_WINDOW = 20


# -- numbers ----------------------------------------------------------------------------------------
def fmt(v: float | None, digits: int = 2) -> str:
    """A number with `digits` decimals; '—' for a missing one (None or NaN)."""
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def fmt_compact(v: float | None, digits: int = 4) -> str:
    """A loss or other unbounded value: `digits` decimals while it is small, else 3 significant figures
    in engineering-free e-notation (24030220.0 → '2.40e+07'), so a diverging loss stays one short word."""
    if v is None or math.isnan(v):
        return "—"
    if math.isinf(v) or abs(v) >= 1e4 or (0 < abs(v) < 10 ** -digits):
        return f"{v:.2e}"
    return f"{v:.{digits}f}"


def fmt_seconds(s: float) -> str:
    """12s, 3m05s, 1h02m; '—' for NaN."""
    if math.isnan(s):
        return "—"
    n = round(s)
    return f"{n // 3600}h{n % 3600 // 60:02d}m" if n >= 3600 else f"{n // 60}m{n % 60:02d}s" if n >= 60 else f"{n}s"


def metric_cell(v: float, spread: float | None = None) -> str:
    """'97.12' or '97.12 ± 0.35' (no ± part when the spread is missing)."""
    return fmt(v) + (f" ± {fmt(spread)}" if spread is not None and not math.isnan(spread) else "")


# -- phases and progress ----------------------------------------------------------------------------
def phase_label(task_names: Sequence[str], tasks: Sequence[int]) -> str:
    """The tasks a phase trains, by name ('4/5', '0/1+2/3'); 'all' for three or more (multitask)."""
    return "+".join(task_names[j] for j in tasks) if len(tasks) < 3 else "all"


def phase_length_label(training: Any) -> str:
    """How long each phase trains, as a config says it: '3 epochs/task', '1000 steps/task', plus the
    stop rules that may end it earlier ('≤ 500 steps', 'until train acc ≥ 99%', 'early stop 5')."""
    tr = training
    parts = [f"{tr.epochs_per_task} epochs/task" if tr.epochs_per_task > 0 else f"{tr.steps_per_task} steps/task"]
    if tr.max_steps_per_phase > 0:
        parts.append(f"≤ {tr.max_steps_per_phase} steps")
    if tr.stop_train_acc > 0:
        parts.append(f"until train acc ≥ {tr.stop_train_acc:g}%")
    if tr.early_stop_patience > 0:
        parts.append(f"early stop {tr.early_stop_patience}")
    return " · ".join(parts)


def phase_title(phase: int, n_phases: int) -> str:
    """'task 3 of 5' for phase index 2 of 5 (not '3/5': task names are often '4/5' themselves)."""
    return f"task {phase + 1} of {n_phases}"


def recent_rate(steps_per_sec: np.ndarray, window: int = RATE_WINDOW) -> float:
    """Steps per second over the last `window` logged intervals: the harmonic mean (total steps over
    total time, the intervals being equal in steps), so one slow interval (a curve evaluation) does
    not swing the ETA by minutes. NaN when nothing usable was logged."""
    import numpy as np

    r = np.asarray(steps_per_sec, dtype=float)[-window:]
    r = r[~np.isnan(r) & (r > 0)]
    return float(r.size / np.sum(1.0 / r)) if r.size else NAN


@dataclass(frozen=True)
class Progress:
    """Where a run is: overall and within its current phase, with the step rate and time left."""

    done: int
    total: int
    phase: int
    n_phases: int
    in_phase: int
    phase_total: int
    phase_label: str
    rate: float
    eta: float

    @property
    def title(self) -> str:
        return phase_title(self.phase, self.n_phases)

    @property
    def heading(self) -> str:
        """'task 3 of 5 · 4/5': which phase, and the tasks it trains."""
        return f"{self.title} · {self.phase_label}"

    def run_line(self, unit: str = "") -> str:
        """'250/500 · 250 it/s · ETA 1s' (`unit`, e.g. ' steps', follows the counts)."""
        rate = "" if math.isnan(self.rate) else f" · {self.rate:.0f} it/s"
        eta = "" if math.isnan(self.eta) else f" · ETA {fmt_seconds(self.eta)}"
        return f"{self.done}/{self.total}{unit}{rate}{eta}"

    @property
    def phase_line(self) -> str:
        """'4/5 · step 50 of 100': the phase's tasks and its steps."""
        return f"{self.phase_label} · step {self.in_phase} of {self.phase_total}"


def progress(done: int, total: int, phase_steps: Sequence[int], phase_tasks: Sequence[Sequence[int]],
             task_names: Sequence[str], steps_per_sec: np.ndarray, running: bool) -> Progress:
    """Progress at global step `done`. The phase is the one step `done + 1` belongs to (a finished
    run stays in its last); the ETA is (total − done) / recent_rate, only while running."""
    import numpy as np

    starts = np.cumsum([0, *phase_steps])
    phase = int(np.clip(np.searchsorted(starts, done, side="right") - 1, 0, len(phase_steps) - 1))
    rate = recent_rate(steps_per_sec) if len(steps_per_sec) else NAN
    eta = (total - done) / rate if running and rate > 0 and not math.isnan(rate) else NAN
    return Progress(done, total, phase, len(phase_steps), int(done - starts[phase]), int(phase_steps[phase]),
                    phase_label(task_names, phase_tasks[phase]), rate, eta)


def progress_of(rec: RunRecord) -> Progress:
    import numpy as np

    rates = rec.scalar("steps_per_sec") if rec.scalars.shape[0] else np.zeros(0)
    return progress(rec.progress[0], rec.progress[1], rec.phase_steps, rec.phase_tasks, rec.task_names, rates,
                    rec.live_status == "running")


# -- metrics ----------------------------------------------------------------------------------------
def live_metrics(acc: np.ndarray, acc_initial: np.ndarray) -> dict[str, float]:
    """Metrics of the matrix so far (a run's stored metrics are only written at its end); {} before
    the first phase is evaluated. Forward transfer needs the initial row, so it is NaN without it."""
    import numpy as np

    from engine.metrics import summary

    if not (~np.all(np.isnan(acc), axis=1)).any():
        return {}
    init = None if np.all(np.isnan(acc_initial)) else acc_initial
    return summary(acc, init)


def metrics_of(rec: RunRecord | RunSummary) -> dict[str, float]:
    """The metrics to show for a run: of its matrix so far, else the stored ones (a RunSummary holds
    them already, computed so when its record was read)."""
    if isinstance(rec, RunSummary):
        return rec.metrics
    return live_metrics(rec.acc, rec.acc_initial) or rec.metrics


@dataclass(frozen=True)
class MetricRow:
    """One line of a metrics table: our value (± spread), and the published one where there is one."""

    key: str
    label: str
    value: float
    spread: float | None
    reference: float | None

    @property
    def cell(self) -> str:
        return metric_cell(self.value, self.spread)

    @property
    def reference_cell(self) -> str:
        return fmt(self.reference) if self.reference is not None else ""


def has_reference(ref: Mapping[str, Any]) -> bool:
    return ref.get("during") is not None or ref.get("final") is not None


def metric_rows(metrics: Mapping[str, float], ref: Mapping[str, Any] | None = None,
                spread: Mapping[str, float] | None = None) -> list[MetricRow]:
    """Rows in METRIC_LABELS order. Presets publish only 'during' and 'final'; a preset whose final
    number is not meaningful (e.g. from-scratch: the last network on every task) says so in the label."""
    ref = ref or {}
    rows = []
    for key, label in METRIC_LABELS.items():
        if key == "final" and not ref.get("final_meaningful", True):
            label = "final (not meaningful)"
        r = ref.get(key) if key in ("during", "final") else None
        rows.append(MetricRow(key, label, float(metrics.get(key, NAN)),
                              None if spread is None else spread.get(key), None if r is None else float(r)))
    return rows


def reference_of(rec: RunRecord) -> dict[str, Any]:
    """The preset's published result as stored with the run's config ({} when it has none)."""
    return dict(rec.config.get("reference", {}) or {})


# -- seed groups --------------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean and sample std (ddof = 1, STD_LABEL) of the non-NaN values, and how many there were.
    One value has a mean but no spread (std NaN); none has neither."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    mean = float(v.mean()) if v.size else NAN
    std = float(v.std(ddof=1)) if v.size > 1 else NAN
    return mean, std, int(v.size)


@dataclass(frozen=True)
class GroupStats:
    """A seed group (runs sharing RunRecord.group): who is in it and its metrics as mean ± sample std."""

    group: str
    runs: list[str]
    statuses: dict[str, int]
    benchmark: str
    method: str
    mean: dict[str, float]
    std: dict[str, float]

    @property
    def status_text(self) -> str:
        """'2 finished, 1 running'."""
        return ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))


def group_stats(records: Sequence[RunRecord | RunSummary]) -> list[GroupStats]:
    """Every group among `records` (sorted by id) with each metric's mean ± sample std over its runs,
    using each run's metrics so far (metrics_of)."""
    groups: dict[str, list[RunRecord | RunSummary]] = {}
    for r in records:
        if r.group:
            groups.setdefault(r.group, []).append(r)
    out = []
    for g, recs in sorted(groups.items()):
        recs = sorted(recs, key=lambda r: (r.seed, r.run_id))
        ms = [metrics_of(r) for r in recs]
        mean, std = {}, {}
        for k in METRIC_LABELS:
            mean[k], std[k], _ = mean_std([m.get(k, NAN) for m in ms])
        out.append(GroupStats(g, [r.run_id for r in recs], dict(Counter(r.live_status for r in recs)),
                              recs[0].benchmark, recs[0].method, mean, std))
    return out


# -- resuming and errors -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResumeInfo:
    """Whether a run can be resumed, and a short phrase saying so or why not."""

    possible: bool
    text: str


def resume_info(status: str, checkpoint_step: int | None, has_checkpoint: bool) -> ResumeInfo:
    """From a run's live status and its last checkpoint: a resume restarts at the checkpoint's step,
    not where the run stopped (the steps in between are trained again, to the same result)."""
    if status == "running":
        return ResumeInfo(False, "still running")
    if status == "finished":
        return ResumeInfo(False, "already finished; nothing to resume")
    if status == "diverged":
        return ResumeInfo(False, "diverged; resuming would diverge again: change the config and start it again")
    if checkpoint_step is not None:
        return ResumeInfo(True, f"resumes from step {checkpoint_step} (last checkpoint)")
    if has_checkpoint:
        return ResumeInfo(True, "resumes from its last checkpoint")
    return ResumeInfo(False, "no checkpoint was written; start it again")


def resume_of(rec: RunRecord | RunSummary) -> ResumeInfo:
    run_dir = Path(rec.run_dir)
    return resume_info(rec.live_status, checkpoint_step(run_dir), bool(checkpoint_files(run_dir)))


def stop_line(run_id: str, step: int, checkpoint_step: int | None, res: ResumeInfo, killed: bool = False) -> str:
    """One line on an interrupted run: where it stopped (`step`), its last checkpoint, how to go on.

    A stopped run checkpoints at the step it stops; a `killed` one (no time to checkpoint) says what
    it lost: every step since its last checkpoint. It is known to have reached its last logged step
    (`step`, the record's progress), perhaps a few more."""
    go_on = f"resume with: cltui resume {run_id}" if res.possible else res.text
    n, m = step, checkpoint_step
    if not killed:
        return f"stopped at step {n}; " + (f"checkpoint at step {m}; " if m is not None else "") + go_on
    if m is not None and m >= n:
        return f"killed after step {n}, with its checkpoint at step {m}: nothing lost; {go_on}"
    if m is not None:
        return f"killed after step {n}: lost the steps since its checkpoint at step {m}; {go_on}"
    return f"killed after step {n}: lost " + ("the steps since its last checkpoint" if res.possible else "every step") \
        + f"; {go_on}"


def stop_text(rec: RunRecord, killed: bool = False) -> str:
    """stop_line for a stored run."""
    return stop_line(rec.run_id, rec.progress[0], checkpoint_step(Path(rec.run_dir)), resume_of(rec), killed)


def divergence_text(div: Mapping[str, float]) -> str:
    """'diverged at step 7: loss = nan; last finite loss 2.3 at step 6' from a record's `divergence`."""
    text = f"diverged at step {int(div['step'])}: loss = {div['loss']:.4g}"
    if div.get("last_finite_step", 0) > 0:
        return text + f"; last finite loss {div['last_finite_loss']:.4g} at step {int(div['last_finite_step'])}"
    return text + "; no finite loss before it"


def error_summary(error: str) -> str:
    """The one-line message of a run's recorded error (`Kind: message`, then the traceback)."""
    lines = error.strip().splitlines()
    return lines[0] if lines else "(no error text)"
