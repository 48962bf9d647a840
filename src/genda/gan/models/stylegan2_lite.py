"""A small StyleGAN2 (Karras et al., CVPR 2020) for 64×64 images, with one linear-attention block.

Generator::

    z [B, z_dim] --PixelNorm, n_mapping × (EqualLinear + LeakyReLU)--> w [B, w_dim]
    const [1, c0, 4, 4] (learned), repeated over the batch
    4×4:   StyledLayer(c0 → c0)                                      ; rgb = ToRGB(x)
    r = 8, 16, ..., 4·2^(n−1):
           x = up2(x); x = StyledLayer(c_{i−1} → c_i); x = StyledLayer(c_i → c_i)
           [x = x + γ·LinearAttention(x)   if r == attention_at]
           rgb = up2(rgb) + ToRGB(x)
    out = tanh(rgb) ∈ (−1, 1)  [B, out_channels, 64, 64]

``channels[i]`` is the width at resolution 4·2^i (defaults: 256, 256, 128, 64, 32 → 64×64);
up2 is bilinear ×2 upsampling. Output squashing: **tanh** (so the range matches DCGAN and the
[-1, 1] data scaling; the official StyleGAN2 leaves it unbounded).

StyledLayer (modulated convolution with weight demodulation, per-pixel noise, bias, activation):

    s = A(w) ∈ R^{C_in}              (affine, bias initialised to 1)
    w'_{o,i,k} = W_{o,i,k} · s_i     ;  w''_{o,i,k} = w'_{o,i,k} / sqrt(Σ_{i,k} w'²_{o,i,k} + 1e-8)
    y = conv(x, w'') + β·n + b,  n ~ N(0, 1) of shape [B, 1, H, W],  β learned (initialised 0)
    out = √2 · LeakyReLU_0.2(y)

implemented without a grouped convolution as conv(x ⊙ s, W) ⊙ d with
d_o = (Σ_i s_i² Σ_k W²_{o,i,k} + 1e-8)^(−1/2), which is the same linear map. ToRGB is a 1×1
modulated convolution without demodulation. Weights use the equalised learning rate (N(0, 1)
parameters scaled by 1/sqrt(fan_in) at run time; the mapping network also by lr_mul = 0.01).

LinearAttention is efficient attention (Shen et al., WACV 2021), linear in the number of
positions N = H·W: with Q, K ∈ R^{B×d×N}, V ∈ R^{B×C×N} from 1×1 convolutions,

    ρ_q(Q) = softmax over the d features at each position,
    ρ_k(K) = softmax over the N positions for each feature,
    out = (ρ_k(K) V^T)^T ρ_q(Q) ∈ R^{B×C×N}       (cost O(N·d·C) instead of O(N²)),

projected by a 1×1 convolution and added as a residual scaled by γ (learned, initialised 0).

Discriminator: fromRGB 1×1, residual blocks (two 3×3 convs + 2× average pooling, skip = pool +
1×1 conv, sum / √2) from 64×64 down to 4×4, minibatch standard deviation (one extra feature map:
the std over groups of ≤ 4 samples, averaged over features), 3×3 conv, two linear layers → [B].

Noise: ``forward(z, noise_generator=g)`` draws all noise maps from ``g`` (on ``g``'s device, then
moved), so the same seeded generator gives the same image; without it the global RNG is used.

Styles: the synthesis network takes ``num_ws`` = len(StyledLayers) + 1 style vectors (10 at 64×64), indexed as
in the official StyleGAN2: StyledLayer j reads ws[j] and the ToRGB of resolution 4·2^i reads ws[2i+1] (the
same w as the first StyledLayer of the next resolution; the last ToRGB has its own). ``forward(z)`` feeds one
w to all of them. Style mixing regularisation (Karras et al. 2019, §3.1; training only, drawn by
:func:`genda.gan.tricks.style_mixing`): ``forward(z, mix_z=z2, crossover=c)`` with w1 = f(z), w2 = f(z2) [B, w_dim]
feeds ws[j] = w1 for j < c and w2 for j ≥ c, c ∈ {0, …, num_ws} (c = 0: w2 everywhere; c = num_ws: w1, i.e.
``forward(z)``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genda.errors import ConfigError
from genda.rng import randn

_SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.2) scaled by √2 to keep the activations' second moment."""
    return F.leaky_relu(x, 0.2) * _SQRT2


