"""Groups as results (engine.groups, cltui/group_views.py, cltui/figures/group.py, the CLI on a group id):
per-point mean ± sample std against hand-computed values, tidy export rows, group figures with bands, and
one clear line where Ray or pyarrow is missing. Records are written through the real store (RunWriter and
the engine's events) with chosen accuracy matrices, so the expected numbers are known exactly."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cltui.cli import app
from engine import events as ev
from engine.groups import create_group, group_dir, load_group, member_key, point_stats, tidy_rows, write_member
from engine.metrics import summary
from engine.series import CURVES, TRAINING_SERIES, SeriesSpec
from engine.store import RunWriter

NAN = math.nan
# Point lr=0.1: three seeds; point lr=0.01: seed 0 finished, seed 1 never started.
MATRICES = {
    ("0.1", 0): [[90, NAN], [80, 96]],  # during 93, final 88, BWT -10
    ("0.1", 1): [[92, NAN], [84, 98]],  # during 95, final 91, BWT -8
    ("0.1", 2): [[94, NAN], [82, 94]],  # during 94, final 88, BWT -12
    ("0.01", 0): [[50, NAN], [40, 60]],  # during 55, final 50
}
GROUP = "20250101-000000-demo-sweep2x3-abcd"


def _write_run(root: Path, run_id: str, seed: int, acc: list[list[float]]) -> None:
    cfg = {"name": "demo", "seed": seed, "device": "cpu", "benchmark": {"name": "split_mnist"},
           "model": {"name": "mlp"}, "method": {"name": "finetune"}, "training": {"steps_per_task": 10}}
    w = RunWriter.create(root / run_id, run_id=run_id, config=cfg, environment={"device": "cpu"},
                         task_names=["0/1", "2/3"], phase_tasks=[[0], [1]], phase_steps=[10, 10],
                         series=[*TRAINING_SERIES, SeriesSpec(CURVES, (2,), cadence="curve")])
    w(ev.InitialEvaluated([50.0, 50.0]))
    for i, row in enumerate(acc):
        w(ev.SeriesPoint(CURVES, 10 * (i + 1), row))  # the curve point at each task end is that row
        w(ev.PhaseEvaluated(i, row, seconds=1.0))
    w(ev.RunFinished(summary(np.array(acc), [50.0, 50.0]), seconds=2.0))
    w.close()


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    slots = []
    for lr in ("0.1", "0.01"):
        for seed in (0, 1, 2) if lr == "0.1" else (0, 1):
            slots.append({"key": member_key([f"training.lr={lr}"], seed), "point": {"training.lr": lr}, "seed": seed,
                          "seed_group": ""})
    create_group(root, GROUP, "demo", [], {"training.lr": ["0.1", "0.01"]}, [0, 1, 2], slots, "local")
    for (lr, seed), acc in MATRICES.items():
        run_id = f"20250101-00000{seed}-demo-s{seed}-{lr.replace('.', '')}"
        _write_run(root, run_id, seed, acc)
        write_member(group_dir(root, GROUP) / "members" / f"{member_key([f'training.lr={lr}'], seed)}.json", run_id)
    return root


def test_point_stats_are_mean_and_sample_std_with_n(sweep_dir: Path) -> None:
    g = load_group(sweep_dir, GROUP)
    a, b = point_stats(g)
    assert a.point == {"training.lr": 0.1} and b.point == {"training.lr": 0.01}
    assert a.n["final"] == 3 and a.mean["final"] == pytest.approx(89.0)
    assert a.std["final"] == pytest.approx(math.sqrt(3.0))  # deviations -1, 2, -1: 6 / (3 - 1); population would be √2
    assert a.mean["during"] == pytest.approx(94.0) and a.std["during"] == pytest.approx(1.0)
    assert a.mean["bwt"] == pytest.approx(-10.0) and a.std["bwt"] == pytest.approx(2.0)
    assert b.n["final"] == 1 and b.mean["final"] == pytest.approx(50.0) and math.isnan(b.std["final"])
    assert g.counts == {"finished": 4, "not started": 1} and g.status == "incomplete"


def test_tidy_rows_one_per_run_with_axes_and_metrics(sweep_dir: Path) -> None:
    rows = tidy_rows(load_group(sweep_dir, GROUP))
    assert len(rows) == 5 and all(list(r) == list(rows[0]) for r in rows)
    assert list(rows[0])[:5] == ["group", "run_id", "status", "seed", "training.lr"]
    assert [(r["training.lr"], r["seed"], r["final"]) for r in rows] == \
        [(0.1, 0, 88.0), (0.1, 1, 91.0), (0.1, 2, 88.0), (0.01, 0, 50.0), (0.01, 1, None)]
    assert rows[-1]["status"] == "not started" and rows[-1]["run_id"] == ""


def test_group_curves_are_mean_with_sample_std_bands(sweep_dir: Path) -> None:
    from cltui.figures.group import group_curves_data, group_matrix_data

    g = load_group(sweep_dir, GROUP, with_series=True)
    a, b = group_curves_data(g)
    assert list(a.x) == [10, 20] and a.boundaries == [10]
    assert a.y[1].tolist() == pytest.approx([82.0, 96.0])  # mean of (80, 84, 82) and (96, 98, 94)
    assert a.std is not None and a.std[1].tolist() == pytest.approx([2.0, 2.0])
    assert b.std is None and "n=1" in b.title and "n=3" in a.title
    ma, _ = group_matrix_data(g)
    assert ma.values[1].tolist() == pytest.approx([82.0, 96.0]) and np.isnan(ma.values[0, 1])


def test_cli_show_export_plot_a_group(sweep_dir: Path, tmp_path: Path) -> None:
    r = CliRunner()
    out = r.invoke(app, ["show", GROUP, "--runs-dir", str(sweep_dir)])
    assert out.exit_code == 0, out.output
    assert "sample std (n−1)" in out.output and "89.00 ± 1.73" in out.output and "not started" in out.output
    out = r.invoke(app, ["export", GROUP, "--format", "csv", "--runs-dir", str(sweep_dir)])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 5 and rows[1]["final"] == "91.0" and rows[4]["final"] == ""
    out = r.invoke(app, ["export", "sweep2x3", "--format", "json", "--runs-dir", str(sweep_dir)])  # a unique part
    assert out.exit_code == 0 and json.loads(out.stdout)[0]["training.lr"] == 0.1
    out = r.invoke(app, ["plot", GROUP, "-o", str(tmp_path / "fig"), "--format", "svg", "--runs-dir", str(sweep_dir)])
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == \
        [f"{GROUP}-curves.svg", f"{GROUP}-matrix-1.svg", f"{GROUP}-matrix-2.svg"]


def test_parquet_without_pyarrow_is_one_line(sweep_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    out = CliRunner().invoke(app, ["export", GROUP, "--format", "parquet", "-o", str(tmp_path / "g.parquet"),
                                   "--runs-dir", str(sweep_dir)])
    assert out.exit_code == 2 and "pip install pyarrow" in out.output and "Traceback" not in out.output


def test_ray_executor_without_ray_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    out = CliRunner().invoke(app, ["sweep", "demo", "--grid", "training.lr=0.1,0.01", "--executor", "ray",
                                   "--runs-dir", str(tmp_path / "runs")])
    assert out.exit_code == 2 and 'pip install "cltui[ray]"' in out.output and "Traceback" not in out.output
    assert not (tmp_path / "runs" / "groups").exists()  # nothing recorded for a sweep that never started


def test_parquet_export_reads_back(sweep_dir: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")  # parquet is optional: only where pyarrow is installed
    out = CliRunner().invoke(app, ["export", GROUP, "--format", "parquet", "-o", str(tmp_path / "g.parquet"),
                                   "--runs-dir", str(sweep_dir)])
    assert out.exit_code == 0, out.output
    table = pq.read_table(tmp_path / "g.parquet").to_pylist()
    assert table == tidy_rows(load_group(sweep_dir, GROUP))


def test_a_sweep_whose_driver_still_starts_runs_is_running(sweep_dir: Path) -> None:
    """Slots not started yet: 'running' while the driver holds the group's lock, 'incomplete' once it is gone."""
    import json as _json

    from engine.runlock import WriterLock

    path = group_dir(sweep_dir, GROUP) / "group.json"
    assert _json.loads(path.read_text())["status"] == "running"
    lock = WriterLock.acquire(group_dir(sweep_dir, GROUP))
    try:
        assert load_group(sweep_dir, GROUP).status == "running"
    finally:
        lock.release()
    assert load_group(sweep_dir, GROUP).status == "incomplete"  # the driver died before starting the last run


def test_a_damaged_group_record_is_one_line_and_hides_nothing(sweep_dir: Path) -> None:
    (group_dir(sweep_dir, GROUP) / "group.json").write_text("{not json")
    r = CliRunner()
    out = r.invoke(app, ["show", GROUP, "--runs-dir", str(sweep_dir)])
    assert out.exit_code == 2 and out.output.startswith("error: group") and "Traceback" not in out.output
    out = r.invoke(app, ["runs", "--runs-dir", str(sweep_dir)])
    assert out.exit_code == 0 and "unreadable" in out.output and out.output.count("finished") >= 4
