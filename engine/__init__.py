"""cltui's PyTorch engine: benchmarks, models, CL methods, the training loop and the run store.

Must not import textual, typer or rich (checked by tests/test_boundary.py). Importing this package
runs nothing and loads no torch; the torch-free modules (config, events, store, metrics, presets,
errors, registry) are what the UI talks to.
"""

__version__ = "0.1.0"
