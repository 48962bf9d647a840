"""FiLMUnet: a compact class-conditional U-Net noise predictor for DDPM on small images, built for CPUs.

Same call as :class:`genda.cond.models.context_unet.ContextUnet` -- ``eps = net(x_t, t/T, c, context_mask)`` -- so the
scheduler, samplers and classifier-free guidance are shared.  What differs (Ho et al. 2020; Nichol & Dhariwal 2021):

* **no convolution at full resolution**: the image is folded 2x2 into channels by ``PixelUnshuffle`` (lossless,
  ``[B, C, H, W] -> [B, 4C, H/2, W/2]``) and unfolded at the end, so every convolution runs at ``H/2`` or ``H/4``
  where small-channel convolutions are cheapest per useful FLOP on a CPU;
* **conditioning in every residual block** (scale-shift norm / FiLM): ``h <- GN(h) * (1 + s) + b`` with
  ``(s, b) = Linear(SiLU(e))`` and ``e = MLP(sinusoid(1000 t/T)) + Embed(c)``; the label ``n_classes`` is the
  "null" label used where ``context_mask = 1`` (classifier-free guidance), ContextUnet instead zeroes its one-hot;
* one self-attention layer at the lowest resolution; each block's last convolution and the output convolution
  start at zero, so the untrained network predicts ``eps = 0`` and every block starts as the identity.

Layout for ``img_size = 28`` and width ``F``::

    x [B,C,28,28] -> unshuffle -> [B,4C,14,14] -> conv -> h0 [B,F,14,14] -> Res -> h1 [B,F,14,14]
      -> conv s2 -> [B,F,7,7] -> Res -> h2 [B,2F,7,7] -> Res, Attn, Res (middle)
      -> Res(cat h2) [B,2F,7,7] -> nearest x2, conv -> [B,2F,14,14] -> Res(cat h1) -> Res(cat h0) [B,F,14,14]
      -> GN, SiLU, conv -> [B,4C,14,14] -> shuffle -> eps [B,C,28,28]
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.errors import ConfigError

__all__ = ["FiLMUnet", "FiLMResBlock"]

_GROUPS = 8


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_features(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of ``1000 t`` (``t`` in ``[0, 1]``): ``[B] -> [B, dim]`` (cos half, then sin half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float().view(-1, 1) * freqs.view(1, -1)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1).to(t.dtype if t.is_floating_point() else torch.float32)


class FiLMResBlock(nn.Module):
    """``out = skip(x) + conv2(SiLU(GN(conv1(SiLU(GN(x)))) * (1 + s) + b))``, ``(s, b) = Linear(SiLU(e))``.

    Shapes: x ``[B, i, H, W]``, e ``[B, E]`` -> ``[B, o, H, W]``; ``skip`` is a 1x1 convolution when ``i != o``.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_GROUPS, in_ch), nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.film = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2, self.conv2 = nn.GroupNorm(_GROUPS, out_ch), _zero(nn.Conv2d(out_ch, out_ch, 3, 1, 1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        s, b = self.film(F.silu(e)).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        h = self.norm2(h) * (1 + s) + b
        return self.skip(x) + self.conv2(F.silu(h))


class _Attention(nn.Module):
    """Single-head self-attention over the ``H*W`` positions, residual: ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm, self.qkv = nn.GroupNorm(_GROUPS, ch), nn.Conv2d(ch, 3 * ch, 1)
        self.proj = _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)   # [B, HW, C] each
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(h.transpose(1, 2).reshape(B, C, H, W))


class FiLMUnet(nn.Module):
    """Class-conditional noise predictor ``eps_theta(x_t, t/T, c, mask)`` (see the module docstring).

    Args:
        in_channels: image channels ``C``.
        n_feat: base width ``F`` (a multiple of 8); the lower level has ``2F`` channels.
        n_classes: number of labels (the embedding has one more row, the null label).
        img_size: side length, a multiple of 4.

    Shapes: x ``[B, C, H, W]``, t ``[B]`` float in ``[0, 1]``, c ``[B]`` long, context_mask ``[B]`` float or None
    (1 = drop the label) -> eps ``[B, C, H, W]``.
    """

    def __init__(self, in_channels: int = 3, n_feat: int = 32, n_classes: int = 10, img_size: int = 28):
        super().__init__()
        if n_feat < _GROUPS or n_feat % _GROUPS:
            raise ConfigError(f"FiLMUnet: n_feat must be a positive multiple of {_GROUPS}, got {n_feat}")
        if img_size < 4 or img_size % 4:
            raise ConfigError(f"FiLMUnet: img_size must be a positive multiple of 4, got {img_size}")
        if in_channels < 1 or n_classes < 1:
            raise ConfigError("FiLMUnet: in_channels and n_classes must be >= 1")
        self.in_channels, self.n_feat, self.n_classes, self.img_size = in_channels, n_feat, n_classes, img_size
        f, e = n_feat, 4 * n_feat
        self.t_dim = f
        self.time_mlp = nn.Sequential(nn.Linear(f, e), nn.SiLU(), nn.Linear(e, e))
        self.label_emb = nn.Embedding(n_classes + 1, e)
        self.unshuffle, self.shuffle = nn.PixelUnshuffle(2), nn.PixelShuffle(2)
        self.conv_in = nn.Conv2d(4 * in_channels, f, 3, 1, 1)
        self.down1 = FiLMResBlock(f, f, e)
        self.pool = nn.Conv2d(f, f, 3, 2, 1)
        self.down2 = FiLMResBlock(f, 2 * f, e)
        self.mid1, self.attn = FiLMResBlock(2 * f, 2 * f, e), _Attention(2 * f)
        self.mid2 = FiLMResBlock(2 * f, 2 * f, e)
        self.up2 = FiLMResBlock(4 * f, 2 * f, e)
        self.upsample = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * f, 2 * f, 3, 1, 1))
        self.up1 = FiLMResBlock(3 * f, f, e)
        self.up0 = FiLMResBlock(2 * f, f, e)
        self.out = nn.Sequential(nn.GroupNorm(_GROUPS, f), nn.SiLU(), _zero(nn.Conv2d(f, 4 * in_channels, 3, 1, 1)))

    def forward(self, x: Tensor, t: Tensor, c: Tensor, context_mask: Tensor | None = None) -> Tensor:
        B = x.shape[0]
        if x.shape[1:] != (self.in_channels, self.img_size, self.img_size):
            raise ValueError(f"FiLMUnet: x must be [B, {self.in_channels}, {self.img_size}, {self.img_size}], "
                             f"got {tuple(x.shape)}")
        labels = c.long().view(B)
        if context_mask is not None:
            labels = torch.where(context_mask.view(B) > 0.5, torch.full_like(labels, self.n_classes), labels)
        e = self.time_mlp(timestep_features(t.view(B), self.t_dim).to(x.dtype)) + self.label_emb(labels)
        h0 = self.conv_in(self.unshuffle(x))
        h1 = self.down1(h0, e)
        h2 = self.down2(self.pool(h1), e)
        h = self.mid2(self.attn(self.mid1(h2, e)), e)
        h = self.up2(torch.cat([h, h2], 1), e)
        h = self.upsample(h)
        h = self.up1(torch.cat([h, h1], 1), e)
        h = self.up0(torch.cat([h, h0], 1), e)
        return self.shuffle(self.out(h))
