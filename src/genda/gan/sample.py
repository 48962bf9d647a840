"""Sampling a trained face GAN: the generator file, and fixed-seed images in the course format."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genda.data.tensors import to_uint8_images
from genda.gan.bn_mode import sampling_mode
from genda.gan.networks import build_generator
from genda.rng import sample_z


def run_generator(G: nn.Module, z: torch.Tensor, generator: torch.Generator, **mixing) -> torch.Tensor:
    """G(z), with G's noise inputs (StyleGAN2-lite) drawn from ``generator`` too, so that fixed-seed samples
    and resumed trainings are reproducible. ``mixing``: a training forward's style-mixing inputs
    (:func:`genda.gan.tricks.style_mixing`; none here when sampling, which feeds one w to every layer)."""
    if getattr(G, "takes_noise_generator", False):
        return G(z, noise_generator=generator, **mixing)
    return G(z, **mixing)


def load_generator(path: Path, device: torch.device) -> tuple[nn.Module, dict]:
    from genda.runtime.checkpoint import load_weights

    ck = load_weights(path, map_location=device)
    G = build_generator(ck["cfg"]).to(device)
    G.load_state_dict(ck["G"])
    G.eval()
    return G, ck["cfg"]


@torch.no_grad()
def generate(G: nn.Module, cfg: dict, n: int, seed: int, device: torch.device, batch: int = 250,
             bn_mode: str = "eval", compute: dict | None = None) -> torch.Tensor:
    """n images as uint8 [n,3,H,W] from z drawn with a fixed-seed CPU generator (same on CPU/GPU);
    ``bn_mode``: see :mod:`genda.gan.bn_mode` (with ``train``, BN statistics of each batch of ``batch``);
    ``compute``: the :mod:`genda.runtime.precision` params section."""
    from genda.runtime.precision import Compute

    g = torch.Generator().manual_seed(seed)
    out = []
    c = Compute(compute, device)
    with sampling_mode(c.module(G), bn_mode), c.autocast():
        for i in range(0, n, batch):
            z = sample_z(min(batch, n - i), cfg["z_dim"], cfg["z_prior"], generator=g).to(device)
            out.append(to_uint8_images(run_generator(G, z, g)).cpu())
    return torch.cat(out)
