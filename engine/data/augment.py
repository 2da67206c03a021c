"""Batched image augmentation on the device, drawn from one named random stream (exactly resumable).

`augment_cifar(x, gen)` applies, per image and in this order, the incremental-CIFAR-100 training
transforms of the loss-of-plasticity reference (spec §10.1), which run after normalisation there:
horizontal flip with p = 0.5, a random 32×32 crop of the image reflect-padded by 4, and a random
rotation by an angle uniform in [0°, 15°] (counter-clockwise, about the centre, nearest-neighbour
sampling, zero fill outside: torchvision's `rotate` defaults).

All random numbers are drawn on the CPU from `gen` (a fixed number per image: one flip, two crop
offsets, one angle), then moved to the device, so the same generator state gives the same batch
on any device and a resumed run continues the same sequence. No per-image Python loop.

`augment_crop_flip(x, gen, fill)` is SupSup's Split-CIFAR-100 training transform (spec §9.2),
torchvision's `RandomCrop(32, padding=4)` then `RandomHorizontalFlip()`: a random 32×32 crop of the
image padded by 4 with a constant, then a flip with p = 0.5. torchvision pads the raw image with
zeros (black) before normalising; here the batch is already normalised, so the caller passes the
per-channel value black has after normalisation, (0 − mean)/std, and the result is the same.
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


def _crop(xp: Tensor, oy: Tensor, ox: Tensor, h: int, w: int) -> Tensor:
    """Per image b, the h×w window of the padded batch `xp` at rows oy[b].., columns ox[b].. (one gather)."""
    b, dev = xp.shape[0], xp.device
    rows = (oy.view(b, 1) + torch.arange(h, device=dev)).view(b, 1, h, 1)
    cols = (ox.view(b, 1) + torch.arange(w, device=dev)).view(b, 1, 1, w)
    bi = torch.arange(b, device=dev).view(b, 1, 1, 1)
    ci = torch.arange(xp.shape[1], device=dev).view(1, -1, 1, 1)
    return xp[bi, ci, rows, cols]


def augment_crop_flip(x: Tensor, gen: torch.Generator, fill: Tensor | None = None, pad: int = 4,
                      flip_p: float = 0.5) -> Tensor:
    """Constant-padded random crop, then horizontal flip, of a float batch [B, C, H, W] (a new tensor).

    `fill` [C]: the padding value per channel (None = 0). Draws per image, in this order: the crop's
    row offset, its column offset (each uniform in 0..2·pad, as torchvision's), then the flip.
    """
    b, c, h, w = x.shape
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < flip_p
    dev = x.device
    oy, ox, flip = oy.to(dev), ox.to(dev), flip.to(dev)
    xp = x.new_zeros(b, c, h + 2 * pad, w + 2 * pad)
    if fill is not None:
        xp += fill.to(device=dev, dtype=x.dtype).view(1, c, 1, 1)
    xp[:, :, pad : pad + h, pad : pad + w] = x
    x = _crop(xp, oy, ox, h, w)
    return torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
