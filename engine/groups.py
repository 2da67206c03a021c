"""Groups as first-class results: the record of a sweep (or seed group) and the numbers read from it.

A sweep's record lives beside the runs, in `<runs>/groups/<group id>/` (no `run.h5` there, so the run
store never lists it as a run):

    group.json           written by the driver when the sweep starts, rewritten when it ends:
                         {"format": 1, "group", "kind": "sweep", "preset", "overrides", "axes": {key: [values]},
                          "seeds": [...], "executor", "created", "ended", "status", "slots": [
                          {"key", "point": {key: value}, "seed", "seed_group"}]}
    members/<key>.json   one per started run, written by whoever started it (the driver for the local
                         executor, the Ray worker for the Ray executor): {"run_id", "attempts"}

A slot is one planned run (a grid point × a seed); its `key` (member_key) is fixed by the run's overrides
and seed, so a retried Ray task finds the run its dead predecessor started and resumes it. A seed group
started by `cltui run --seeds N` has no group.json: `load_group` builds the same view from the runs whose
record carries that group id (axes: none).

Statistics are per grid point, over its seeds: mean ± SAMPLE std (ddof 1, engine.presentation.STD_LABEL)
with n. `tidy_rows` gives one row per run (axes + metrics) for export.

Torch-free (h5py, numpy, json); h5py and numpy load when a group's runs are read, not at import
(`cltui runs` lists the sweeps without them).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import RunStoreError
from engine.presentation import METRIC_LABELS, NAN, mean_std, metrics_of
from engine.runlock import lock_held
from engine.store_dir import RunStore

if TYPE_CHECKING:
    from engine.store_read import RunRecord

GROUPS_DIR = "groups"
GROUP_FILE = "group.json"
FORMAT = 1


def member_key(overrides: Sequence[str], seed: int) -> str:
    """A slot's file name: 16 hex digits of blake2b over the run's sorted overrides and its seed (unique
    within a sweep, where overrides × seed are; 4 digits, as in run ids, would collide in a big grid)."""
    text = "\n".join(sorted(o.strip() for o in overrides)) + f"\nseed={seed}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def group_dir(runs_dir: Path, group: str) -> Path:
    return Path(runs_dir) / GROUPS_DIR / group


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomic write (temp file + rename): a reader never sees half a record, also across machines
    sharing the runs dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def parse_value(text: str) -> Any:
    """A grid value as a number/bool/list where it reads as one (so pandas gets numeric axes), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# -- writing (the driver and the workers) -----------------------------------------------------------------
def create_group(runs_dir: Path, group: str, preset: str, overrides: Sequence[str], axes: Mapping[str, Sequence[str]],
                 seeds: Sequence[int], slots: Sequence[Mapping[str, Any]], executor: str) -> Path:
    """Write a new sweep's group.json (status 'running'); its directory."""
    d = group_dir(runs_dir, group)
    if (d / GROUP_FILE).exists():
        raise RunStoreError(f"group {group} already exists in {runs_dir}")
    _write_json(d / GROUP_FILE, {
        "format": FORMAT, "group": group, "kind": "sweep", "preset": preset, "overrides": list(overrides),
        "axes": {k: list(v) for k, v in axes.items()}, "seeds": list(seeds), "executor": executor,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "ended": "", "status": "running", "slots": list(slots)})
    (d / "members").mkdir(exist_ok=True)
    return d


def end_group(runs_dir: Path, group: str, status: str) -> None:
    """Record how the sweep ended ('finished': every run finished; else 'incomplete')."""
    path = group_dir(runs_dir, group) / GROUP_FILE
    data = json.loads(path.read_text())
    data.update(status=status, ended=time.strftime("%Y-%m-%dT%H:%M:%S"))
    _write_json(path, data)


def write_member(member_file: Path, run_id: str) -> None:
    """Record that a slot's run exists (again: `attempts` counts starts and resumes of the slot)."""
    old = json.loads(member_file.read_text()) if member_file.exists() else {}
    _write_json(member_file, {"run_id": run_id, "attempts": int(old.get("attempts", 0)) + 1})


def read_member(member_file: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(member_file.read_text()))
    except (OSError, json.JSONDecodeError):
        return None


# -- reading ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    """One slot of a group: its grid point and seed, and its run once started (record None before)."""

    point: dict[str, Any]
    seed: int
    run_id: str = ""
    record: RunRecord | None = None
    attempts: int = 0

    @property
    def status(self) -> str:
        return self.record.live_status if self.record is not None else ("missing" if self.run_id else "not started")


@dataclass(frozen=True)
class Group:
    """A group's record and its members' runs, read now."""

    group: str
    kind: str
    """'sweep' (a group.json) or 'seeds' (runs sharing a seed-group id, no group.json)"""
    preset: str
    axes: dict[str, list[Any]]
    members: list[Member]
    stored_status: str = ""
    executor: str = ""
    overrides: list[str] = field(default_factory=list)
    driving: bool = False
    """whether the sweep's driver is still starting runs (it holds the group directory's writer lock)"""

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(m.status for m in self.members))

    @property
    def status(self) -> str:
        """'running' while a member runs or the driver is still starting runs; 'finished' when all did;
        else 'incomplete' (some failed, were stopped or never started, and nothing runs any more)."""
        c = self.counts
        if c.get("running") or self.driving:
            return "running"
        return "finished" if c.get("finished", 0) == len(self.members) else "incomplete"

    @property
    def status_text(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))

    @property
    def records(self) -> list[RunRecord]:
        return [m.record for m in self.members if m.record is not None]


