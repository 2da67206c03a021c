"""Benchmarks: task sequences held as tensors on the run's device (see base.py for the interface)."""
