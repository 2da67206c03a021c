"""Split Sequential Stroke-MNIST (SSMNIST): the task family of Ehret et al. (ICLR 2021) as numpy arrays.

What lives here (spec: shared/specs/reference-experiments.md §1.3-1.5):
* `task_family` / `task_seeds`: the digit pair and private seed of each task, drawn from the data
  RNG exactly as the reference does (seed 42 gives seeds [15795, 860, 76820, 54886, 6265]);
* `partition`: the random two-class grouping of the 2^m digit patterns;
* `build_task`: one task's train / test / val sequences from a (train, test) pair of `StrokeSet`s,
  and `build_tasks` for the whole family.

Random draws follow the reference's order and calls (legacy `numpy.random.RandomState`): the
partition (`choice(2^m, 2^(m-1), replace=False)`, only with two classes and m > 1), then train,
then test, then val; within a split, pattern by pattern in lexicographic order, sample by sample,
digit position by position, one scalar `randint(len(pool))` each (uniform, with replacement). This
follows the reference handler's code as published (mariacer/cl_in_rnns, data/timeseries/
seq_smnist.py); bit-exact equality with its sample ids has not been checked against a run of it,
because its data pickle is not available here.

Numpy only: must not import torch (benchmarks move the arrays to the device). Nothing runs at
import time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.strokes import StrokeSet
from engine.errors import DataError

REFERENCE_DIGIT_STEPS = 117
"""The longest official digit; the reference pads every task to 117 * m steps."""
TRAIN_POOL_END = 50000
"""Train pool: stroke train indices [0, 50000); val pool: [50000, end); test pool: the test set."""
FIRST_FIVE_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


@dataclass(frozen=True)
class TaskSpec:
    """One task of the family: which two digits, and the seed of its private RandomState."""

    digits: tuple[int, int]
    rseed: int


def task_family(data_random_seed: int = 42, num_tasks: int = 5) -> list[TaskSpec]:
    """The digit pairs and seeds of the first `num_tasks` tasks, from RandomState(data_random_seed).

    Up to 5 tasks use the pairs (0,1), (2,3), (4,5), (6,7), (8,9) and draw no shuffle. More tasks
    (at most 45) shuffle the 45 pairs (i < j, in lexicographic order) with the data RNG first, as the
    reference does; then each task's seed is `randint(100000)` from that same RNG, in task order.
    """
    if not 1 <= num_tasks <= 45:
        raise DataError(f"num_tasks is {num_tasks}; SSMNIST has 1 to 45 digit-pair tasks.")
    rs = np.random.RandomState(data_random_seed)
    if num_tasks <= 5:
        pairs = list(FIRST_FIVE_PAIRS[:num_tasks])
    else:
        all_pairs = [(i, j) for i in range(10) for j in range(i + 1, 10)]
        order = np.arange(len(all_pairs))
        rs.shuffle(order)
        pairs = [all_pairs[i] for i in order[:num_tasks]]
    return [TaskSpec(digits=p, rseed=int(rs.randint(100000))) for p in pairs]


def task_seeds(data_random_seed: int = 42, num_tasks: int = 5) -> list[int]:
    """The per-task `rseed`s (see `task_family`)."""
    return [t.rseed for t in task_family(data_random_seed, num_tasks)]


def partition(rs: np.random.RandomState, m: int) -> np.ndarray:
    """Sorted int64 pattern indices labelled 1 in two-class mode; m == 1 gives [1] and draws nothing."""
    if m == 1:
        return np.array([1], dtype=np.int64)
    return np.sort(rs.choice(2**m, 2 ** (m - 1), replace=False)).astype(np.int64)


def patterns(m: int) -> np.ndarray:
    """int64 [2^m, m]: all binary strings of length m in lexicographic order (row k = pattern k).

    Column j is the j-th digit in time; 0 stands for the task's first digit, 1 for its second.
    """
    k = np.arange(2**m)
    return (k[:, None] >> np.arange(m - 1, -1, -1)[None, :]) & 1


@dataclass(frozen=True, eq=False)
class SplitArrays:
    """One split of one task; samples are grouped by pattern (not shuffled), as in the reference."""

    x: np.ndarray
    """int8 [n, pad_to, 4]: `dx dy eos eod` rows of the m digits back to back, then zeros."""
    lengths: np.ndarray
    """int64 [n]: unpadded length (the last real step carries the m-th eod)."""
    labels: np.ndarray
    """int64 [n]: the class (pattern index k, or 0/1 in two-class mode)."""
    patterns: np.ndarray
    """int64 [n]: the raw pattern index k of each sample, whatever the labelling."""
    sample_ids: np.ndarray
    """int64 [n, m]: which stroke digit (index into the split's StrokeSet) fills each position."""

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class TaskArrays:
    """Everything one SSMNIST task needs: its three splits and how they were made."""

    train: SplitArrays
    test: SplitArrays
    val: SplitArrays
    digits: tuple[int, int]
    m: int
    """Digits per sequence (`--ssmnist_seq_len`)."""
    two_classes: bool
    partition: np.ndarray | None
    """Sorted pattern indices labelled 1 (two-class mode only), else None."""
    num_classes: int
    pad_to: int
    rseed: int


def _digit_pools(strokes: StrokeSet, index: np.ndarray, digits: tuple[int, int], name: str) -> list[np.ndarray]:
    """For each of the two digits, the indices (ascending) among `index` with that label."""
    pools = [index[strokes.labels[index] == d] for d in digits]
    for d, pool in zip(digits, pools):
        if len(pool) == 0:
            raise DataError(f"the {name} pool has no digit {d}; the stroke data is incomplete.")
    return pools


def _sample(
    rs: np.random.RandomState, pools: list[np.ndarray], m: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(pattern k [n], stroke ids [n, m]) for one split, balanced over patterns, reference draw order."""
    num = 2**m
    counts = [n // num + (1 if k < n % num else 0) for k in range(num)]
    pats = patterns(m)
    sizes = (len(pools[0]), len(pools[1]))
    randint = rs.randint
    # One scalar draw per digit position, in the reference's loop order; ~1 us each, so 60k draws
    # (m = 4, 15k samples) cost under 0.1 s. A vector draw would reorder the stream.
    local = [randint(sizes[bit]) for k in range(num) for _ in range(counts[k]) for bit in pats[k]]
    ks = np.repeat(np.arange(num, dtype=np.int64), counts)
    bits = pats[ks]
    local_ids = np.array(local, dtype=np.int64).reshape(n, m)
    ids = np.empty((n, m), dtype=np.int64)
    first = bits == 0
    ids[first] = pools[0][local_ids[first]]
    ids[~first] = pools[1][local_ids[~first]]
    return ks, ids


def _assemble(strokes: StrokeSet, ids: np.ndarray, pad_to: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the digits of each row of `ids` [n, m] into x int8 [n, pad_to, 4] and lengths."""
    n, m = ids.shape
    seg_len = strokes.lengths[ids]  # [n, m]
    lengths = seg_len.sum(axis=1)
    if n and lengths.max() > pad_to:
        raise ValueError(f"pad_to={pad_to} is shorter than the longest sequence ({lengths.max()} steps)")
    x = np.zeros((n, pad_to, 4), dtype=np.int8)
    flat_len = seg_len.ravel()
    seg = np.repeat(np.arange(n * m), flat_len)  # the segment each output row comes from
    seg_first = np.cumsum(flat_len) - flat_len  # where each segment starts in the flat row list
    within = np.arange(len(seg)) - seg_first[seg]
    t0 = (np.cumsum(seg_len, axis=1) - seg_len).ravel()  # segment start time inside its sample
    x[seg // m, t0[seg] + within] = strokes.steps[strokes.offsets[ids.ravel()][seg] + within]
    return x, lengths


def build_task(
    strokes_train: StrokeSet,
    strokes_test: StrokeSet,
    digits: tuple[int, int],
    m: int,
    two_classes: bool,
    rseed: int,
    n_train: int = 12000,
    n_test: int = 2000,
    n_val: int = 1000,
    pad_to: int | None = None,
) -> TaskArrays:
    """One SSMNIST task (spec §1.4), all randomness from a private RandomState(rseed).

    `pad_to` (time steps) defaults to m * max(117, the longest digit in either StrokeSet): the
    reference's 117 * m for the official data, and never too short for derived digits, which may be
    longer. Pass a smaller value (>= the task's longest sequence) to save memory; padding is zeros
    and the unpadded `lengths` say where each sequence ends.
    """
    if m < 1:
        raise DataError(f"the number of digits per sequence is {m}; it must be at least 1.")
    digits = (int(digits[0]), int(digits[1]))
    if pad_to is None:
        longest = max(REFERENCE_DIGIT_STEPS, strokes_train.max_length, strokes_test.max_length)
        pad_to = longest * m
    rs = np.random.RandomState(rseed)
    part = partition(rs, m) if two_classes else None

    n_all = len(strokes_train)
    pools = {
        "train": (strokes_train, np.arange(min(TRAIN_POOL_END, n_all))),
        "test": (strokes_test, np.arange(len(strokes_test))),
        "val": (strokes_train, np.arange(TRAIN_POOL_END, n_all)),
    }
    splits = {}
    for name, n in (("train", n_train), ("test", n_test), ("val", n_val)):  # the reference's order
        strokes, index = pools[name]
        # An empty split (e.g. n_val=0) draws nothing and needs no pool.
        digit_pools = _digit_pools(strokes, index, digits, name) if n else [index[:0], index[:0]]
        ks, ids = _sample(rs, digit_pools, m, n)
        x, lengths = _assemble(strokes, ids, pad_to)
        labels = np.isin(ks, part).astype(np.int64) if part is not None else ks.copy()
        splits[name] = SplitArrays(x, lengths, labels, ks, ids)
    return TaskArrays(
        train=splits["train"], test=splits["test"], val=splits["val"], digits=digits, m=m,
        two_classes=two_classes, partition=part, num_classes=2 if two_classes else 2**m,
        pad_to=pad_to, rseed=int(rseed),
    )  # fmt: skip


def build_tasks(
    strokes_train: StrokeSet,
    strokes_test: StrokeSet,
    m: int,
    two_classes: bool,
    data_random_seed: int = 42,
    num_tasks: int = 5,
    **sizes: int,
) -> list[TaskArrays]:
    """The whole family (spec §1.5): `build_task` for each `task_family` entry; `sizes` go to it."""
    return [
        build_task(strokes_train, strokes_test, t.digits, m, two_classes, t.rseed, **sizes)
        for t in task_family(data_random_seed, num_tasks)
    ]
