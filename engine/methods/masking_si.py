"""Masking + SI (reference §4.4, last bullet): the fixed random unit masks of `masking` plus SI on all weights.

Composed by cooperative inheritance: `Masking` supplies the masked forward and the masks' state,
`Si` the path integral, importance and penalty; every hook and the state dict chain through both
(MRO: MaskingSi → Masking → Si → Method). The reference uses `si_task_loss_only` here and the
default mask_fraction 0.8 when none is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.methods.masking import Masking, MaskingOptions
from engine.methods.si import Si, SiOptions
from engine.registry import METHODS


@dataclass(frozen=True)
class MaskingSiOptions(SiOptions, MaskingOptions):
    """Masking plus SI on all weights (spec §4.4): SI's options and mask_fraction."""

    def __post_init__(self) -> None:
        SiOptions.__post_init__(self)
        MaskingOptions.__post_init__(self)


@METHODS.register(MaskingSiOptions)
class MaskingSi(Masking, Si):
    """Masking's masked forward and masks, SI's path integral and penalty."""
