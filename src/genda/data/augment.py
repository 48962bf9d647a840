"""Batched image augmentation on the training device (no PIL, no per-sample Python).

All random factors are drawn on the CPU from the caller's ``torch.Generator`` and then moved, so a
seed gives the same augmentation on CPU and GPU.  Images are float [B,C,H,W] in [-1, 1].
"""
from __future__ import annotations

import torch


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (hi - lo) + lo).to(device).view(n, 1, 1, 1)


_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma weights (torchvision's rgb_to_grayscale); they sum to 1


def color_jitter(x: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """torchvision-ColorJitter-like brightness/contrast/saturation jitter, per sample.

    With s = strength, each image gets factors b, c, sat ~ U[1-s, 1+s] (drawn in that order) applied in [0, 1]
    space to ``y = (x + 1) / 2``:  ``y1 = b y``;  ``y2 = c (y1 - mean(y1)) + mean(y1)``;  ``y3 = sat (y2 - g) + g``
    with the grey image ``g = w . y2`` (luma weights w, per pixel; 3-channel images only); then clamped to [0, 1].
    Each step is affine in ``y`` and ``w`` sums to 1, so per image ``y3 = M y + o`` with the 3x3 colour matrix
    ``M = c b (sat I + (1 - sat) 1 w^T)`` and the offset ``o = (1 - c) b mean(y)``; the batch is computed as one
    ``baddbmm`` in [-1, 1] space (``2 y3 - 1 = M x + (M 1 + 2 o - 1)``) and one clamp, instead of a dozen
    full-size passes. Shape [B,C,H,W] -> same shape.  strength 0 returns x unchanged.
    """
    if strength <= 0:
        return x
    n, ch, dev = x.shape[0], x.shape[1], x.device
    b = _uniform(n, 1 - strength, 1 + strength, generator, dev).view(n)
    c = _uniform(n, 1 - strength, 1 + strength, generator, dev).view(n)
    mean_y = (x.mean(dim=(1, 2, 3)) + 1) * 0.5                                   # [B], mean of y
    if ch == 3:
        sat = _uniform(n, 1 - strength, 1 + strength, generator, dev).view(n, 1, 1)
        w = torch.tensor(_GRAY, device=dev, dtype=x.dtype).view(1, 1, 3)
        eye = torch.eye(3, device=dev, dtype=x.dtype).unsqueeze(0)
        m = (c * b).view(n, 1, 1) * (sat * eye + (1 - sat) * w)                   # [B, 3, 3]
    else:
        m = (c * b).view(n, 1, 1) * torch.eye(ch, device=dev, dtype=x.dtype).unsqueeze(0)
    offset = m.sum(dim=2) + (2 * (1 - c) * b * mean_y - 1).view(n, 1)            # [B, C]: M 1 + 2 o - 1
    out = torch.baddbmm(offset.unsqueeze(2), m, x.reshape(n, ch, -1))           # [B, C, H*W]
    return out.clamp_(-1, 1).view_as(x)


def hflip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability p. [B,C,H,W] -> same."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)
