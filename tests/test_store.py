"""The HDF5 run store: round trip, plain-h5py readability, format-1 files, declared series only,
a reader beside a live writer, crash recovery."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine import events as ev
from engine.series import CURVES, TRAINING_SERIES, SeriesError, SeriesSpec
from engine.store import RunStore, RunWriter, read_run

CONFIG = {"name": "unit", "seed": 3, "benchmark": {"name": "b"}, "method": {"name": "m"}, "model": {"name": "x"}}


SERIES = [*TRAINING_SERIES, SeriesSpec(CURVES, (2,), cadence="curve", columns=("a", "b"), source="analysis/curves"),
          SeriesSpec("probe", (2, 3), dtype="f4", cadence="phase", columns=("x", "y", "z"), description="d",
                     source="analysis/probe")]


def make(run_dir: Path) -> RunWriter:
    return RunWriter.create(run_dir, run_id=run_dir.name, config=CONFIG, environment={"device": "cpu"},
                            task_names=["a", "b"], phase_tasks=[[0], [1]], phase_steps=[5, 5], group="g1",
                            series=SERIES)


def test_round_trip(tmp_path: Path) -> None:
    w = make(tmp_path / "r1")
    w(ev.InitialEvaluated([50.0, 51.0]))
    for s in range(1, 4):
        w(ev.StepLogged(s, 0, {"loss": 1.0 / s, "task_loss": 1.0 / s, "penalty": 0.0, "train_acc": 60.0}, 10.0))
    w(ev.SeriesPoint(CURVES, 3, [70.0, math.nan]))
    w(ev.PhaseEvaluated(0, [90.0, 40.0], 1.5))
    w(ev.SeriesPoint("probe", 5, np.arange(6).reshape(2, 3)))
    w(ev.PhaseEvaluated(1, [80.0, 95.0], 1.5))
    w(ev.RunFinished({"during": 92.5, "final": 87.5}, 3.0))
    w.close()
    r = read_run(tmp_path / "r1")
    assert r.status == "finished" and r.seed == 3 and r.group == "g1" and r.config == CONFIG
    assert np.array_equal(r.acc, [[90.0, 40.0], [80.0, 95.0]])
    assert r.metrics["final"] == 87.5 and math.isnan(r.metrics["bwt"])
    assert list(r.scalar_steps) == [1, 2, 3] and r.scalar("loss")[2] == 1.0 / 3
    assert r.curve_steps.tolist() == [3] and math.isnan(r.curve_acc[0, 1])
    assert r.progress == (10, 10) and r.acc_initial.tolist() == [50.0, 51.0]
    assert r.format_version == 2 and list(r.series_specs) == [s.name for s in SERIES]
    assert r.scalar_names == [s.name for s in TRAINING_SERIES]
    assert np.isnan(r.scalar("grad_norm")).all() and r.scalar("steps_per_sec").tolist() == [10.0] * 3
    probe = r.series["probe"]
    assert probe.spec == SERIES[-1] and probe.steps.tolist() == [5] and probe.values.dtype == np.float32
    assert probe.values.tolist() == [[[0, 1, 2], [3, 4, 5]]]
    assert r.series["lr"].steps.size == 0  # declared, never written: empty, not missing


def test_plain_h5py_reads_the_documented_layout(tmp_path: Path) -> None:
    w = make(tmp_path / "r1")
    w(ev.PhaseEvaluated(0, [90.0, 40.0], 1.0))
    w(ev.StepLogged(4, 0, {"loss": 0.5}, 7.0))
    w(ev.SeriesPoint(CURVES, 4, [70.0, math.nan]))
    w.close()
    with h5py.File(tmp_path / "r1" / "run.h5", "r") as f:
        assert f.attrs["format_version"] == 2
        assert f["status"][()].decode() == "running"
        assert f["acc"].shape == (2, 2) and f["acc"][0, 0] == 90.0
        assert f.attrs["method"] == "m"
        assert json.loads(f.attrs["series_names"]) == [s.name for s in SERIES]
        for name in ("config", "environment", "metrics", "series/loss/step", "series/loss/value"):
            assert name in f
        assert f["series/loss/step"][()].tolist() == [4] and f["series/loss/value"][()].tolist() == [0.5]
        assert f["series/steps_per_sec/value"][0] == 7.0
        curves = f["series/curves"]
        assert curves["value"].shape == (1, 2) and curves["value"][0, 0] == 70.0 and np.isnan(curves["value"][0, 1])
        assert curves.attrs["cadence"] == "curve" and json.loads(curves.attrs["columns"]) == ["a", "b"]
        assert json.loads(curves.attrs["shape"]) == [2] and curves.attrs["dtype"] == "f8"
        assert f["series/probe/value"].shape == (0, 2, 3) and f["series/probe"].attrs["description"] == "d"


def test_undeclared_or_misshapen_values_raise(tmp_path: Path) -> None:
    w = make(tmp_path / "r1")
    with pytest.raises(SeriesError, match="'fisher' was written but no series 'fisher' was declared"):
        w(ev.StepLogged(1, 0, {"loss": 1.0, "fisher": 3.0}, 1.0))
    with pytest.raises(SeriesError, match="no series 'nope'"):
        w(ev.SeriesPoint("nope", 1, 1.0))
    with pytest.raises(SeriesError, match=r"shape \(2,\)"):
        w(ev.SeriesPoint(CURVES, 1, [1.0, 2.0, 3.0]))
    w.close()
    with pytest.raises(SeriesError, match="declared twice"):
        make_dup = [*SERIES, SeriesSpec("loss")]
        RunWriter.create(tmp_path / "r2", run_id="r2", config=CONFIG, environment={}, task_names=["a"],
                         phase_tasks=[[0]], phase_steps=[1], series=make_dup)
    assert not (tmp_path / "r2").exists()  # nothing written for a bad declaration


def test_reopen_truncates_every_series_to_its_count(tmp_path: Path) -> None:
    w = make(tmp_path / "r1")
    for s in range(1, 5):
        w(ev.StepLogged(s, 0, {"loss": float(s)}, 1.0))
        w(ev.SeriesPoint(CURVES, s, [float(s), 0.0]))
    counts = {"loss": 2, "steps_per_sec": 3}  # curves (and the rest) absent: they had no rows then
    w.close()
    w = RunWriter.reopen(tmp_path / "r1", counts)
    assert w.counts() == {s.name: counts.get(s.name, 0) for s in SERIES}
    w.close()
    r = read_run(tmp_path / "r1")
    assert r.series["loss"].steps.tolist() == [1, 2] and r.series[CURVES].steps.size == 0


def write_v1(path: Path) -> None:
    """A run file in format 1's layout (engine/store.py before format 2), written with plain h5py."""
    s = h5py.string_dtype()
    with h5py.File(path, "w", libver="latest") as f:
        a = f.attrs
        a["format_version"], a["run_id"], a["created"], a["preset"] = 1, "old", "2025-01-01T00:00:00", "demo"
        a["benchmark"], a["method"], a["model"], a["seed"], a["group"] = "split_mnist", "ewc", "mlp", 4, ""
        a["task_names"], a["phase_tasks"], a["phase_steps"] = '["T1", "T2"]', "[[0], [1]]", "[10, 10]"
        a["scalar_names"] = json.dumps(["loss", "task_loss", "penalty", "train_acc", "grad_norm", "lr", "steps_per_sec"])
        a["metric_names"] = json.dumps(["during", "final", "average", "bwt", "fwt", "forgetting"])
        f.create_dataset("config", data=json.dumps(CONFIG), dtype=s)
        f.create_dataset("environment", data="{}", dtype=s)
        f.create_dataset("status", data="finished", dtype=s)
        f.create_dataset("error", data="", dtype=s)
        f.create_dataset("pid", data=1, dtype="i8")
        f.create_dataset("progress", data=np.array([20, 20]))
        f.create_dataset("times", data=np.array([1.0, 2.0]))
        f.create_dataset("acc", data=np.array([[90.0, 50.0], [80.0, 95.0]]))
        f.create_dataset("acc_initial", data=np.array([50.0, 50.0]))
        f.create_dataset("phase_seconds", data=np.array([1.0, 1.0]))
        f.create_dataset("metrics", data=np.arange(6.0))
        f.create_dataset("curves/step", data=np.array([10, 20]), maxshape=(None,))
        f.create_dataset("curves/acc", data=np.array([[90.0, np.nan], [80.0, 95.0]]), maxshape=(None, 2))
        f.create_dataset("scalars/step", data=np.array([5, 10, 15]), maxshape=(None,))
        f.create_dataset("scalars/values", data=np.arange(21.0).reshape(3, 7), maxshape=(None, 7))


