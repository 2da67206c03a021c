"""Stroke digits: parsing de Jong's files (text, archive, folder), the cache, download failure, and
the strokes derived from real MNIST images (format flags, geometry, every skeleton pixel once)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.data import strokes as strokes_mod
from engine.data.mnist import MnistArrays, load_mnist
from engine.data.skeleton import skeletonize, trace_images, trace_skeleton
from engine.data.strokes import (
    StrokeSet,
    derive_from_images,
    download_official,
    load_cache,
    load_official,
    load_strokes,
    parse_inputdata,
    parse_labels,
    parse_target_label,
    read_official,
    render,
)
from engine.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Three digits in the official format: a two-stroke digit, a one-stroke digit, a one-pixel stroke.
DIGIT_A = "5 9 0 0\n0 1 0 0\n0 1 0 0\n1 0 0 0\n0 0 1 0\n1 -3 0 0\n0 -1 0 0\n0 0 1 1\n"
DIGIT_B = "18 4 0 0\n-1 1 0 0\n-1 0 0 0\n0 0 1 1\n"
DIGIT_C = "3 3 0 0\n0 0 1 0\n2 0 0 0\n0 0 1 1\n"


def _target(text: str, label: int) -> str:
    """A targetdata file: one-hot label then the inputdata row, on every row."""
    onehot = " ".join("1" if d == label else "0" for d in range(10))
    return "".join(f"{onehot} {row}\n" for row in text.strip().split("\n"))


def _files(with_labels: bool) -> dict[str, str]:
    files = {
        "trainimg-0-inputdata.txt": DIGIT_A, "trainimg-0-targetdata.txt": _target(DIGIT_A, 4),
        "trainimg-1-inputdata.txt": DIGIT_B, "trainimg-1-targetdata.txt": _target(DIGIT_B, 6),
        "testimg-0-inputdata.txt": DIGIT_C, "testimg-0-targetdata.txt": _target(DIGIT_C, 7),
        "trainimg-0-points.txt": "col,row\n5,9\n",
    }  # fmt: skip
    if with_labels:
        files.update({"trainlabels.txt": "4\n6\n", "testlabels.txt": "7\n"})
    return files


def _write_tar(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"sequences/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def mnist() -> MnistArrays:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.fail(f"real MNIST not found at {SHARED_DATA}/MNIST/raw; clone the shared data next to the repo.")
    return load_mnist(SHARED_DATA, download=False)


# ------------------------------------------------------------------------------------------------
# Official format


def test_parse_inputdata_rows_and_flags() -> None:
    seq = parse_inputdata(DIGIT_A)
    assert seq.shape == (8, 4) and seq.dtype == np.int16
    assert seq[0].tolist() == [5, 9, 0, 0]
    assert seq[4].tolist() == [0, 0, 1, 0] and seq[5].tolist() == [1, -3, 0, 0]
    assert seq[-1].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("bad", ["", "1 2 3\n", "5 9 0 0\n0 0 1 0\n", "5 9 0 1\n0 0 1 1\n", "a b c d\n"])
def test_parse_inputdata_rejects_malformed(bad: str) -> None:
    with pytest.raises(DataError):
        parse_inputdata(bad, "x.txt")


def test_parse_labels_and_target_label() -> None:
    assert parse_labels("5\n0\n4\n").tolist() == [5, 0, 4]
    assert parse_target_label(_target(DIGIT_B, 3)) == 3
    with pytest.raises(DataError):
        parse_target_label("0 0 0 0 0 0 0 0 0 0 1 2 3 4\n")


@pytest.mark.parametrize("with_labels", [True, False])
def test_read_official_archive(tmp_path: Path, with_labels: bool) -> None:
    archive = _write_tar(tmp_path / "sequences.tar.gz", _files(with_labels))
    train, test = read_official(archive)
    assert (len(train), len(test)) == (2, 1)
    assert train.labels.tolist() == [4, 6] and test.labels.tolist() == [7]
    assert train.lengths.tolist() == [8, 4] and test.lengths.tolist() == [4]
    assert train.sequence(1).tolist() == parse_inputdata(DIGIT_B).tolist()
    assert train.steps.dtype == np.int8 and train.source == "official" and test.split == "test"


def test_read_official_folder_matches_archive(tmp_path: Path) -> None:
    folder = tmp_path / "sequences"
    folder.mkdir()
    for name, text in _files(True).items():
        (folder / name).write_text(text)
    archive = _write_tar(tmp_path / "s.tar.gz", _files(True))
    for a, b in zip(read_official(tmp_path), read_official(archive)):
        assert np.array_equal(a.steps, b.steps) and np.array_equal(a.offsets, b.offsets)
        assert np.array_equal(a.labels, b.labels)


def test_read_official_reports_gaps(tmp_path: Path) -> None:
    files = _files(True)
    files["trainimg-5-inputdata.txt"] = files.pop("trainimg-1-inputdata.txt")
    with pytest.raises(DataError, match="gaps"):
        read_official(_write_tar(tmp_path / "a.tar.gz", files))


def test_cache_round_trip_is_atomic(tmp_path: Path) -> None:
    archive = _write_tar(tmp_path / "sequences.tar.gz", _files(True))
    train, test = load_official(archive, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["official.npz"]  # no temp file left
    cached = load_cache(tmp_path / "cache" / "official.npz")
    assert cached is not None
    for a, b in zip((train, test), cached):
        assert np.array_equal(a.steps, b.steps) and np.array_equal(a.offsets, b.offsets)
        assert np.array_equal(a.labels, b.labels) and (a.split, a.source) == (b.split, b.source)
    assert load_cache(tmp_path / "cache" / "official.npz", derive_version=-1) is None  # stale meta
    (tmp_path / "cache" / "official.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="delete it"):
        load_cache(tmp_path / "cache" / "official.npz")


def test_load_strokes_official_checks_counts(tmp_path: Path) -> None:
    _write_tar(tmp_path / "archive.tar.gz", _files(True))
    with pytest.raises(DataError, match="60000"):  # a 3-digit archive is not the real thing
        load_strokes("official", tmp_path, source_path=tmp_path / "archive.tar.gz")
    with pytest.raises(DataError):
        load_strokes("nonsense", tmp_path)


def test_load_strokes_official_offline_without_source(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        load_strokes("official", tmp_path, download=False)


def test_download_failure_is_one_clean_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        download_official(tmp_path, url="http://127.0.0.1:9/sequences.tar.gz")  # nothing listens
    message = str(err.value)
    assert "\n" not in message and "by hand" in message
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_render_draws_pen_points() -> None:
    picture = render(parse_inputdata(DIGIT_A)).split("\n")
    assert len(picture) == 28 and all(len(row) == 28 for row in picture)
    drawn = {(x, y) for y, row in enumerate(picture) for x, ch in enumerate(row) if ch == "#"}
    assert drawn == {(5, 9), (5, 10), (5, 11), (6, 11), (7, 8), (7, 7)}


# ------------------------------------------------------------------------------------------------
# Derived from MNIST


def _components(mask: np.ndarray) -> list[set[tuple[int, int]]]:
    """8-connected components of a bool image (a plain reference implementation for the test)."""
    todo = set(zip(*np.nonzero(mask)))
    comps = []
    while todo:
        stack = [todo.pop()]
        comp = set(stack)
        while stack:
            r, c = stack.pop()
            for q in ((r + a, c + b) for a in (-1, 0, 1) for b in (-1, 0, 1)):
                if q in todo:
                    todo.discard(q)
                    comp.add(q)
                    stack.append(q)
        comps.append(comp)
    return comps


def _pen_points(seq: np.ndarray) -> list[tuple[int, int]]:
    """(row, col) of every pen point (rows with eos = 0), in drawing order."""
    pos = np.cumsum(seq[:, :2].astype(np.int64), axis=0)
    return [(int(y), int(x)) for (x, y), eos in zip(pos, seq[:, 2]) if not eos]


@pytest.mark.integration
def test_derived_strokes_follow_the_format(mnist: MnistArrays) -> None:
    images, labels = mnist.x_train[:60], mnist.y_train[:60]
    derived = derive_from_images(images, labels, workers=1)
    skeletons = skeletonize(images)
    assert derived.source == "derived" and derived.labels.tolist() == labels.tolist()
    for i in range(len(derived)):
        seq = derived.sequence(i).astype(np.int64)
        assert seq[-1].tolist() == [0, 0, 1, 1] and seq[:, 3].sum() == 1  # one eod, on the last row
        assert 0 <= seq[0, 0] <= 27 and 0 <= seq[0, 1] <= 27 and seq[0, 2] == 0
        pos = np.cumsum(seq[:, :2], axis=0)
        assert pos.min() >= 0 and pos.max() <= 27  # the pen never leaves the image
        ends = np.flatnonzero(seq[:, 2] == 1)
        assert (seq[ends, :2] == 0).all()
        starts = np.concatenate([[0], ends[:-1] + 1])  # first row and every pen-up jump
        moves = np.setdiff1d(np.arange(len(seq)), np.concatenate([starts, ends]))
        assert (np.abs(seq[moves, :2]).max(axis=1) == 1).all()  # one-pixel moves, never zero
        assert not np.isin(ends[:-1] + 1, ends).any()  # a jump follows each inner end of stroke
        points = _pen_points(seq)
        assert len(points) == len(set(points))  # no pixel twice
        kept = set().union(*(c for c in _components(skeletons[i]) if len(c) >= 3))
        assert set(points) == kept  # every skeleton pixel outside specks exactly once


@pytest.mark.integration
def test_skeleton_is_thin_and_keeps_topology(mnist: MnistArrays) -> None:
    images = mnist.x_train[:60]
    skeletons = skeletonize(images)
    ink = images >= 128
    assert not (skeletons & ~ink).any()
    blocks = skeletons[:, :-1, :-1] & skeletons[:, 1:, :-1] & skeletons[:, :-1, 1:] & skeletons[:, 1:, 1:]
    assert not blocks.any()  # no 2x2 ink block survives thinning
    big = lambda m: [c for c in _components(m) if len(c) >= 3]  # noqa: E731
    assert all(len(big(s)) == len(big(m)) for s, m in zip(skeletons, ink))


@pytest.mark.integration
def test_derivation_is_deterministic_across_workers(mnist: MnistArrays) -> None:
    images = mnist.x_test[:40]
    one = trace_images(images, workers=1)
    two = trace_images(images, workers=2, chunk=10)  # 4 chunks over 2 spawned processes
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


def test_trace_drops_specks_and_handles_loops() -> None:
    skel = np.zeros((28, 28), dtype=bool)
    skel[5, 5] = True  # a one-pixel speck: dropped
    skel[10, 10:14] = skel[13, 10:14] = True  # a closed square loop, no endpoint
    skel[11:13, 10] = skel[11:13, 13] = True
    seq = trace_skeleton(skel).astype(np.int64)
    assert seq[0].tolist() == [10, 10, 0, 0]  # starts at the loop's top-left pixel
    loop = skel.copy()
    loop[5, 5] = False
    assert sorted(_pen_points(seq)) == sorted(zip(*np.nonzero(loop)))
    assert trace_skeleton(np.zeros((28, 28), dtype=bool)).tolist() == [[0, 0, 1, 1]]


def test_load_strokes_derived_builds_then_reads_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.RandomState(0)
    images = np.zeros((6, 28, 28), dtype=np.uint8)
    images[:, 8:20, 12:15] = 255  # a thick vertical bar
    fake = MnistArrays(images[:4], rng.randint(10, size=4), images[4:], rng.randint(10, size=2))
    monkeypatch.setattr(strokes_mod, "load_mnist", lambda root, download=True: fake)
    train, test = load_strokes("derived", tmp_path, workers=1)
    assert (tmp_path / "stroke_mnist" / "derived.npz").is_file()
    assert (len(train), len(test)) == (4, 2) and train.labels.tolist() == fake.y_train.tolist()
    monkeypatch.setattr(strokes_mod, "load_mnist", lambda *a, **k: pytest.fail("cache was not used"))
    again, _ = load_strokes("derived", tmp_path)
    assert np.array_equal(again.steps, train.steps) and isinstance(again, StrokeSet)


def test_stroke_modules_do_not_load_torch() -> None:
    code = (
        "import sys, engine.data.strokes, engine.data.skeleton, engine.data.ssmnist; "
        "sys.exit('torch' in sys.modules)"
    )
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
