"""SSMNIST task construction (spec §1.3-1.5): seed chain, partitions, pools, balance, labels, layout.

Uses synthetic stroke sets whose rows encode (digit, index), so every output row can be traced
back to the stroke digit it came from; no files needed.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.ssmnist import (
    TRAIN_POOL_END,
    build_task,
    build_tasks,
    partition,
    patterns,
    task_family,
    task_seeds,
)
from engine.data.strokes import StrokeSet

# Spec §1.5: sorted two-class partitions for tasks 0-4 from seeds [15795, 860, 76820, 54886, 6265].
PARTITIONS = {
    2: [{2, 3}, {2, 3}, {0, 3}, {1, 2}, {0, 3}],
    3: [{3, 4, 5, 7}, {0, 2, 4, 7}, {0, 1, 4, 6}, {1, 2, 5, 7}, {1, 2, 3, 4}],
    4: [
        {3, 4, 6, 8, 9, 10, 12, 15}, {0, 6, 7, 8, 9, 10, 13, 15}, {0, 2, 3, 4, 5, 8, 14, 15},
        {0, 1, 2, 7, 10, 11, 12, 15}, {0, 1, 2, 3, 4, 5, 11, 12},
    ],
}  # fmt: skip


def _synthetic(n: int, split: str, seed: int) -> StrokeSet:
    """n digits with random labels; digit i has 2 + i % 9 rows: (label, i % 100, 0, 0)..., 0 0 1 1."""
    labels = np.random.RandomState(seed).randint(10, size=n)
    seqs = []
    for i, d in enumerate(labels):
        s = np.zeros((2 + i % 9, 4), dtype=np.int8)
        s[:-1, 0], s[:-1, 1] = d, i % 100
        s[-1] = (0, 0, 1, 1)
        seqs.append(s)
    return StrokeSet.from_sequences(seqs, labels, split, "derived")


@pytest.fixture(scope="module")
def strokes() -> tuple[StrokeSet, StrokeSet]:
    return _synthetic(60000, "train", 0), _synthetic(10000, "test", 1)


def test_seed_chain() -> None:
    assert task_seeds(42, 5) == [15795, 860, 76820, 54886, 6265]
    assert [t.digits for t in task_family(42, 5)] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]


def test_more_than_five_tasks_shuffle_the_45_pairs_first() -> None:
    family = task_family(42, 45)
    assert sorted(t.digits for t in family) == [(i, j) for i in range(10) for j in range(i + 1, 10)]
    rs = np.random.RandomState(42)
    rs.shuffle(np.arange(45))  # the shuffle comes before the seeds
    assert [t.rseed for t in family[:3]] == [rs.randint(100000) for _ in range(3)]
    assert [t.digits for t in task_family(42, 7)] == [t.digits for t in family[:7]]


@pytest.mark.parametrize("m", [2, 3, 4])
def test_partition_table(m: int) -> None:
    got = [set(partition(np.random.RandomState(s), m).tolist()) for s in task_seeds()]
    assert got == PARTITIONS[m]


def test_partition_m1_draws_nothing() -> None:
    rs, fresh = np.random.RandomState(7), np.random.RandomState(7)
    assert partition(rs, 1).tolist() == [1]
    assert rs.randint(1 << 30) == fresh.randint(1 << 30)


def test_patterns_are_lexicographic() -> None:
    assert patterns(2).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert patterns(3)[6].tolist() == [1, 1, 0]


@pytest.mark.parametrize("m,two_classes", [(1, False), (2, False), (3, True), (4, True)])
def test_task_layout_pools_balance_and_labels(strokes, m: int, two_classes: bool) -> None:
    train_set, test_set = strokes
    a, b = 2, 7
    task = build_task(train_set, test_set, (a, b), m, two_classes, rseed=860, n_train=1003, n_test=50, n_val=21)
    assert task.pad_to == 117 * m and task.num_classes == (2 if two_classes else 2**m)
    for name, split, source, n in (
        ("train", task.train, train_set, 1003), ("test", task.test, test_set, 50), ("val", task.val, train_set, 21)
    ):  # fmt: skip
        assert split.x.shape == (n, 117 * m, 4) and split.x.dtype == np.int8
        ids = split.sample_ids
        if name == "train":
            assert ids.max() < TRAIN_POOL_END
        if name == "val":
            assert ids.min() >= TRAIN_POOL_END
        # Balanced over patterns, grouped by pattern, the first n mod 2^m patterns one larger.
        counts = np.bincount(split.patterns, minlength=2**m)
        assert counts.tolist() == [n // 2**m + (k < n % 2**m) for k in range(2**m)]
        assert (np.diff(split.patterns) >= 0).all()
        # Each position holds a digit of the class its pattern bit asks for ('0' -> a, '1' -> b).
        want = np.where(patterns(m)[split.patterns] == 0, a, b)
        assert (source.labels[ids] == want).all()
        # Concatenation as-is: m eod flags, the last on the final real step; zeros after it.
        assert split.lengths.tolist() == source.lengths[ids].sum(axis=1).tolist()
        assert (split.x[:, :, 3].sum(axis=1) == m).all()
        assert (split.x[np.arange(n), split.lengths - 1] == [0, 0, 1, 1]).all()
        t = np.arange(117 * m)[None, :]
        assert not split.x[t >= split.lengths[:, None]].any()
        assert np.array_equal(split.x[0, : split.lengths[0]], np.concatenate([source.sequence(i) for i in ids[0]]))
        expected = np.isin(split.patterns, task.partition).astype(int) if two_classes else split.patterns
        assert split.labels.tolist() == expected.tolist()
    if two_classes:
        assert set(np.unique(task.train.labels)) == {0, 1}
        assert task.partition.tolist() == sorted(partition(np.random.RandomState(860), m).tolist())


def test_m1_two_classes_changes_nothing(strokes) -> None:
    with_flag = build_task(*strokes, (4, 5), 1, True, rseed=3, n_train=40, n_test=10, n_val=10)
    without = build_task(*strokes, (4, 5), 1, False, rseed=3, n_train=40, n_test=10, n_val=10)
    assert with_flag.num_classes == without.num_classes == 2
    for s1, s2 in ((with_flag.train, without.train), (with_flag.val, without.val)):
        assert np.array_equal(s1.sample_ids, s2.sample_ids) and np.array_equal(s1.labels, s2.labels)


def test_generation_order_partition_train_test_val(strokes) -> None:
    """The splits come from one RandomState in order; a bigger val set leaves train and test alone."""
    small = build_task(*strokes, (0, 1), 2, True, rseed=15795, n_train=30, n_test=10, n_val=5)
    big = build_task(*strokes, (0, 1), 2, True, rseed=15795, n_train=30, n_test=10, n_val=50)
    assert np.array_equal(small.train.sample_ids, big.train.sample_ids)
    assert np.array_equal(small.test.sample_ids, big.test.sample_ids)
    # Val draws start where test's end; both val sizes begin with pattern 0's first two samples.
    assert np.array_equal(small.val.sample_ids[:2], big.val.sample_ids[:2])
    # First draw after the partition: randint(len(pool of digit 0 in the train pool)).
    rs = np.random.RandomState(15795)
    partition(rs, 2)
    pool0 = np.flatnonzero(strokes[0].labels[:TRAIN_POOL_END] == 0)
    assert small.train.sample_ids[0, 0] == pool0[rs.randint(len(pool0))]


def test_full_size_family_and_padding_options(strokes) -> None:
    tasks = build_tasks(*strokes, m=2, two_classes=True, n_val=100)
    assert [t.digits for t in tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert [set(t.partition.tolist()) for t in tasks] == PARTITIONS[2]
    first = tasks[0]
    assert (len(first.train), len(first.test), len(first.val)) == (12000, 2000, 100)
    tight = build_task(*strokes, (0, 1), 2, False, rseed=1, n_train=64, n_test=8, n_val=8, pad_to=20)
    assert tight.train.x.shape == (64, 20, 4)  # synthetic digits have at most 10 rows
    no_val = build_task(*strokes, (0, 1), 3, False, rseed=1, n_train=16, n_test=8, n_val=0)
    assert no_val.val.x.shape == (0, 117 * 3, 4) and no_val.val.sample_ids.shape == (0, 3)
    with pytest.raises(ValueError):
        build_task(*strokes, (0, 1), 2, False, rseed=1, n_train=64, n_test=8, n_val=8, pad_to=5)
