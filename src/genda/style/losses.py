"""The perceptual losses of Johnson et al. (2016) / MSG-Net on the loss network's features (:mod:`genda.style.vgg`).

With :math:`\\phi_j(y)` the loss network's activation at layer :math:`j` and :math:`G` the normalised Gram matrix
(:func:`genda.style.gram.gram_matrix`):

* content (``relu2_2``): :math:`\\ell_c(y, x) = \\operatorname{mean}\\,(\\phi_{2\\_2}(y) - \\phi_{2\\_2}(x))^2`;
* style (``relu1_2``, ``relu2_2``, ``relu3_3``, ``relu4_3``):
  :math:`\\ell_s(y, s) = \\sum_j \\operatorname{mean}\\,(G(\\phi_j(y)) - G(\\phi_j(s)))^2`;
* total variation (optional): :math:`\\ell_{tv}(y) = \\operatorname{mean}|y_{i+1,j} - y_{i,j}| +
  \\operatorname{mean}|y_{i,j+1} - y_{i,j}|`.

The training and Gatys objective is :math:`w_c \\ell_c + w_s \\ell_s + w_{tv} \\ell_{tv}`; the metrics report
:math:`\\ell_c` and :math:`\\ell_s` unweighted.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from genda.style.gram import gram_matrix

__all__ = ["CONTENT_LAYER", "content_loss", "style_loss", "tv_loss", "style_grams", "objective"]

CONTENT_LAYER = 1  # relu2_2 in genda.style.vgg.LAYERS


def style_grams(feats: list[torch.Tensor]) -> list[torch.Tensor]:
    """The Gram matrix ``[B, C_j, C_j]`` of every feature map."""
    return [gram_matrix(f) for f in feats]


def content_loss(feats_y: list[torch.Tensor], feats_x: list[torch.Tensor], *, reduce: bool = True) -> torch.Tensor:
    """:math:`\\ell_c` at ``relu2_2``: scalar, or ``[B]`` with ``reduce=False``."""
    d = (feats_y[CONTENT_LAYER].float() - feats_x[CONTENT_LAYER].float()).pow(2)
    return d.mean() if reduce else d.flatten(1).mean(1)


def style_loss(feats_y: list[torch.Tensor], grams_s: list[torch.Tensor], *, reduce: bool = True) -> torch.Tensor:
    """:math:`\\ell_s` against target Grams ``grams_s`` (each ``[1 or B, C_j, C_j]``): scalar, or ``[B]``."""
    per = sum((gram_matrix(f) - g).pow(2).flatten(1).mean(1) for f, g in zip(feats_y, grams_s))
    return per.mean() if reduce else per


def tv_loss(y: torch.Tensor) -> torch.Tensor:
    """:math:`\\ell_{tv}` of images ``y [B, 3, H, W]``: scalar."""
    return (y[..., 1:, :] - y[..., :-1, :]).abs().mean() + (y[..., :, 1:] - y[..., :, :-1]).abs().mean()


def objective(feats_y, feats_x, grams_s, y, weights: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, content, style) with ``weights`` = ``{"content_weight", "style_weight", "tv_weight"}``; content and
    style unweighted, the total weighted (module docstring)."""
    lc, ls = content_loss(feats_y, feats_x), style_loss(feats_y, grams_s)
    total = weights["content_weight"] * lc + weights["style_weight"] * ls
    if weights.get("tv_weight"):
        total = total + weights["tv_weight"] * tv_loss(y.float())
    return total, lc, ls
