"""Cheap batched, on-device image augmentation for self-ensembling (no PIL, no per-sample Python loop).

All functions take images ``x`` [B, C, H, W] in [-1, 1] and an explicit ``torch.Generator`` living on
``x.device`` (so a fixed seed reproduces the draws), and return a tensor of the same shape. Every sample
gets its own random parameters.

* :func:`random_affine`: :math:`\\theta_i = [\\,I + \\sigma_A N_i \\mid t_i\\,]`, ``N_i`` [2, 2] standard normal,
  ``t_i`` uniform in ±``translate_px`` pixels; applied with ``F.affine_grid`` + bilinear ``grid_sample``
  (border padding). Matches the "small random affine" augmentation of French et al. (2018).
* :func:`intensity_jitter`: :math:`x' = s\\,(g x + o)` with gain ``g`` ∈ 1 ± ``gain``, offset ``o`` ∈ ±``offset``
  (per channel = colour jitter, or per image) and ``s = -1`` with probability ``invert_prob`` (inversion).
* :func:`gaussian_noise`: :math:`x' = x + \\sigma\\,\\epsilon`, ε standard normal per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["AugmentConfig", "random_affine", "intensity_jitter", "gaussian_noise", "augment_batch"]


def _uniform(shape: tuple[int, ...], x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U(-1, 1) samples of ``shape`` on x's device and dtype."""
    return torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype) * 2.0 - 1.0


def random_affine(
    x: Tensor, affine_std: float = 0.1, translate_px: float = 2.0, generator: torch.Generator | None = None
) -> Tensor:
    """Random per-sample affine warp: [B, C, H, W] -> [B, C, H, W]."""
    b, _, h, w = x.shape
    eye = torch.eye(2, device=x.device, dtype=x.dtype).expand(b, 2, 2)
    a = eye + affine_std * torch.randn((b, 2, 2), generator=generator, device=x.device, dtype=x.dtype)
    # normalised coordinates span 2 over W (resp. H) pixels: one pixel = 2/W
    scale = torch.tensor([2.0 * translate_px / w, 2.0 * translate_px / h], device=x.device, dtype=x.dtype)
    t = _uniform((b, 2), x, generator) * scale
    theta = torch.cat([a, t.unsqueeze(2)], dim=2)  # [B, 2, 3]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def intensity_jitter(
    x: Tensor,
    gain: float = 0.25,
    offset: float = 0.25,
    invert_prob: float = 0.0,
    per_channel: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random gain/offset (colour jitter if ``per_channel``) and optional inversion: [B,C,H,W] -> same."""
    b, c = x.shape[:2]
    shape = (b, c if per_channel else 1, 1, 1)
    g = 1.0 + gain * _uniform(shape, x, generator)
    o = offset * _uniform(shape, x, generator)
    x = x * g + o
    if invert_prob > 0:
        flip = torch.rand((b, 1, 1, 1), generator=generator, device=x.device, dtype=x.dtype) < invert_prob
        x = torch.where(flip, -x, x)
    return x


def gaussian_noise(x: Tensor, std: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """Additive per-pixel Gaussian noise of standard deviation ``std``."""
    if std <= 0:
        return x
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of :func:`augment_batch` (0 disables a component)."""

    affine_std: float = 0.1
    translate_px: float = 2.0
    gain: float = 0.25
    offset: float = 0.25
    invert_prob: float = 0.0
    noise_std: float = 0.1


def augment_batch(x: Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """Affine warp, then intensity/colour jitter, then Gaussian noise: [B,C,H,W] -> [B,C,H,W]."""
    if cfg.affine_std > 0 or cfg.translate_px > 0:
        x = random_affine(x, cfg.affine_std, cfg.translate_px, generator)
    if cfg.gain > 0 or cfg.offset > 0 or cfg.invert_prob > 0:
        x = intensity_jitter(x, cfg.gain, cfg.offset, cfg.invert_prob, True, generator)
    return gaussian_noise(x, cfg.noise_std, generator)
