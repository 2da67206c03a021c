"""`cltui plot` and the figure data behind it: every figure in every format is a valid file, the
numbers drawn are the record's (stages, phases ended early, probes per class), and a figure without
data is one line naming the analysis to turn on."""

from __future__ import annotations

import math
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cltui.cli import app
from cltui.figures import data as fd
from cltui.figures.export import FIGURES
from engine import events as ev
from engine.series import SeriesSpec
from engine.store import RunWriter, read_run

from .plot_records import TASK_CLASSES, write_analysis_run

ALL = list(FIGURES)


def invoke(*args: str):  # noqa: ANN201
    return CliRunner().invoke(app, list(args))


def one_line_error(r, text: str) -> None:  # noqa: ANN001
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], r.output
    assert "Traceback" not in r.output


def check_file(path: Path, fmt: str) -> None:
    """A real image/document of that format: PNG signature and a sane IHDR size, SVG that parses
    as XML with an <svg> root, PDF header and end-of-file marker."""
    raw = path.read_bytes()
    if fmt == "png":
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
        w, h = struct.unpack(">II", raw[16:24])
        assert 400 <= w <= 8000 and 300 <= h <= 8000, (w, h)
        assert len(raw) > 10_000  # a blank canvas of that size compresses to far less
    elif fmt == "svg":
        root = ET.fromstring(raw)
        assert root.tag.endswith("svg")
        assert len(list(root.iter())) > 50  # axes, ticks, lines: not an empty document
    else:
        assert raw[:5] == b"%PDF-" and raw.rstrip().endswith(b"%%EOF") and len(raw) > 3000


