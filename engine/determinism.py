"""The `deterministic` run setting: bit-exact results (and so exact resume) on CUDA.

On the CPU, cltui's runs are deterministic as they are (fixed thread count, named random streams;
the resume and kill tests check it bit for bit), so nothing is changed there. On CUDA several
kernels are not by default: cuDNN picks algorithms by timing them (`benchmark`) and some of them
accumulate in a nondeterministic order, cuBLAS splits reductions by workspace, and atomics-based
kernels (index_add_, scatter_add_, ...) add in arrival order. With `deterministic = true` (the
default) a CUDA run sets, before its first CUDA kernel:

- `CUBLAS_WORKSPACE_CONFIG=:4096:8` (unless already set): cuBLAS's documented requirement for
  reproducible GEMMs with CUDA >= 10.2; read when the process creates its cuBLAS handle, so it is
  set before the benchmark's data or the model reach the GPU. Costs 8 × 4 MiB = 32 MiB of GPU memory.
- `torch.backends.cudnn.deterministic = True`, `torch.backends.cudnn.benchmark = False`: no
  autotuning, only deterministic cuDNN algorithms. Costs speed for convolutions (often 10-30 %,
  more for some shapes); the MLPs and the one-layer LSTM here barely use the choice.
- `torch.use_deterministic_algorithms(True, warn_only=True)`: torch's deterministic variant of
  every op that has one (index_add_, scatter_add_, index_put_ with accumulate, ...), usually
  slower, sometimes by several times for scatter-heavy ops. An op without a deterministic CUDA
  implementation warns (into the run's engine.log) instead of failing the run; such a run is not
  bit-exact, and its warning names the op.

`deterministic = false` leaves torch's defaults (faster, not reproducible bit for bit on CUDA).
The flags in force are stored in a CUDA run's environment (`determinism`). Not measured on a GPU here
(none was available to this work); the costs above are the libraries' documented ones.
"""

from __future__ import annotations

import os
from typing import Any

import torch

CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_DETERMINISTIC = ":4096:8"


def apply_determinism(enabled: bool, device: torch.device) -> None:
    """Set (or clear) the deterministic flags for a run on `device` (nothing on the CPU).

    Call before anything runs on the GPU (engine.api.build_trainer does, right after picking the device)."""
    if device.type == "cuda":
        if enabled:
            os.environ.setdefault(CUBLAS_ENV, CUBLAS_DETERMINISTIC)
        torch.backends.cudnn.deterministic = enabled
        torch.backends.cudnn.benchmark = False  # autotuning picks by timing: never reproducible
        torch.use_deterministic_algorithms(enabled, warn_only=True)


def determinism_state() -> dict[str, Any]:
    """The flags torch has now (stored in a CUDA run's environment; the setting is in its config)."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get(CUBLAS_ENV, ""),
    }
