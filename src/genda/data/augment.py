"""Batched, on-device image augmentation (no PIL, no per-sample Python), every kind the pipeline uses:

* colour jitter of the DA trainings (:func:`color_jitter`), the digit classifier's affine + colour jitter
  (:func:`affine_jitter`);
* the face GANs' horizontal flip and DiffAugment (:func:`random_hflip`, :func:`diff_augment`);
* the mean teacher's stochastic views (:func:`augment_batch`: :func:`random_affine`, :func:`intensity_jitter`,
  :func:`gaussian_noise`).

Images are float [B, C, H, W] in [-1, 1]; every function returns the shape it got, with random parameters per
sample drawn from the caller's ``torch.Generator`` (a fixed seed reproduces the draws). Colour jitter, flips and
DiffAugment draw on the generator's device (CPU in the pipeline) and move the numbers, so a seed gives the same
augmentation on CPU and GPU; the self-ensembling views draw on ``x.device`` from a generator living there.

Self-ensembling views (mean teacher):

* :func:`random_affine`: :math:`\\theta_i = [\\,I + \\sigma_A N_i \\mid t_i\\,]`, ``N_i`` [2, 2] standard normal,
  ``t_i`` uniform in ±``translate_px`` pixels; applied with ``F.affine_grid`` + bilinear ``grid_sample``
  (border padding). Matches the "small random affine" augmentation of French et al. (2018).
* :func:`intensity_jitter`: :math:`x' = s\\,(g x + o)` with gain ``g`` ∈ 1 ± ``gain``, offset ``o`` ∈ ±``offset``
  (per channel = colour jitter, or per image) and ``s = -1`` with probability ``invert_prob`` (inversion).
* :func:`gaussian_noise`: :math:`x' = x + \\sigma\\,\\epsilon`, ε standard normal per pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.choices import DIFFAUG_OPS
from genda.errors import ConfigError
from genda.rng import rand, randint


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




def affine_jitter(x: Tensor, *, max_shift: float, max_rotate: float, max_scale: float, color: float,
                  generator: torch.Generator | None = None) -> Tensor:
    """The digit classifier's augmentation: a random affine (rotation, zoom, shift) + colour jitter, per image,
    batched on ``x.device``.

    With ``a ~ U(-r, r)`` (radians), ``k ~ U(1-s, 1+s)``, ``t ~ U(-2·shift, 2·shift)^2`` (the grid spans
    [-1, 1], so a shift of ``shift`` sides is ``2·shift`` grid units) the sampling grid is
    ``p' = R(a) p / k + t``.  Factors are drawn on the CPU from ``generator``.

    Shapes: float ``[B, C, H, W]`` in ``[-1, 1]`` -> same.
    """
    B = x.shape[0]
    u = torch.rand(B, 4, generator=generator)
    a = (u[:, 0] * 2 - 1) * math.radians(max_rotate)
    k = 1.0 + (u[:, 1] * 2 - 1) * max_scale
    t = (u[:, 2:] * 2 - 1) * 2 * max_shift
    cos, sin = torch.cos(a) / k, torch.sin(a) / k
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return color_jitter(y, color, generator)


# ----------------------------------------------------------------------------- DiffAugment (GAN training)
def random_hflip(x: torch.Tensor, p: float = 0.5, *, generator=None) -> torch.Tensor:
    """Flip each sample of ``x [B, C, H, W]`` left-right independently with probability ``p``."""
    flip = rand((x.shape[0],), generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _color(x: torch.Tensor, generator) -> torch.Tensor:
    b = x.shape[0]
    # brightness: x + δ, δ ~ U[-0.5, 0.5] per sample
    x = x + (rand((b, 1, 1, 1), generator=generator, device=x.device) - 0.5)
    # saturation: scale each pixel's deviation from its channel mean by s ~ U[0, 2]
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (rand((b, 1, 1, 1), generator=generator, device=x.device) * 2.0) + m
    # contrast: scale the deviation from the image mean by c ~ U[0.5, 1.5]
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (rand((b, 1, 1, 1), generator=generator, device=x.device) + 0.5) + m


def _translation(x: torch.Tensor, generator, ratio: float = 0.125) -> torch.Tensor:
    """out[b, :, i, j] = x[b, :, i + t_y, j + t_x], zero (mid-grey) outside, t ~ U{-s..s}, s = ratio·size."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = randint(-sy, sy + 1, (b, 1, 1), generator=generator, device=x.device)
    tx = randint(-sx, sx + 1, (b, 1, 1), generator=generator, device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + ty + sy  # index into the padded image
    cols = torch.arange(w, device=x.device)[None, None, :] + tx + sx
    padded = nn.functional.pad(x, (sx, sx, sy, sy)).permute(0, 2, 3, 1)  # [B, H+2sy, W+2sx, C]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero (mid-grey) a square of side ratio·size at a uniformly random centre (may be clipped)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = randint(0, h, (b, 1, 1), generator=generator, device=x.device)
    cx = randint(0, w, (b, 1, 1), generator=generator, device=x.device)
    i = torch.arange(h, device=x.device)[None, :, None] - (cy - ch // 2)
    j = torch.arange(w, device=x.device)[None, None, :] - (cx - cw // 2)
    inside = (i >= 0) & (i < ch) & (j >= 0) & (j < cw)
    return x * (~inside).to(x.dtype)[:, None]


_AUG_FNS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout", *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Differentiable Augmentation (Zhao et al., NeurIPS 2020) of ``x [B, C, H, W]`` in [-1, 1].

    ``policy`` is a comma-separated list applied in order, each with fresh per-sample parameters:

    * ``color``: brightness x+δ, δ~U[-½,½]; saturation (x−x̄_c)·s + x̄_c, s~U[0,2] (x̄_c: mean over
      channels at each pixel); contrast (x−x̄)·c + x̄, c~U[½,3/2] (x̄: mean of the image);
    * ``translation``: integer shift by up to 1/8 of the height/width in each axis, zero padding;
    * ``cutout``: a square of half the height/width at a random centre is set to 0.

    Every op is differentiable w.r.t. ``x`` (additions, products and index gathers), so the trainer
    applies it to both real and generated batches before the discriminator, D(T(x)) and D(T(G(z))).
    Output has the shape of ``x``. An empty policy returns ``x`` unchanged.
    """
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in _AUG_FNS:
            raise ConfigError(f"diff_augment policy entries must be in {list(DIFFAUG_OPS)}, got {name!r}")
    for name in names:
        x = _AUG_FNS[name](x, generator)
    return x


# ----------------------------------------------------------------------------- self-ensembling views (mean teacher)
def _symmetric(shape: tuple[int, ...], x: Tensor, generator: torch.Generator | None) -> Tensor:
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
    t = _symmetric((b, 2), x, generator) * scale
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
    g = 1.0 + gain * _symmetric(shape, x, generator)
    o = offset * _symmetric(shape, x, generator)
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
