"""Batched image augmentation on the device, drawn from one named random stream (exactly resumable).

`augment_cifar(x, gen)` applies, per image and in this order, the incremental-CIFAR-100 training
transforms of the loss-of-plasticity reference (spec §10.1), which run after normalisation there:
horizontal flip with p = 0.5, a random 32×32 crop of the image reflect-padded by 4, and a random
rotation by an angle uniform in [0°, 15°] (counter-clockwise, about the centre, nearest-neighbour
sampling, zero fill outside: torchvision's `rotate` defaults).

All random numbers are drawn on the CPU from `gen` (a fixed number per image: one flip, two crop
offsets, one angle), then moved to the device, so the same generator state gives the same batch
on any device and a resumed run continues the same sequence. No per-image Python loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def augment_cifar(x: Tensor, gen: torch.Generator, pad: int = 4, max_degrees: float = 15.0,
                  flip_p: float = 0.5) -> Tensor:
    """Flip, reflect-padded random crop and rotation of a float batch [B, C, H, W] (a new tensor)."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=gen) < flip_p
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    angle = torch.rand(b, generator=gen, dtype=torch.float64) * max_degrees
    dev = x.device
    flip, oy, ox = flip.to(dev), oy.to(dev), ox.to(dev)
    # 1. flip: index the width axis backwards where chosen
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
    # 2. crop of the reflect-padded image, gathered with one advanced index
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = (oy.view(b, 1) + torch.arange(h, device=dev)).view(b, 1, h, 1)
    cols = (ox.view(b, 1) + torch.arange(w, device=dev)).view(b, 1, 1, w)
    bi = torch.arange(b, device=dev).view(b, 1, 1, 1)
    ci = torch.arange(x.shape[1], device=dev).view(1, -1, 1, 1)
    x = xp[bi, ci, rows, cols]
    # 3. rotation: output pixel p samples the input at R(-θ)·p (counter-clockwise image rotation);
    #    affine_grid works in normalised coordinates, y pointing down, hence the signs.
    rad = angle * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(device=dev, dtype=x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
