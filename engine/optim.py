"""The optimizer factory: SGD (momentum, Nesterov), Adam, AdamW and RMSprop from a TrainingConfig.

The learning rate set here is the base rate; the loop overwrites every group's lr before each step
from the schedule (engine/schedules.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from engine.config import TrainingConfig


def make_optimizer(params: Iterable[Tensor], tr: TrainingConfig) -> torch.optim.Optimizer:
    """A fresh optimizer over `params` as `tr` describes (TrainingConfig has validated every value)."""
    params = list(params)
    if tr.optimizer == "adam":
        return torch.optim.Adam(params, lr=tr.lr, betas=(tr.adam_beta1, tr.adam_beta2), eps=tr.eps,
                                weight_decay=tr.weight_decay)
    if tr.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=tr.lr, betas=(tr.adam_beta1, tr.adam_beta2), eps=tr.eps,
                                 weight_decay=tr.weight_decay)
    if tr.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=tr.lr, alpha=tr.rmsprop_alpha, eps=tr.eps, momentum=tr.momentum,
                                   weight_decay=tr.weight_decay)
    if tr.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tr.lr, momentum=tr.momentum, nesterov=tr.nesterov,
                               weight_decay=tr.weight_decay)
    raise ValueError(f"unknown optimizer {tr.optimizer!r}")  # pragma: no cover - the schema rejects it first
