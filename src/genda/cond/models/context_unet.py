"""ContextUnet: a small class-conditional U-Net noise predictor for DDPM on 28x28 digits.

The network predicts the noise ``eps_theta(x_t, t, c)`` (Ho et al., 2020).  Conditioning:

* time: ``t`` is the normalised step ``t/T`` in ``[0, 1]``, embedded by a 2-layer MLP;
* class: the one-hot label, multiplied by ``(1 - context_mask)`` (so ``context_mask = 1`` turns it into
  the all-zero "null" label used by classifier-free guidance), embedded by a 2-layer MLP.

The two embeddings modulate the up-path: ``h <- c_emb * h + t_emb`` (per-channel scale and shift).

Layout for ``img_size = 28`` (``s = img_size / 4``)::

    x [B,C,28,28] -> ResBlock -> x0 [B,F,28,28]
      -> Down -> d1 [B,F,14,14] -> Down -> d2 [B,2F,7,7] -> AvgPool(7), GELU -> v [B,2F,1,1]
    v -> ConvT(7, stride 7), GroupNorm, ReLU -> u0 [B,2F,7,7]
      -> Up(c1 * u0 + t1, skip d2) -> u1 [B,F,14,14]
      -> Up(c2 * u1 + t2, skip d1) -> u2 [B,F,28,28]
      -> concat x0 -> Conv3x3, GroupNorm, ReLU, Conv3x3 -> eps [B,C,28,28]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.errors import ConfigError

__all__ = ["ContextUnet", "ResidualConvBlock"]

_GROUPS = 8


class ResidualConvBlock(nn.Module):
    """Two (Conv 3x3, GroupNorm, GELU) layers: ``h1 = f1(x)``, ``h2 = f2(h1)``.

    With ``residual=True`` the output is ``(x + h2) / sqrt(2)`` when channels match, else
    ``(h1 + h2) / sqrt(2)`` (the 1/1.414 keeps the variance of a sum of two unit-variance terms at 1).

    Shapes: ``[B, in_ch, H, W]`` -> ``[B, out_ch, H, W]``.
    """

    def __init__(self, in_ch: int, out_ch: int, residual: bool = False):
        super().__init__()
        self.residual, self.same = residual, in_ch == out_ch
        self.f1 = nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.GroupNorm(_GROUPS, out_ch), nn.GELU())
        self.f2 = nn.Sequential(nn.Conv2d(out_ch, out_ch, 3, 1, 1), nn.GroupNorm(_GROUPS, out_ch), nn.GELU())

    def forward(self, x: Tensor) -> Tensor:
        h1 = self.f1(x)
        h2 = self.f2(h1)
        if not self.residual:
            return h2
        return ((x if self.same else h1) + h2) / 1.414


class _Down(nn.Sequential):
    """ResidualConvBlock then MaxPool 2: ``[B, i, H, W] -> [B, o, H/2, W/2]``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(ResidualConvBlock(in_ch, out_ch), nn.MaxPool2d(2))


class _Up(nn.Module):
    """Concat skip, ConvTranspose 2x2 s2, two ResidualConvBlocks: ``[B, i/2, H, W] + skip -> [B, o, 2H, 2W]``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.net = nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 2, 2),
                                 ResidualConvBlock(out_ch, out_ch), ResidualConvBlock(out_ch, out_ch))

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.net(torch.cat([x, skip], dim=1))


class _EmbedFC(nn.Sequential):
    """``Linear(in, d) -> GELU -> Linear(d, d)``, output viewed as ``[B, d, 1, 1]`` by the caller."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))


class ContextUnet(nn.Module):
    """Class-conditional noise predictor ``eps_theta(x_t, t/T, c, mask)``.

    Args:
        in_channels: image channels.
        n_feat: base width ``F`` (a multiple of 8, for GroupNorm with 8 groups).
        n_classes: number of labels.
        img_size: side length, a multiple of 4 (28 in the course setting).

    Shapes:
        x ``[B, C, H, W]``, t ``[B]`` (or ``[B, 1]``) float in ``[0, 1]``, c ``[B]`` long,
        context_mask ``[B]`` float (1 = drop the label) -> eps ``[B, C, H, W]``.
        ``context_mask=None`` means all zeros (always conditional).
    """

    def __init__(self, in_channels: int = 3, n_feat: int = 128, n_classes: int = 10, img_size: int = 28):
        super().__init__()
        if n_feat < _GROUPS or n_feat % _GROUPS:
            raise ConfigError(f"ContextUnet: n_feat must be a positive multiple of {_GROUPS}, got {n_feat}")
        if img_size < 4 or img_size % 4:
            raise ConfigError(f"ContextUnet: img_size must be a positive multiple of 4, got {img_size}")
        if in_channels < 1 or n_classes < 1:
            raise ConfigError("ContextUnet: in_channels and n_classes must be >= 1")
        self.in_channels, self.n_feat, self.n_classes, self.img_size = in_channels, n_feat, n_classes, img_size
        s = img_size // 4
        self.init_conv = ResidualConvBlock(in_channels, n_feat, residual=True)
        self.down1 = _Down(n_feat, n_feat)
        self.down2 = _Down(n_feat, 2 * n_feat)
        self.to_vec = nn.Sequential(nn.AvgPool2d(s), nn.GELU())
        self.time_emb1 = _EmbedFC(1, 2 * n_feat)
        self.time_emb2 = _EmbedFC(1, n_feat)
        self.ctx_emb1 = _EmbedFC(n_classes, 2 * n_feat)
        self.ctx_emb2 = _EmbedFC(n_classes, n_feat)
        self.up0 = nn.Sequential(nn.ConvTranspose2d(2 * n_feat, 2 * n_feat, s, s),
                                 nn.GroupNorm(_GROUPS, 2 * n_feat), nn.ReLU())
        self.up1 = _Up(4 * n_feat, n_feat)
        self.up2 = _Up(2 * n_feat, n_feat)
        self.out = nn.Sequential(nn.Conv2d(2 * n_feat, n_feat, 3, 1, 1), nn.GroupNorm(_GROUPS, n_feat), nn.ReLU(),
                                 nn.Conv2d(n_feat, in_channels, 3, 1, 1))

    def forward(self, x: Tensor, t: Tensor, c: Tensor, context_mask: Tensor | None = None) -> Tensor:
        B = x.shape[0]
        if x.shape[1:] != (self.in_channels, self.img_size, self.img_size):
            raise ValueError(f"ContextUnet: x must be [B, {self.in_channels}, {self.img_size}, {self.img_size}], "
                             f"got {tuple(x.shape)}")
        x0 = self.init_conv(x)
        d1 = self.down1(x0)
        d2 = self.down2(d1)
        v = self.to_vec(d2)

        onehot = F.one_hot(c.long().view(B), self.n_classes).to(x.dtype)
        if context_mask is not None:
            onehot = onehot * (1.0 - context_mask.to(x.dtype).view(B, 1))
        t = t.to(x.dtype).view(B, 1)
        F2 = self.n_feat
        c1 = self.ctx_emb1(onehot).view(B, 2 * F2, 1, 1)
        t1 = self.time_emb1(t).view(B, 2 * F2, 1, 1)
        c2 = self.ctx_emb2(onehot).view(B, F2, 1, 1)
        t2 = self.time_emb2(t).view(B, F2, 1, 1)

        u0 = self.up0(v)
        u1 = self.up1(c1 * u0 + t1, d2)
        u2 = self.up2(c2 * u1 + t2, d1)
        return self.out(torch.cat([u2, x0], dim=1))
