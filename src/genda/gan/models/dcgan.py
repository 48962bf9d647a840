"""DCGAN for 64×64 images (Radford et al., 2016), as used by the course's seed reports.

Generator (``z_dim=100, ngf=64, channels=3``)::

    z [B, z_dim] -> view [B, z_dim, 1, 1]
    ConvT(z_dim -> 8ngf, 4, s1, p0) + BN + ReLU     -> [B, 8ngf,  4,  4]
    ConvT(8ngf  -> 4ngf, 4, s2, p1) + BN + ReLU     -> [B, 4ngf,  8,  8]
    ConvT(4ngf  -> 2ngf, 4, s2, p1) + BN + ReLU     -> [B, 2ngf, 16, 16]
    ConvT(2ngf  ->  ngf, 4, s2, p1) + BN + ReLU     -> [B,  ngf, 32, 32]
    ConvT(ngf   ->    C, 4, s2, p1) + Tanh          -> [B,    C, 64, 64] in [-1, 1]

Discriminator (``ndf=64``)::

    x [B, C, 64, 64]
    Conv(C    ->  ndf, 4, s2, p1)        + LeakyReLU(0.2) -> [B,  ndf, 32, 32]
    Conv(ndf  -> 2ndf, 4, s2, p1) + norm + LeakyReLU(0.2) -> [B, 2ndf, 16, 16]
    Conv(2ndf -> 4ndf, 4, s2, p1) + norm + LeakyReLU(0.2) -> [B, 4ndf,  8,  8]
    Conv(4ndf -> 8ndf, 4, s2, p1) + norm + LeakyReLU(0.2) -> [B, 8ndf,  4,  4]
    Conv(8ndf ->    1, 4, s1, p0)                         -> [B, 1, 1, 1] -> logits [B]

All convolutions feeding a normalisation layer, as well as the first and last ones, have no bias
(as in the reference DCGAN). With ``norm="none"`` the three middle convolutions get a bias instead,
since nothing else provides a shift. Parameter counts for the defaults: G 3,576,704, D 2,765,568.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from genda.choices import GAN_D_NORMS
from genda.errors import ConfigError

NORMS = GAN_D_NORMS


class DCGANGenerator(nn.Module):
    """Maps ``z [B, z_dim]`` (or ``[B, z_dim, 1, 1]``) to images ``[B, channels, 64, 64]`` in [-1, 1]."""

    def __init__(self, z_dim: int = 100, ngf: int = 64, channels: int = 3):
        super().__init__()
        self.z_dim = z_dim
        widths = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.net(z)


def _norm_layer(norm: str, channels: int) -> nn.Module | None:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "layer":
        # Layer norm over (C, H, W) of each sample, with a per-channel affine: GroupNorm with one group.
        return nn.GroupNorm(1, channels)
    return None


class DCGANDiscriminator(nn.Module):
    """Maps images ``[B, channels, 64, 64]`` to raw logits ``[B]`` (no sigmoid).

    ``norm`` in {"batch", "instance", "layer", "none"} is used after convolutions 2-4 (WGAN-GP critics
    must not use "batch": the penalty is per sample). ``spectral=True`` wraps every convolution in
    :func:`torch.nn.utils.parametrizations.spectral_norm` (SNGAN), i.e. ``W / sigma_max(W)``.
    """

    def __init__(self, ndf: int = 64, channels: int = 3, norm: str = "batch", spectral: bool = False):
        super().__init__()
        if norm not in NORMS:
            raise ConfigError(f"DCGAN discriminator norm must be one of {list(NORMS)}, got {norm!r}")
        self.norm = norm
        self.spectral = spectral

        def conv(c_in: int, c_out: int, stride: int, pad: int, bias: bool) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, 4, stride, pad, bias=bias)
            return spectral_norm(layer) if spectral else layer

        widths = [ndf, ndf * 2, ndf * 4, ndf * 8]
        layers: list[nn.Module] = [conv(channels, ndf, 2, 1, False), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers.append(conv(c_in, c_out, 2, 1, norm == "none"))
            n = _norm_layer(norm, c_out)
            if n is not None:
                layers.append(n)
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(conv(ndf * 8, 1, 1, 0, False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def init_dcgan_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """DCGAN initialisation, used as ``model.apply(init_dcgan_weights)``.

    Conv / ConvTranspose weights ~ N(0, 0.02²); BatchNorm (and affine Instance/GroupNorm) weights
    ~ N(1, 0.02²); all biases 0. For spectrally normalised convolutions the underlying unnormalised
    weight (``parametrizations.weight.original``) is initialised. Pass ``generator`` (e.g. with
    ``functools.partial``) to make the draw independent of the global RNG.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        if parametrize.is_parametrized(module, "weight"):
            weight = module.parametrizations.weight.original
        else:
            weight = module.weight
        with torch.no_grad():
            nn.init.normal_(weight, 0.0, 0.02, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)):
        if getattr(module, "weight", None) is not None:
            with torch.no_grad():
                nn.init.normal_(module.weight, 1.0, 0.02, generator=generator)
                nn.init.zeros_(module.bias)
