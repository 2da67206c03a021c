"""Fine-tuning: plain sequential training with no protection against forgetting (a lower bound)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.methods.base import Method
from engine.registry import METHODS


@dataclass(frozen=True)
class FinetuneOptions:
    """Plain sequential training; no options."""


@METHODS.register(FinetuneOptions)
class Finetune(Method):
    """All hooks are the base no-ops."""
