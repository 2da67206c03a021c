"""Hyperparameter dataclasses of every model, registered by model name (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.registry import Registry
from engine.schema import opt

MODEL_OPTIONS: Registry[type] = Registry("model")


@MODEL_OPTIONS.register("mlp")
@dataclass(frozen=True)
class MlpOptions:
    hidden: list[int] = opt([400, 400], "widths of the hidden layers")
    activation: Literal["relu", "tanh"] = opt("relu", "hidden nonlinearity")

    def __post_init__(self) -> None:
        if any(h < 1 for h in self.hidden):
            raise ValueError("hidden widths must be positive")


@MODEL_OPTIONS.register("lstm")
@dataclass(frozen=True)
class LstmOptions:
    hidden: int = opt(256, "LSTM units (one layer; read-out at the last unpadded step)")
    impl: Literal["auto", "fast", "reference"] = opt("auto", "'fast' = torch's fused LSTM (cuDNN on GPU); 'reference' = a step-by-step Python loop; 'auto' = fast unless the masks are not 0/1")

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError("hidden must be positive")
