"""MSG-Net's generator blocks (Zhang & Dana 2017; the reference's ``ConvLayer``, ``Bottleneck``, ``UpBottleneck``):
reflection-padded convolutions, pre-activation bottleneck residual blocks (He et al. 2016b) with instance norm, and
the paper's upsampling residual block, which keeps an identity-like path through the whole generator.

Shapes (``e`` = :data:`EXPANSION` = 4)::

    ConvLayer(i, o, k, s)        [B, i, H, W]  -> [B, o, H/s, W/s]       reflection pad k//2, conv k x k
    Bottleneck(i, p, s)          [B, i, H, W]  -> [B, e*p, H/s, W/s]     IN-ReLU-conv1x1, IN-ReLU-conv3x3/s,
                                                                          IN-ReLU-conv1x1; + residual (1x1/s conv
                                                                          when i != e*p or s > 1, else identity)
    UpBottleneck(i, p)           [B, i, H, W]  -> [B, e*p, 2H, 2W]        as Bottleneck with nearest x2 upsampling
                                                                          before the 3x3 conv and in the residual
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["EXPANSION", "ConvLayer", "Bottleneck", "UpBottleneck", "norm"]

EXPANSION = 4


def norm(c: int) -> nn.Module:
    """Instance normalisation (Ulyanov et al. 2016) with a learnt affine, as in feed-forward style transfer."""
    return nn.InstanceNorm2d(c, affine=True)


class ConvLayer(nn.Sequential):
    """Reflection padding ``k // 2`` then a ``k x k`` convolution of stride ``stride``, after an optional nearest
    ``upsample`` (the reference's ``UpsampleConvLayer``: no checkerboard artefacts, Odena et al. 2016)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, upsample: int = 1) -> None:
        layers: list[nn.Module] = [nn.Upsample(scale_factor=upsample, mode="nearest")] if upsample > 1 else []
        if k // 2:
            layers.append(nn.ReflectionPad2d(k // 2))
        layers.append(nn.Conv2d(cin, cout, k, stride))
        super().__init__(*layers)


def _branch(cin: int, planes: int, stride: int, upsample: int) -> nn.Sequential:
    return nn.Sequential(norm(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, planes, 1),
                         norm(planes), nn.ReLU(inplace=True), ConvLayer(planes, planes, 3, stride, upsample),
                         norm(planes), nn.ReLU(inplace=True), nn.Conv2d(planes, planes * EXPANSION, 1))


class Bottleneck(nn.Module):
    """Pre-activation bottleneck residual block, optionally downsampling by ``stride`` (module docstring)."""

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * EXPANSION
        self.residual = nn.Conv2d(cin, cout, 1, stride) if (cin != cout or stride > 1) else nn.Identity()
        self.block = _branch(cin, planes, stride, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.block(x)


class UpBottleneck(nn.Module):
    """MSG-Net's upsampling bottleneck: x2 nearest upsampling in both the branch and the residual path."""

    def __init__(self, cin: int, planes: int) -> None:
        super().__init__()
        self.residual = ConvLayer(cin, planes * EXPANSION, 1, 1, upsample=2)
        self.block = _branch(cin, planes, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.block(x)
