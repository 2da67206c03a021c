"""Hyperparameter dataclasses of every CL method, registered by method name (torch-free).

Each method's implementation (`engine/methods/<name>.py`) takes its dataclass from here; keeping
them torch-free lets the CLI and TUI validate presets and overrides without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.registry import Registry

METHOD_OPTIONS: Registry[type] = Registry("method")


@METHOD_OPTIONS.register("finetune")
@dataclass(frozen=True)
class FinetuneOptions:
    """Plain sequential training; no options."""


@METHOD_OPTIONS.register("multitask")
@dataclass(frozen=True)
class MultitaskOptions:
    """Joint training on all tasks for steps_per_task × num_tasks steps; no options."""


@METHOD_OPTIONS.register("scratch")
@dataclass(frozen=True)
class ScratchOptions:
    """A freshly initialised network for every task; no options."""