class PixelNorm(nn.Module):
    """x / sqrt(mean_c x² + 1e-8) over dim 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate.

    y = x (W·lr_mul/√in)^T + b·lr_mul with the stored W ~ N(0, 1/lr_mul²): [B, in] -> [B, out]."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Conv2d (stride 1, 'same' padding), equalised learning rate: W ~ N(0, 1) scaled by 1/√(C_in·k²)."""

    def __init__(self, c_in: int, c_out: int, k: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale = 1.0 / math.sqrt(c_in * k * k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)


class MappingNetwork(nn.Module):
    """z [B, z_dim] -> w [B, w_dim]: PixelNorm then ``n_layers`` × (EqualLinear + √2·LeakyReLU)."""

    def __init__(self, z_dim: int, w_dim: int, n_layers: int = 4, lr_mul: float = 0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * n_layers
        self.norm = PixelNorm()
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.norm(z)
        for layer in self.layers:
            x = _lrelu(layer(x))
        return x


class ModulatedConv2d(nn.Module):
    """Style-modulated k×k convolution: x [B, C_in, H, W], w [B, w_dim] -> [B, C_out, H, W]."""

    def __init__(self, c_in: int, c_out: int, k: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.scale = 1.0 / math.sqrt(c_in * k * k)
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)  # [B, C_in]
        weight = self.weight * self.scale  # [C_out, C_in, k, k]
        y = F.conv2d(x * s[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        if self.demodulate:
            # d[b, o] = (Σ_i s[b, i]² · Σ_k W[o, i, k]² + 1e-8)^(-1/2)
            d = torch.rsqrt(s.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + 1e-8)  # [B, C_out]
            y = y * d[:, :, None, None]
        return y


class NoiseInjection(nn.Module):
    """x + β·n, n ~ N(0, 1) of shape [B, 1, H, W] (one map shared by all channels), β learned (init 0)."""

    def __init__(self):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        noise = randn((b, 1, h, w), generator=generator, device=x.device).to(x.dtype)
        return x + self.strength * noise


class StyledLayer(nn.Module):
    """ModulatedConv2d (demodulated) + noise + bias + √2·LeakyReLU(0.2)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, k: int = 3):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, k, w_dim, demodulate=True)
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x, w, noise_generator=None):
        y = self.noise(self.conv(x, w), noise_generator)
        return _lrelu(y + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """1×1 modulated convolution without demodulation + bias: [B, C, H, W] -> [B, out_channels, H, W]."""

    def __init__(self, c_in: int, w_dim: int, out_channels: int = 3):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, out_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias[None, :, None, None]


class LinearAttention(nn.Module):
    """Efficient (linear) attention on [B, C, H, W]; residual output x + γ·proj(attn(x)), γ init 0."""

    def __init__(self, channels: int, key_dim: int | None = None):
        super().__init__()
        d = key_dim or max(channels // 4, 8)
        self.query = EqualConv2d(channels, d, 1)
        self.key = EqualConv2d(channels, d, 1)
        self.value = EqualConv2d(channels, channels, 1)
        self.proj = EqualConv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).softmax(dim=1)  # [B, d, N]: over features, per position
        k = self.key(x).flatten(2).softmax(dim=2)  # [B, d, N]: over positions, per feature
        v = self.value(x).flatten(2)  # [B, C, N]
        context = k @ v.transpose(1, 2)  # [B, d, C]
        out = (context.transpose(1, 2) @ q).view(b, c, h, w)  # [B, C, N] -> [B, C, H, W]
        return x + self.gamma * self.proj(out)


def _check_channels(channels, attention_at) -> list[int]:
    channels = [int(c) for c in channels]
    if len(channels) < 2 or any(c <= 0 for c in channels):
        raise ConfigError(f"StyleGAN2-lite channels must list >= 2 positive widths, got {channels!r}")
    resolutions = [4 * 2**i for i in range(len(channels))]
    if attention_at is not None and attention_at not in resolutions:
        raise ConfigError(f"attention_at must be one of {resolutions} or None, got {attention_at!r}")
    return channels


def _res_index(resolution: int) -> int:
    """Index i with 4·2^i == resolution."""
    return int(round(math.log2(resolution / 4)))


class StyleGAN2LiteGenerator(nn.Module):
    """z [B, z_dim] -> images [B, out_channels, R, R] in (−1, 1) (tanh), R = 4·2^(len(channels)−1)."""

    takes_noise_generator = True  # trainers and samplers pass their seeded generator for the noise maps

    def __init__(self, z_dim: int = 128, w_dim: int = 128, channels=(256, 256, 128, 64, 32),
                 out_channels: int = 3, attention_at: int | None = 16, n_mapping: int = 4):
        super().__init__()
        channels = _check_channels(channels, attention_at)
        self.z_dim, self.w_dim = z_dim, w_dim
        self.resolution = 4 * 2 ** (len(channels) - 1)
        self.attention_at = attention_at
        self.mapping = MappingNetwork(z_dim, w_dim, n_mapping)
        self.const = nn.Parameter(torch.randn(1, channels[0], 4, 4))
        self.layers = nn.ModuleList([StyledLayer(channels[0], channels[0], w_dim)])
        self.to_rgb = nn.ModuleList([ToRGB(channels[0], w_dim, out_channels)])
        self.attention = nn.ModuleDict()
        for i in range(1, len(channels)):
            self.layers.append(StyledLayer(channels[i - 1], channels[i], w_dim))
            self.layers.append(StyledLayer(channels[i], channels[i], w_dim))
            self.to_rgb.append(ToRGB(channels[i], w_dim, out_channels))
        if attention_at is not None:
            self.attention[str(attention_at)] = LinearAttention(channels[_res_index(attention_at)])

    @property
    def num_ws(self) -> int:
        """Style inputs of the synthesis network: one per StyledLayer and one for the last ToRGB (module doc)."""
        return len(self.layers) + 1

    def forward(self, z: torch.Tensor, *, noise_generator: torch.Generator | None = None,
                mix_z: torch.Tensor | None = None, crossover: int | None = None) -> torch.Tensor:
        """z [B, z_dim] -> [B, out_channels, R, R]; with ``mix_z`` [B, z_dim] and ``crossover`` c: style mixing,
        ws[j] = f(z) for j < c and f(mix_z) for j ≥ c (module doc)."""
        w = self.mapping(z)
        if mix_z is None:
            ws = [w] * self.num_ws
        else:
            if crossover is None or not 0 <= int(crossover) <= self.num_ws:
                raise ValueError(f"crossover must be in [0, {self.num_ws}] with mix_z, got {crossover!r}")
            w2 = self.mapping(mix_z)
            ws = [w if j < int(crossover) else w2 for j in range(self.num_ws)]
        return self.synthesis(ws, noise_generator=noise_generator)

    def synthesis(self, ws: list[torch.Tensor], *, noise_generator: torch.Generator | None = None) -> torch.Tensor:
        """``num_ws`` styles, each [B, w_dim] -> images [B, out_channels, R, R] (StyledLayer j: ws[j]; ToRGB i:
        ws[2i+1])."""
        if len(ws) != self.num_ws:
            raise ValueError(f"synthesis takes {self.num_ws} styles, got {len(ws)}")
        x = self.const.expand(ws[0].shape[0], -1, -1, -1)
        x = self.layers[0](x, ws[0], noise_generator)
        rgb = self.to_rgb[0](x, ws[1])
        for i in range(1, len(self.to_rgb)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.layers[2 * i - 1](x, ws[2 * i - 1], noise_generator)
            x = self.layers[2 * i](x, ws[2 * i], noise_generator)
            key = str(x.shape[-1])
            if key in self.attention:
                x = self.attention[key](x)
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
            rgb = rgb + self.to_rgb[i](x, ws[2 * i + 1])
        return torch.tanh(rgb)


class DResBlock(nn.Module):
    """[B, C_in, H, W] -> [B, C_out, H/2, W/2]: (pool(conv(conv(x))) + conv1×1(pool(x))) / √2."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = EqualConv2d(c_in, c_in, 3)
        self.conv2 = EqualConv2d(c_in, c_out, 3)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(_lrelu(self.conv2(_lrelu(self.conv1(x)))), 2)
        return (y + self.skip(F.avg_pool2d(x, 2))) / _SQRT2


class MinibatchStdDev(nn.Module):
    """Appends one feature map: the std over groups of G samples (G = largest divisor of B that is
    ≤ ``group_size``; sample b is grouped with b ± B/G, ...), averaged over C, H, W.
    [B, C, H, W] -> [B, C+1, H, W]."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group_size, b) + 1) if b % d == 0)
        y = x.reshape(g, b // g, c, h, w)
        std = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # [B/G]
        feat = std.repeat(g)[:, None, None, None].expand(b, 1, h, w)
        return torch.cat([x, feat], dim=1)


class StyleGAN2LiteDiscriminator(nn.Module):
    """Residual discriminator: images [B, in_channels, R, R] -> logits [B].

    ``channels[i]`` is the width at resolution 4·2^i (same convention as the generator)."""

    def __init__(self, channels=(256, 256, 128, 64, 32), in_channels: int = 3, stddev_group: int = 4):
        super().__init__()
        channels = _check_channels(channels, None)
        self.resolution = 4 * 2 ** (len(channels) - 1)
        self.from_rgb = EqualConv2d(in_channels, channels[-1], 1)
        self.blocks = nn.Sequential(*[DResBlock(channels[i], channels[i - 1])
                                      for i in range(len(channels) - 1, 0, -1)])
        self.stddev = MinibatchStdDev(stddev_group)
        self.conv = EqualConv2d(channels[0] + 1, channels[0], 3)
        self.fc = EqualLinear(channels[0] * 16, channels[0])
        self.out = EqualLinear(channels[0], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(_lrelu(self.from_rgb(x)))  # [B, c0, 4, 4]
        x = _lrelu(self.conv(self.stddev(x)))
        return self.out(_lrelu(self.fc(x.flatten(1)))).flatten()