def _read(run_dir: Path, with_series: bool) -> RunRecord | None:
    from engine.store_read import read_run

    try:
        return read_run(run_dir, with_series=with_series)
    except RunStoreError:
        return None


def _sweep_ref(runs_dir: Path, ref: str) -> str | None:
    """The sweep id `ref` names: exactly, or as the one sweep id containing it."""
    ids = group_ids(runs_dir)
    if ref in ids:
        return ref
    hits = [i for i in ids if ref in i]
    return hits[0] if len(hits) == 1 else None


def is_group(runs_dir: Path, ref: str) -> bool:
    """Whether `ref` names a sweep record (or a unique part of one's id) or a seed group (an exact id;
    this scans the runs)."""
    return _sweep_ref(runs_dir, ref) is not None or bool(RunStore(runs_dir).group_members(ref))


def group_ids(runs_dir: Path) -> list[str]:
    """Every sweep record under `runs_dir` (oldest first)."""
    root = Path(runs_dir) / GROUPS_DIR
    return sorted(p.name for p in root.iterdir() if (p / GROUP_FILE).is_file()) if root.is_dir() else []


def load_group(runs_dir: Path, ref: str, with_series: bool = False) -> Group:
    """The sweep or seed group `ref` (exact id, or a unique part of a sweep id) with its runs read now."""
    runs_dir = Path(runs_dir)
    ref = _sweep_ref(runs_dir, ref) or ref
    path = group_dir(runs_dir, ref) / GROUP_FILE
    if path.is_file():
        data = json.loads(path.read_text())
        members = []
        for slot in data["slots"]:
            m = read_member(group_dir(runs_dir, ref) / "members" / f"{slot['key']}.json") or {}
            rid = str(m.get("run_id", ""))
            rec = _read(runs_dir / rid, with_series) if rid else None
            members.append(Member({k: parse_value(str(v)) for k, v in slot["point"].items()}, int(slot["seed"]),
                                  rid, rec, int(m.get("attempts", 0))))
        return Group(ref, "sweep", data["preset"], {k: [parse_value(str(v)) for v in vs] for k, vs in data["axes"].items()},
                     members, data.get("status", ""), data.get("executor", ""), list(data.get("overrides", [])),
                     data.get("status") == "running" and lock_held(group_dir(runs_dir, ref)) is True)
    dirs = RunStore(runs_dir).group_members(ref)
    if not dirs:
        raise RunStoreError(f"no group {ref!r} in {runs_dir}; list runs and groups with: cltui runs")
    recs = sorted((r for r in (_read(d, with_series) for d in dirs) if r is not None), key=lambda r: (r.seed, r.run_id))
    return Group(ref, "seeds", recs[0].preset if recs else "", {},
                 [Member({}, r.seed, r.run_id, r) for r in recs])


# -- statistics and tidy rows -------------------------------------------------------------------------
@dataclass(frozen=True)
class PointStats:
    """One grid point: how many runs have each metric (n), their mean and sample std (ddof 1)."""

    point: dict[str, Any]
    runs: list[str]
    mean: dict[str, float]
    std: dict[str, float]
    n: dict[str, int]


def point_stats(g: Group) -> list[PointStats]:
    """Per grid point (in plan order), each metric's mean ± sample std over the seeds that have it."""
    order: dict[str, list[Member]] = {}
    for m in g.members:
        order.setdefault(json.dumps(m.point, sort_keys=True), []).append(m)
    out = []
    for members in order.values():
        ms = [metrics_of(m.record) if m.record is not None else {} for m in members]
        mean, std, n = {}, {}, {}
        for k in METRIC_LABELS:
            mean[k], std[k], n[k] = mean_std([x.get(k, NAN) for x in ms])
        out.append(PointStats(members[0].point, [m.run_id for m in members if m.run_id], mean, std, n))
    return out


def tidy_rows(g: Group) -> list[dict[str, Any]]:
    """One row per planned run: group, run id, status, seed, one column per axis, each metric (None when
    missing), steps done. Columns are the same in every row."""
    rows = []
    for m in g.members:
        met = metrics_of(m.record) if m.record is not None else {}
        row: dict[str, Any] = {"group": g.group, "run_id": m.run_id, "status": m.status, "seed": m.seed}
        row.update({k: m.point.get(k) for k in g.axes})
        for k in METRIC_LABELS:
            v = met.get(k, NAN)
            row[k] = None if v != v else float(v)  # NaN → None: JSON null, an empty CSV cell, a parquet null
        row["steps"] = m.record.progress[0] if m.record is not None else 0
        rows.append(row)
    return rows
