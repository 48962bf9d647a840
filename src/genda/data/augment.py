"""Batched image augmentation on the training device (no PIL, no per-sample Python).

All random factors are drawn on the CPU from the caller's ``torch.Generator`` and then moved, so a
seed gives the same augmentation on CPU and GPU.  Images are float [B,C,H,W] in [-1, 1].
"""
from __future__ import annotations

import torch


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (hi - lo) + lo).to(device).view(n, 1, 1, 1)


def color_jitter(x: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """torchvision-ColorJitter-like brightness/contrast/saturation jitter, per sample.

    With s = strength, each image gets factors b, c, sat ~ U[1-s, 1+s] applied in [0, 1] space:
    x' = blend(x·b, mean(x·b), c) then blend with its grey version by sat; then clamped.
    Shape [B,C,H,W] -> same shape.  strength 0 returns x unchanged.
    """
    if strength <= 0:
        return x
    n, dev = x.shape[0], x.device
    y = (x + 1) * 0.5
    y = y * _uniform(n, 1 - strength, 1 + strength, generator, dev)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * _uniform(n, 1 - strength, 1 + strength, generator, dev) + mean
    if y.shape[1] == 3:
        gray = (0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3])
        y = (y - gray) * _uniform(n, 1 - strength, 1 + strength, generator, dev) + gray
    return y.clamp(0, 1) * 2 - 1


def hflip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability p. [B,C,H,W] -> same."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)
