"""Permuted-MNIST: every task is all of MNIST under its own fixed pixel permutation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.benchmarks.base import BENCHMARKS, Benchmark, ImageTask, InputSpec, heads
from engine.benchmarks.mnist_source import mnist_arrays
from engine.benchmarks.options import PermutedMnistOptions


@BENCHMARKS.register("permuted_mnist")
def build_permuted_mnist(opts: PermutedMnistOptions, device: torch.device, data_dir: Path, seed: int) -> Benchmark:
    m, source = mnist_arrays(opts.data, data_dir)
    images = {
        "train": torch.from_numpy(m.x_train.reshape(len(m.x_train), -1).copy()).to(device),
        "test": torch.from_numpy(m.x_test.reshape(len(m.x_test), -1).copy()).to(device),
    }
    n_train = len(m.x_train) if opts.train_per_task < 0 else min(opts.train_per_task, len(m.x_train))
    index = {"train": torch.arange(n_train, device=device), "test": torch.arange(len(m.x_test), device=device)}
    labels = {"train": torch.from_numpy(m.y_train[:n_train]).to(device), "test": torch.from_numpy(m.y_test).to(device)}
    # Permutations depend only on permutation_seed, so every run seed sees the same task sequence.
    rs = np.random.RandomState(opts.permutation_seed)
    tasks = []
    for t in range(opts.num_tasks):
        perm = rs.permutation(784)
        if t == 0 and not opts.permute_first:
            perm = np.arange(784)
        tasks.append(ImageTask(f"perm{t}", images, index, labels, torch.from_numpy(perm).to(device)))
    cols, n_out = heads(opts.scenario, opts.num_tasks, 10, 10, device)
    return Benchmark(tasks, cols, InputSpec((784,), n_out), source, {"scenario": opts.scenario})
