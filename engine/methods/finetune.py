"""Fine-tuning: plain sequential training with no protection against forgetting (a lower bound)."""

from __future__ import annotations

from engine.methods.base import METHODS, Method


@METHODS.register("finetune")
class Finetune(Method):
    """All hooks are the base no-ops."""
