"""Masking + SI (reference §4.4, last bullet): the fixed random unit masks of `masking` plus SI on all weights.

Composed by cooperative inheritance: `Masking` supplies the masked forward and the masks' state,
`Si` the path integral, importance and penalty; every hook and the state dict chain through both
(MRO: MaskingSi → Masking → Si → Method). The reference uses `si_task_loss_only` here and the
default mask_fraction 0.8 when none is given.
"""

from __future__ import annotations

from engine.methods.base import METHODS
from engine.methods.masking import Masking
from engine.methods.si import Si


@METHODS.register("masking_si")
class MaskingSi(Masking, Si):
    """Options: MaskingSiOptions (SI's fields plus mask_fraction)."""