@pytest.fixture(scope="module")
def study_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_analysis_run(root, "20260101-000000-study-s0")
    return root


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_every_figure_in_every_format(study_run: Path, tmp_path: Path, fmt: str) -> None:
    r = invoke("plot", "study-s0", "--runs-dir", str(study_run), "--format", fmt, "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    written = r.output.split()
    assert written == [str(tmp_path / f"20260101-000000-study-s0-{w}.{fmt}") for w in ALL]
    for p in written:
        check_file(Path(p), fmt)


def test_what_picks_figures_and_default_folder_is_the_runs(study_run: Path) -> None:
    r = invoke("plot", "study-s0", "--runs-dir", str(study_run), "--what", "matrix", "--what", "latent")
    assert r.exit_code == 0, r.output
    folder = study_run / "20260101-000000-study-s0" / "figures"
    assert r.output.split() == [str(folder / f"20260101-000000-study-s0-{w}.png") for w in ("matrix", "latent")]
    check_file(folder / "20260101-000000-study-s0-latent.png", "png")


@pytest.mark.parametrize("what,hint", [
    ("probes", "turn on [analyses.probes] enabled = true"),
    ("sparsity", "turn on [analyses.sparsity] enabled = true"),
    ("updates", "turn on [analyses.weight_updates] enabled = true"),
    ("gradients", "turn on [analyses.gradients] enabled = true"),
    ("histograms", "turn on [analyses.histograms] enabled = true"),
    ("latent", "turn on [analyses.latent] enabled = true"),
    ("classprobs", "turn on [analyses.class_probs] enabled = true"),
    ("plasticity", "turn on [analyses.plasticity] enabled = true"),
    ("stages", "epoch_test_acc"),
])
def test_a_figure_without_data_names_the_analysis(tmp_path: Path, what: str, hint: str) -> None:
    write_analysis_run(tmp_path, "plain", analyses=("none",))
    r = invoke("plot", "plain", "--runs-dir", str(tmp_path), "--what", what, "-o", str(tmp_path / "out"))
    one_line_error(r, hint)
    assert not (tmp_path / "out").exists()


def test_all_writes_what_it_can_and_says_what_it_skipped(tmp_path: Path) -> None:
    write_analysis_run(tmp_path, "some", analyses=("probes",))
    r = invoke("plot", "some", "--runs-dir", str(tmp_path), "-o", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["some-curves.png", "some-matrix.png",
                                                                   "some-probes.png"]
    assert "skipped sparsity: no sparsity data: turn on [analyses.sparsity] enabled = true" in r.output


def test_declared_but_not_yet_written(tmp_path: Path) -> None:
    write_analysis_run(tmp_path, "early", phases_done=0)
    one_line_error(invoke("plot", "early", "--runs-dir", str(tmp_path), "--what", "probes"), "no linear-probe rows yet")
    one_line_error(invoke("plot", "early", "--runs-dir", str(tmp_path), "--what", "matrix"), "no phase has finished")
    one_line_error(invoke("plot", "early", "--runs-dir", str(tmp_path)), "no data for any figure yet")


def test_bad_input_is_one_line(study_run: Path, tmp_path: Path) -> None:
    rd = str(study_run)
    one_line_error(invoke("plot", "nope", "--runs-dir", rd), "no run 'nope'")
    one_line_error(invoke("plot", "study", "--runs-dir", rd, "--what", "curves", "--baseline", "study"),
                   "--baseline is only used by --what stages")
    one_line_error(invoke("plot", "study", "--runs-dir", rd, "--what", "stages", "--baseline", "nope"), "no run 'nope'")
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(invoke("plot", "study", "--runs-dir", rd, "--what", "matrix", "-o", str(blocker)), "cannot write")
    r = invoke("plot", "study", "--runs-dir", rd, "--what", "pie")
    assert r.exit_code == 2 and "Traceback" not in r.output


# -- the numbers behind the figures ---------------------------------------------------------------
def test_matrix_and_probes_are_the_records_numbers(study_run: Path) -> None:
    rec = read_run(study_run / "20260101-000000-study-s0")
    m = fd.matrix_data(rec)
    np.testing.assert_array_equal(m.values, rec.acc)
    assert m.rows[0] == "after 1: 1/2" and m.cols == rec.task_names
    h1 = fd.probes_data(rec)[0]
    assert h1.layer == "h1" and h1.overall.cols == ["seen", "all", "unseen"]
    np.testing.assert_allclose(h1.overall.values[:, 0], [95, 92, 89, 86, 83])
    assert math.isnan(h1.overall.values[4, 2])  # no unseen class after the last task
    seen = h1.per_class[0].values  # rows = phases, cols = classes 0..9
    for ph in range(5):
        classes = {c for k in range(ph + 1) for c in TASK_CLASSES[k]}
        assert {c for c in range(10) if not math.isnan(seen[ph, c])} == classes
    g = fd.gradients_data(rec)
    assert [h.title for h in g.per_unit] == ["fc1_weight", "fc2_weight", "fc3_weight"]
    assert (g.per_unit[0].values == 0).all(axis=1).sum() == 15  # the dead units, zero in every phase
    assert g.per_unit[0].values.shape == (120, 5)


def test_stages_take_the_max_within_each_stage_and_subtract_the_baseline(tmp_path: Path) -> None:
    write_analysis_run(tmp_path, "cbp", analyses=("stages",))
    write_analysis_run(tmp_path, "retrained", analyses=("stages",), stage_offset=5.0, n_tasks=3)
    rec, base = read_run(tmp_path / "cbp"), read_run(tmp_path / "retrained")
    st = fd.stages_data(rec, base)
    np.testing.assert_allclose(st.best, [70, 66, 62, 58, 54])  # 60 - 4·stage + 10 at the stage's last epoch
    np.testing.assert_allclose(st.baseline[:3], [75, 71, 67])
    assert np.isnan(st.baseline[3:]).all()  # the baseline has 3 stages only
    r = invoke("plot", "cbp", "--runs-dir", str(tmp_path), "--what", "stages", "--baseline", "retrained",
               "--format", "svg", "-o", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    check_file(tmp_path / "out" / "cbp-stages.svg", "svg")
    assert "run − baseline" in (tmp_path / "out" / "cbp-stages.svg").read_text()


def test_phases_ended_early_place_rows_and_boundaries_by_their_recorded_ends(tmp_path: Path) -> None:
    """A stop rule ended phase 1 at step 60 and phase 2 at 130 (planned 100 each); phase 3 has not started."""
    w = RunWriter.create(tmp_path / "early", run_id="early", config={"name": "x", "seed": 0, "benchmark": {"name": "b"},
                         "model": {"name": "m"}, "method": {"name": "f"}}, environment={},
                         task_names=["a", "b", "c"], phase_tasks=[[0], [1], [2]], phase_steps=[100, 100, 100],
                         series=[SeriesSpec("phase_steps", dtype="i8", cadence="phase"),
                                 SeriesSpec("epoch_test_acc", cadence="epoch")])
    for step, acc in ((30, 50.0), (60, 40.0), (90, 20.0), (120, 35.0), (130, 30.0)):
        w(ev.SeriesPoint("epoch_test_acc", step, acc))
    w(ev.SeriesPoint("phase_steps", 60, 60))
    w(ev.SeriesPoint("phase_steps", 130, 70))
    w.close()
    rec = read_run(tmp_path / "early")
    np.testing.assert_array_equal(fd.phase_ends(rec), [60, 130, 230])
    assert fd.boundaries(rec) == [60, 130]
    np.testing.assert_allclose(fd.stage_best(rec), [50.0, 35.0])


def test_a_real_run_plots_its_curves_and_matrix(tmp_path: Path) -> None:
    from engine import api

    from .conftest import tiny

    res = api.run(tiny(steps=10), tmp_path)
    r = invoke("plot", res.run_id, "--runs-dir", str(tmp_path), "--format", "svg", "-o", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    for what in ("curves", "matrix"):
        check_file(tmp_path / "out" / f"{res.run_id}-{what}.svg", "svg")
    assert "skipped probes: no linear-probe data: turn on [analyses.probes] enabled = true" in r.output
    rec = read_run(tmp_path / res.run_id)
    assert fd.boundaries(rec) == [10, 20]  # 3 tasks of 10 steps: the two task ends inside the run
    np.testing.assert_array_equal(fd.curves_data(rec).y, rec.curve_acc)
