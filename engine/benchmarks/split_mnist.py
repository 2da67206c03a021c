"""Split-MNIST: 5 tasks of 2 digits, (0,1), (2,3), ..., task-, domain- or class-incremental."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.benchmarks.base import BENCHMARKS, Benchmark, ImageTask, InputSpec, heads
from engine.benchmarks.mnist_source import mnist_arrays
from engine.benchmarks.options import SplitMnistOptions


@BENCHMARKS.register("split_mnist")
def build_split_mnist(opts: SplitMnistOptions, device: torch.device, data_dir: Path, seed: int) -> Benchmark:
    m, source = mnist_arrays(opts.data, data_dir)
    images = {
        "train": torch.from_numpy(m.x_train.reshape(len(m.x_train), -1).copy()).to(device),
        "test": torch.from_numpy(m.x_test.reshape(len(m.x_test), -1).copy()).to(device),
    }
    labels_np = {"train": m.y_train, "test": m.y_test}
    tasks = []
    for t in range(opts.num_tasks):
        a, b = 2 * t, 2 * t + 1
        index, labels = {}, {}
        for split, y in labels_np.items():
            ids = np.flatnonzero((y == a) | (y == b))
            if split == "train" and opts.train_per_task > 0:
                ids = ids[: opts.train_per_task]
            # Class-incremental keeps the digit as label; otherwise the label is the place in the pair.
            lab = y[ids] if opts.scenario == "class" else (y[ids] == b).astype(np.int64)
            index[split] = torch.from_numpy(ids).to(device)
            labels[split] = torch.from_numpy(lab.astype(np.int64)).to(device)
        tasks.append(ImageTask(f"{a}/{b}", images, index, labels))
    cols, n_out = heads(opts.scenario, opts.num_tasks, 2, 10, device)
    return Benchmark(tasks, cols, InputSpec((784,), n_out), source, {"scenario": opts.scenario})
