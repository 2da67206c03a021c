"""Pen-stroke MNIST digits (de Jong's "MNIST digits stroke sequence data"): read, derive, cache, draw.

What lives here:
* `StrokeSet`: one split's digits as ragged stroke sequences, plus the one-file `.npz` cache of a
  (train, test) pair;
* the official data: `parse_inputdata`, `parse_labels`, `load_official` (from `sequences.tar.gz` or
  its extracted `sequences/` folder) and `download_official`;
* derived data for machines without the archive: `derive_from_images` thins MNIST images and traces
  the skeletons into the same format (the image processing itself is in `engine.data.skeleton`);
* `load_strokes`, the one entry point benchmarks use, and `render` to check a trace by eye.

Format (one row per step, `dx dy eos eod`, as in de Jong's `*-inputdata.txt`): the first row is the
absolute (column, row) of the first pixel (x = column, y = row, y points down); each later row of a
stroke is a one-pixel move; a row `0 0 1 0` ends a stroke and the row after it is the pen-up jump
(relative) to the next stroke's first pixel; the last stroke ends with `0 0 1 1` instead, so the
final row is the only one with eod = 1. Every value fits int8, which is what `StrokeSet` stores.

Numpy only: must not import torch (the UI may prepare data without loading it). Nothing runs at
import time.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.mnist import load_mnist
from engine.data.skeleton import DERIVE_VERSION, trace_images
from engine.errors import DataError

OFFICIAL_URL = (
    "https://github.com/edwin-de-jong/mnist-digits-stroke-sequence-data/raw/master/sequences.tar.gz"
)
OFFICIAL_COUNTS = {"train": 60000, "test": 10000}
CACHE_VERSION = 1  # bump when the .npz layout changes; older caches are then rebuilt
_MEMBER = re.compile(r"(train|test)img-(\d+)-(inputdata|targetdata)\.txt$")
_LABELS = re.compile(r"(train|test)labels\.txt$")


@dataclass(frozen=True, eq=False)  # eq would compare arrays elementwise
class StrokeSet:
    """One split (train or test) of stroke digits, stored ragged.

    Sequence i is `steps[offsets[i]:offsets[i+1]]`. A dataset is a (train, test) pair of these,
    which is what `load_strokes` returns and what one cache file holds.
    """

    steps: np.ndarray
    """int8 [total_steps, 4]: all sequences' rows `dx dy eos eod`, concatenated in index order."""
    offsets: np.ndarray
    """int64 [n + 1]: where each sequence starts in `steps`; offsets[0] = 0, offsets[n] = total."""
    labels: np.ndarray
    """int64 [n]: the digit (0-9) of each sequence; index i is MNIST image i of this split."""
    split: str
    """"train" or "test" (de Jong's trainimg-/testimg- files, i.e. MNIST's own split)."""
    source: str
    """"official" (de Jong's archive) or "derived" (traced here from MNIST images)."""

    def __len__(self) -> int:
        return len(self.labels)

    def sequence(self, i: int) -> np.ndarray:
        """Digit i as int8 [len_i, 4] (a view; do not modify)."""
        return self.steps[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """int64 [n]: the number of rows of each sequence, final `0 0 1 1` row included."""
        return np.diff(self.offsets)

    @property
    def max_length(self) -> int:
        return int(self.lengths.max()) if len(self) else 0

    @classmethod
    def from_sequences(
        cls, seqs: list[np.ndarray], labels: np.ndarray, split: str, source: str
    ) -> StrokeSet:
        """Pack a list of [len_i, 4] arrays (values must fit int8) into one StrokeSet."""
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        steps = np.concatenate(seqs) if seqs else np.zeros((0, 4), dtype=np.int64)
        if steps.size and (steps.min() < -128 or steps.max() > 127):
            raise DataError(f"{source} {split} strokes hold values outside int8; the data is corrupt.")
        return cls(steps.astype(np.int8), offsets, np.asarray(labels, dtype=np.int64), split, source)


# ------------------------------------------------------------------------------------------------
# Official files


def parse_inputdata(text: str, name: str = "inputdata") -> np.ndarray:
    """One `*-inputdata.txt` as int16 [len, 4]; raises DataError if it is not that format."""
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise DataError(f"{name} holds something other than integers; the stroke data is corrupt.") from None
    if values.size == 0 or values.size % 4:
        raise DataError(f"{name} does not have 4 integers per row; the stroke data is corrupt.")
    rows = values.reshape(-1, 4)
    # The last row, and only it, ends the digit; parsing checks it so ragged storage stays sound.
    if rows[-1, 3] != 1 or rows[:-1, 3].any() or np.abs(rows).max() > 127:
        raise DataError(f"{name} is not a dx-dy-eos-eod sequence ending in '0 0 1 1'; the data is corrupt.")
    return rows.astype(np.int16)


def parse_labels(text: str, name: str = "labels") -> np.ndarray:
    """`trainlabels.txt` / `testlabels.txt` (one digit per line) as int64 [n]."""
    try:
        labels = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise DataError(f"{name} holds something other than digit labels; the stroke data is corrupt.") from None
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{name} holds labels outside 0-9; the stroke data is corrupt.")
    return labels


def parse_target_label(text: str, name: str = "targetdata") -> int:
    """The digit from a `*-targetdata.txt`: its first 20 characters are the 10-way one-hot."""
    onehot = text[:20].split()
    if len(onehot) != 10 or sorted(onehot) != ["0"] * 9 + ["1"]:
        raise DataError(f"{name} does not start with a one-hot label; the stroke data is corrupt.")
    return onehot.index("1")


def _iter_members(source: Path) -> Iterator[tuple[str, str]]:
    """(file name, text) of every relevant file in the archive or folder, in storage order."""
    def wanted(base: str) -> bool:
        return bool(_MEMBER.match(base) or _LABELS.match(base))

    if source.is_dir():
        folder = source / "sequences" if (source / "sequences").is_dir() else source
        for path in sorted(folder.iterdir()):
            if wanted(path.name):
                yield path.name, path.read_text()
        return
    # Stream the tar.gz ("r|gz"): 210k small files are read once, in order, never extracted.
    with tarfile.open(source, "r|gz") as tar:
        for member in tar:
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and wanted(base):
                f = tar.extractfile(member)
                if f is not None:
                    yield base, f.read().decode("ascii", errors="replace")


def read_official(source: Path) -> tuple[StrokeSet, StrokeSet]:
    """Parse de Jong's data (the `sequences.tar.gz` archive or its extracted folder); no cache.

    Labels come from `trainlabels.txt` / `testlabels.txt`; where those are absent, from the one-hot
    at the start of each `*-targetdata.txt`. Indices of each split must run 0..n-1 without gaps.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"stroke data {source} does not exist; pass the path of sequences.tar.gz or sequences/.")
    seqs: dict[str, dict[int, np.ndarray]] = {"train": {}, "test": {}}
    target_labels: dict[str, dict[int, int]] = {"train": {}, "test": {}}
    label_files: dict[str, np.ndarray] = {}
    try:
        for base, text in _iter_members(source):
            if m := _LABELS.match(base):
                label_files[m.group(1)] = parse_labels(text, base)
                continue
            m = _MEMBER.match(base)
            assert m is not None  # _iter_members yields only matching names
            split, i, kind = m.group(1), int(m.group(2)), m.group(3)
            if kind == "inputdata":
                seqs[split][i] = parse_inputdata(text, base)
            else:
                target_labels[split][i] = parse_target_label(text, base)
    except (OSError, tarfile.TarError, EOFError) as e:
        raise DataError(f"cannot read stroke data {source} ({e}); download sequences.tar.gz again.") from None
    out = []
    for split in ("train", "test"):
        n = len(seqs[split])
        if n == 0 or max(seqs[split]) != n - 1:
            raise DataError(
                f"{source} holds {n} {split}img inputdata files with gaps or none; "
                "it is incomplete, download sequences.tar.gz again."
            )
        if split in label_files:
            labels = label_files[split]
        elif len(target_labels[split]) == n:
            labels = np.array([target_labels[split][i] for i in range(n)], dtype=np.int64)
        else:
            raise DataError(f"{source} has no {split}labels.txt and not every {split}img targetdata file.")
        if len(labels) != n:
            raise DataError(f"{source}: {split}labels.txt has {len(labels)} labels for {n} digits.")
        out.append(StrokeSet.from_sequences([seqs[split][i] for i in range(n)], labels, split, "official"))
    return out[0], out[1]


def load_official(source: Path, cache_dir: Path) -> tuple[StrokeSet, StrokeSet]:
    """Read the official (train, test) strokes from `source` and cache them in `cache_dir/official.npz`."""
    train, test = read_official(source)
    save_cache(Path(cache_dir) / "official.npz", train, test)
    return train, test


def download_official(dest: Path, url: str = OFFICIAL_URL) -> Path:
    """Fetch `sequences.tar.gz` into folder `dest`; return its path. Offline: one-line DataError."""
    dest = Path(dest)
    target = dest / "sequences.tar.gz"
    tmp_name = None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dest, suffix=".part", delete=False) as tmp:
            tmp_name = tmp.name
            with urllib.request.urlopen(url, timeout=30) as resp:
                shutil.copyfileobj(resp, tmp)
        os.replace(tmp_name, target)
        return target
    except (OSError, ValueError) as e:  # URLError is an OSError; ValueError: malformed URL
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        reason = " ".join(str(getattr(e, "reason", e)).split())  # keep the message on one line
        raise DataError(
            f"cannot download the stroke data ({reason}); download {url} by hand and pass its path "
            f"as the stroke source, or save it as {target}."
        ) from None


# ------------------------------------------------------------------------------------------------
# Derived from MNIST images


def derive_from_images(
    images: np.ndarray,
    labels: np.ndarray,
    split: str = "train",
    threshold: int = 128,
    min_component: int = 3,
    workers: int | None = None,
) -> StrokeSet:
    """Trace uint8 [N, 28, 28] images into de Jong-format strokes (see `engine.data.skeleton`).

    Pixels >= `threshold` are ink; skeleton components smaller than `min_component` pixels are
    dropped as specks (as de Jong does for 1-2 pixel components). Deterministic: the result does not
    depend on `workers` (processes; None = one per available core).
    """
    steps, lengths = trace_images(images, threshold, min_component, workers)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return StrokeSet(steps, offsets, np.asarray(labels, dtype=np.int64), split, "derived")


# ------------------------------------------------------------------------------------------------
# Cache and entry point


def save_cache(path: Path, train: StrokeSet, test: StrokeSet, **meta: int) -> None:
    """Write a (train, test) pair to one uncompressed `.npz`, atomically (tmp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"version": np.array(CACHE_VERSION), "source": np.array(train.source)}
    arrays.update({k: np.array(v) for k, v in meta.items()})
    for s in (train, test):
        arrays.update({f"{s.split}_steps": s.steps, f"{s.split}_offsets": s.offsets, f"{s.split}_labels": s.labels})
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.part")
    try:
        with os.fdopen(fd, "wb") as f:
            # numpy types **kwds against its allow_pickle: bool keyword; no key here is that name.
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cache(path: Path, **meta: int) -> tuple[StrokeSet, StrokeSet] | None:
    """The cached pair, or None if the cache is absent, from an older layout, or `meta` differs."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or any(
                k not in z or int(z[k]) != v for k, v in meta.items()
            ):
                return None
            source = str(z["source"])
            return tuple(  # type: ignore[return-value]
                StrokeSet(z[f"{s}_steps"], z[f"{s}_offsets"], z[f"{s}_labels"], s, source)
                for s in ("train", "test")
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"stroke cache {path} is unreadable ({e}); delete it and run again.") from None


def load_strokes(
    kind: str,
    data_root: Path,
    source_path: Path | None = None,
    download: bool = True,
    workers: int | None = None,
    cache_root: Path | None = None,
) -> tuple[StrokeSet, StrokeSet]:
    """The (train, test) stroke digits, from a cache under `<root>/stroke_mnist/` when present.

    Caches are looked up in `data_root` and then `cache_root`, and written to `cache_root`
    (default: `data_root`); pass a different `cache_root` when `data_root` is read-only — inputs
    are then only read from `data_root`, never downloaded into it.
    kind "official": read `source_path` (sequences.tar.gz or sequences/), else
    `data_root/stroke_mnist/sequences.tar.gz` or `sequences/`, else download the archive into the
    cache folder. kind "derived": trace MNIST from `data_root` (~10 s on 2 cores, once; the cache
    then loads in well under a second).
    """
    folder = Path(data_root) / "stroke_mnist"
    cache_folder = Path(cache_root if cache_root is not None else data_root) / "stroke_mnist"
    separate = cache_folder.absolute() != folder.absolute()
    if kind == "official":
        cached = load_cache(folder / "official.npz") or (load_cache(cache_folder / "official.npz") if separate else None)
        if cached is None:
            if source_path is None:
                local = [f / name for f in (folder, cache_folder) for name in ("sequences.tar.gz", "sequences")]
                source_path = next((p for p in local if p.exists()), None)
            if source_path is None:
                if not download:
                    raise DataError(
                        f"no stroke data in {folder}; download {OFFICIAL_URL} there or pass its path."
                    )
                source_path = download_official(cache_folder)
            cached = load_official(Path(source_path), cache_folder)
        train, test = cached
        for s in (train, test):
            if len(s) != OFFICIAL_COUNTS[s.split]:
                raise DataError(
                    f"official stroke data has {len(s)} {s.split} digits, not {OFFICIAL_COUNTS[s.split]}; "
                    f"delete the official.npz cache and pass the complete sequences.tar.gz."
                )
        return train, test
    if kind == "derived":
        meta = {"derive_version": DERIVE_VERSION}
        cached = load_cache(folder / "derived.npz", **meta)
        if cached is None and separate:
            cached = load_cache(cache_folder / "derived.npz", **meta)
        if cached is None:
            # A separate cache root means data_root is read-only: never download into it.
            mnist = load_mnist(Path(data_root), download=download and not separate)
            cached = (
                derive_from_images(mnist.x_train, mnist.y_train, "train", workers=workers),
                derive_from_images(mnist.x_test, mnist.y_test, "test", workers=workers),
            )
            save_cache(cache_folder / "derived.npz", cached[0], cached[1], **meta)
        return cached
    raise DataError(f"unknown stroke data kind {kind!r}; use 'official' or 'derived'.")


def render(seq: np.ndarray, size: int = 28) -> str:
    """A `size` x `size` ASCII drawing of one sequence: '#' for pen pixels, '.' elsewhere.

    Points that fall outside the grid are left out (this is for eyes, not for validation).
    """
    grid = [["."] * size for _ in range(size)]
    x = y = 0
    for dx, dy, eos, _eod in np.asarray(seq, dtype=np.int64):
        x, y = x + dx, y + dy
        if not eos and 0 <= x < size and 0 <= y < size:
            grid[y][x] = "#"
    return "\n".join("".join(row) for row in grid)
