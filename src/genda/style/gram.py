"""The Gram matrix of a feature map: the style statistic of Gatys et al. (2016) and of MSG-Net's CoMatch layer."""
from __future__ import annotations

import torch

__all__ = ["gram_matrix"]


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    r"""Normalised Gram matrices of feature maps ``f [B, C, H, W]`` -> ``[B, C, C]``.

    With :math:`\Phi_b \in \mathbb{R}^{C \times HW}` the features of image :math:`b` reshaped,

    .. math::  G_b = \frac{1}{C H W}\, \Phi_b \Phi_b^\top ,

    i.e. :math:`G_b[i, j] = \frac{1}{CHW} \sum_{p} \Phi_b[i, p]\, \Phi_b[j, p]` (the normalisation of the MSG-Net
    reference, so that Grams of different layers and image sizes are on comparable scales). Computed in fp32 (under
    bf16 autocast too: the sums over ``HW`` positions need the mantissa)."""
    b, c, h, w = f.shape
    with torch.autocast(device_type=f.device.type, enabled=False):
        phi = f.reshape(b, c, h * w).float()
        return torch.bmm(phi, phi.transpose(1, 2)) / (c * h * w)
