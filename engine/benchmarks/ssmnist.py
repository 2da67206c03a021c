"""Split Sequential Stroke-MNIST (spec §1-§2): sequences of m pen-stroke digits, one digit pair per task.

The task arrays come from `engine.data.ssmnist.build_tasks` (the reference's seed chain, partitions
and draw order); this module moves them to the device and serves batches:

* x is stored as int8 [n, L, 4] (L = the task's longest sequence) and turned into float32 per batch
  with the raw integer values `dx dy eos eod`: no normalisation, as in the reference (§1.2);
* each batch is cut to its own longest sequence, so the LSTM steps no further than needed (the
  network is causal and reads out at lengths − 1, so results are the same as with full padding);
* with `input_task_identity` the one-hot task id is appended at every step (4 → 4 + T features);
* heads: 'multi' gives task t the units [C·t, C·t + C); 'single' shares C units across tasks
  (from-scratch runs). C = 2 with two_classes, else 2^m.

Stroke data and its cache: `load_strokes` caches under `<root>/stroke_mnist/`. When the data root is
read-only (e.g. a shared offline copy of MNIST), the cache goes to a writable user cache instead
(`$CLTUI_DATA_DIR`, else `$XDG_CACHE_HOME/cltui/data`, else `~/.cache/cltui/data`) while MNIST (and a
local official archive) is still read from the data root; see `load_stroke_sets`.

Imports torch; never textual/typer/rich.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from engine.benchmarks.base import Batch, Benchmark, InputSpec, heads
from engine.data.paths import default_data_dir
from engine.data.ssmnist import TaskArrays, build_tasks
from engine.data.strokes import StrokeSet, load_strokes
from engine.errors import DataError
from engine.registry import BENCHMARKS
from engine.schema import opt

STROKE_DIR = "stroke_mnist"


def _writable(path: Path) -> bool:
    """True if `path` (or, when it does not exist yet, its nearest existing parent) may be written.

    Besides os.access (false on read-only mounts), a folder without any write permission bit counts
    as read-only even for root, who could write it anyway: that is how shared data is marked.
    """
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    mode = path.stat().st_mode
    return os.access(path, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def cache_root_for(data_root: Path) -> Path:
    """Where the stroke cache is written: the data root if writable, else a per-user cache root."""
    if _writable(Path(data_root) / STROKE_DIR):
        return Path(data_root)
    fallback = default_data_dir()
    if fallback.absolute() == Path(data_root).absolute() or not _writable(fallback):
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        fallback = Path(cache) / "cltui" / "data"
    if not _writable(fallback):
        raise DataError(f"neither {data_root} nor {fallback} is writable for the stroke cache; "
                        "set CLTUI_DATA_DIR to a writable folder.")
    return fallback


def load_stroke_sets(kind: str, data_root: Path, source_path: str = "") -> tuple[StrokeSet, StrokeSet]:
    """(train, test) strokes of `kind`, read from `data_root`, cached where writes are allowed."""
    return load_strokes(kind, Path(data_root), Path(source_path) if source_path else None,
                        cache_root=cache_root_for(Path(data_root)))


class SequenceTask:
    """One SSMNIST task on the device: int8 inputs, lengths and labels per split ('train', 'test', 'val')."""

    def __init__(self, name: str, arrays: TaskArrays, device: torch.device, task_id: int | None,
                 num_tasks: int) -> None:
        self.name = name
        self._x: dict[str, Tensor] = {}
        self._lengths: dict[str, Tensor] = {}
        self._labels: dict[str, Tensor] = {}
        self._lengths_host: dict[str, np.ndarray] = {}  # to cut a host-indexed batch without a device sync
        longest = max(int(s.lengths.max()) if len(s) else 1 for s in (arrays.train, arrays.test, arrays.val))
        for split in ("train", "test", "val"):
            s = getattr(arrays, split)
            # Keep only up to the task's longest sequence: the rest of the padding is zeros.
            self._x[split] = torch.from_numpy(np.ascontiguousarray(s.x[:, :longest])).to(device)
            self._lengths[split] = torch.from_numpy(s.lengths).to(device)
            self._lengths_host[split] = np.asarray(s.lengths)
            self._labels[split] = torch.from_numpy(s.labels).to(device)
        self.max_length = longest
        self._task_code: Tensor | None = None
        if task_id is not None:  # input_task_identity: one-hot id, appended at every step
            self._task_code = torch.zeros(num_tasks, device=device)
            self._task_code[task_id] = 1.0

    def size(self, split: str) -> int:
        return int(self._labels[split].shape[0])

    def get(self, split: str, idx: Tensor) -> Batch:
        # Cut to the batch's longest sequence (causal net, same read-out). Host indices (the training
        # samplers') give that length on the host; device indices (evaluation) cost one device sync.
        if idx.device.type == "cpu":
            steps = int(self._lengths_host[split][idx.numpy()].max()) if idx.numel() else 1
            idx = idx.to(self._lengths[split].device, non_blocking=True)
            lengths = self._lengths[split][idx]
        else:
            lengths = self._lengths[split][idx]
            steps = int(lengths.max()) if idx.numel() else 1
        x = self._x[split][:, :steps][idx].float()
        if self._task_code is not None:
            code = self._task_code.expand(x.shape[0], steps, -1)
            x = torch.cat([x, code], dim=2)
        return Batch(x, self._labels[split][idx], lengths)


@dataclass(frozen=True)
class SsmnistOptions:
    """Split Sequential Stroke-MNIST (Ehret et al. 2021; spec §1): m pen-stroke digits per sequence."""

    m: int = opt(1, "digits per sequence (--ssmnist_seq_len); sequences are up to ~117·m steps")
    two_classes: bool = opt(True, "label = 'pattern in the task's random half' (2 classes); False = the 2^m patterns")
    num_tasks: int = opt(5, "digit-pair tasks: (0,1), (2,3), ... up to 5; more shuffle the 45 pairs (the reference default is 45)")
    data_random_seed: int = opt(42, "seed of the task family (pairs, partitions, samples), independent of the run seed")
    source: Literal["derived", "official"] = opt("derived", "'official' = de Jong's stroke archive; 'derived' = strokes traced here from MNIST images")
    source_path: str = opt("", "official only: path of sequences.tar.gz or sequences/ ('' = look in <data root>/stroke_mnist, else download)")
    n_train: int = opt(12000, "training sequences per task")
    n_test: int = opt(2000, "test sequences per task")
    n_val: int = opt(1000, "validation sequences per task (drawn last, so they never change train/test)")
    input_task_identity: bool = opt(False, "append the one-hot task id to every step's input (4 → 4+T features)")
    heads: Literal["multi", "single"] = opt("multi", "'multi' = one head per task; 'single' = one head shared by all tasks (from-scratch runs)")

    def __post_init__(self) -> None:
        # Messages start with the field name: engine.schema.build puts "benchmark." in front.
        if not 1 <= self.m <= 10:
            raise ValueError(f"m = {self.m!r} must be between 1 and 10")
        if not 1 <= self.num_tasks <= 45:
            raise ValueError(f"num_tasks = {self.num_tasks!r} must be between 1 and 45")
        if not 0 <= self.data_random_seed < 2**32:  # numpy.random.RandomState's range
            raise ValueError(f"data_random_seed = {self.data_random_seed!r} must be 0 to 2^32 - 1")
        for n in ("n_train", "n_test"):
            if getattr(self, n) < 1:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 1")
        if self.n_val < 0:
            raise ValueError(f"n_val = {self.n_val!r} must be >= 0")
        from engine.schema import check_fits

        # Every task's sequences are held at once, int8 [n, longest, 4] plus int64 lengths and labels;
        # a lower bound counts one step per digit (real digits take tens of steps).
        per_task = float(self.n_train + self.n_test + self.n_val) * (4 * self.m + 16)
        check_fits("n_train", self.n_train, self.num_tasks * per_task, f"{self.num_tasks} tasks of stroke sequences")


@BENCHMARKS.register(SsmnistOptions)
def build_ssmnist(opts: SsmnistOptions, device: torch.device, data_dir: Path, seed: int) -> Benchmark:
    train, test = load_stroke_sets(opts.source, Path(data_dir), opts.source_path)
    family = build_tasks(train, test, opts.m, opts.two_classes, data_random_seed=opts.data_random_seed,
                         num_tasks=opts.num_tasks, n_train=opts.n_train, n_test=opts.n_test, n_val=opts.n_val)
    n_classes = 2 if opts.two_classes else 2**opts.m
    tasks = [
        SequenceTask(f"{a}/{b}", arr, device, t if opts.input_task_identity else None, opts.num_tasks)
        for t, arr in enumerate(family) for a, b in [arr.digits]
    ]
    scenario = "task" if opts.heads == "multi" else "domain"
    cols, n_out = heads(scenario, opts.num_tasks, n_classes, n_classes, device)
    n_features = 4 + (opts.num_tasks if opts.input_task_identity else 0)
    spec = InputSpec((max(t.max_length for t in tasks), n_features), n_out, sequential=True)
    what = ("de Jong's official pen-stroke MNIST" if train.source == "official"
            else "strokes derived from MNIST images (not de Jong's official archive)")
    source = f"SSMNIST m={opts.m} from {what}"
    info = {
        "stroke_source": train.source, "m": opts.m, "two_classes": opts.two_classes, "classes_per_task": n_classes,
        "task_seeds": [a.rseed for a in family],
        "partitions": [a.partition.tolist() if a.partition is not None else None for a in family],
        "max_length": spec.input_shape[0], "input_features": n_features, "heads": opts.heads,
    }
    return Benchmark(tasks, cols, spec, source, info)
