"""Benchmarks: task sequences held as tensors on the run's device (see base.py for the interface).

MODULES lists every module that registers a benchmark; `engine.catalog.load_all()` imports them.
A new benchmark is one file here (options dataclass + `@BENCHMARKS.register(...)` builder) plus its
name in this tuple.
"""

MODULES = ("split_mnist", "permuted_mnist", "ssmnist", "incremental_cifar100", "split_cifar100")