def test_format_1_files_read_into_the_same_record(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    write_v1(tmp_path / "old" / "run.h5")
    r = read_run(tmp_path / "old")
    assert r.format_version == 1 and r.method == "ewc" and r.seed == 4 and r.status == "finished"
    assert r.curve_steps.tolist() == [10, 20] and r.curve_acc[1].tolist() == [80.0, 95.0]
    assert r.scalar_steps.tolist() == [5, 10, 15] and r.scalar("penalty").tolist() == [2.0, 9.0, 16.0]
    assert r.series["lr"].values.tolist() == [5.0, 12.0, 19.0]  # the generic view works on format 1 too
    assert r.series[CURVES].spec.columns == ("T1", "T2") and r.metrics["bwt"] == 3.0
    assert [x.run_id for x in RunStore(tmp_path).records()] == ["old"]
    with pytest.raises(Exception, match="format 1"):
        RunWriter.reopen(tmp_path / "old", {})


def _writer_process(run_dir: str, n: int) -> None:
    w = make(Path(run_dir))
    for s in range(1, n + 1):
        w(ev.StepLogged(s, 0, {"loss": float(s)}, 1.0))
        w.flush(force=True)
        time.sleep(0.01)
    w(ev.PhaseEvaluated(0, [1.0, 2.0], 1.0))
    w.close()


def test_second_process_reads_while_the_run_is_written(tmp_path: Path) -> None:
    run_dir = tmp_path / "live"
    proc = mp.get_context("spawn").Process(target=_writer_process, args=(str(run_dir), 150))
    proc.start()
    seen: list[int] = []
    deadline = time.time() + 60
    while proc.is_alive() and time.time() < deadline:
        if (run_dir / "run.h5").exists():
            try:
                r = read_run(run_dir)
            except Exception:  # only the very first open may race the file's creation
                continue
            n = r.scalar_steps.shape[0]
            assert r.scalar_steps.tolist() == list(range(1, n + 1))  # consistent prefix, never garbage
            seen.append(n)
        time.sleep(0.02)
    proc.join(30)
    assert proc.exitcode == 0
    assert len({s for s in seen if 0 < s < 150}) >= 2, f"never saw the run mid-way: {seen[:10]}"
    assert read_run(run_dir).scalar_steps.shape[0] == 150


def _killed_writer(run_dir: str) -> None:
    w = make(Path(run_dir))
    w(ev.StepLogged(1, 0, {"loss": 1.0}, 1.0))
    w.flush(force=True)
    os.kill(os.getpid(), signal.SIGKILL)


def test_reopen_after_writer_was_killed(tmp_path: Path) -> None:
    run_dir = tmp_path / "dead"
    proc = mp.get_context("spawn").Process(target=_killed_writer, args=(str(run_dir),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    r = read_run(run_dir)
    assert r.status == "running" and r.live_status == "interrupted"
    w = RunWriter.reopen(run_dir, {"loss": 1, "steps_per_sec": 1})  # recovers the file HDF5 still marks as open
    w(ev.StepLogged(2, 0, {"loss": 2.0}, 1.0))
    w.close()
    assert read_run(run_dir).scalar_steps.tolist() == [1, 2]


def test_store_finds_runs_by_prefix_and_group(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for name in ("20260101-000000-unit-s0", "20260101-000000-unit-s1"):
        make(tmp_path / name).close()
    assert store.find("20260101-000000-unit-s1").name.endswith("s1")
    assert len(store.group_members("g1")) == 2
    assert [r.run_id for r in store.records()] == store.run_ids()
