"""Randomness of the whole pipeline: process seeding, the seeded draws every trainer and sampler makes, latent
priors, and stable fingerprints of settings.

Every function drawing random numbers takes an optional ``torch.Generator``. Numbers are drawn on the generator's
device (the pipeline uses a CPU generator) and then moved to the target device, so the same seed gives the same
tensors on CPU and GPU. Without a generator the global RNG of the target device is used.
"""
from __future__ import annotations

import hashlib
import json
import math
import random

import numpy as np
import torch

from genda.choices import Z_PRIORS
from genda.errors import ConfigError


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for the pipeline's own random draws.

    Random tensors are drawn on the CPU from this generator and then moved, so the same seed gives
    the same noise / batches on CPU and GPU."""
    from genda.runtime.distributed import rank_seed

    seed = rank_seed(seed)  # in a distributed run each rank draws its own noise (rank 0: `seed` itself)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def fingerprint(obj) -> str:
    """Short stable hash of a JSON-able object (used to tie checkpoints to the settings that made them)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _gen_device(generator: torch.Generator | None, device) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def rand(shape, *, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """U[0, 1) of ``shape``, drawn on the generator's device, returned on ``device``."""
    return torch.rand(shape, generator=generator, device=_gen_device(generator, device)).to(device)


def randn(shape, *, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """N(0, 1) of ``shape``, drawn on the generator's device, returned on ``device``."""
    return torch.randn(shape, generator=generator, device=_gen_device(generator, device)).to(device)


def randint(low: int, high: int, shape, *, generator=None, device="cpu") -> torch.Tensor:
    """Integers uniform in [low, high) of ``shape`` (int64), returned on ``device``."""
    out = torch.randint(low, high, shape, generator=generator, device=_gen_device(generator, device))
    return out.to(device)


def sample_z(n: int, z_dim: int, prior: str = "normal", *, generator=None, device="cpu") -> torch.Tensor:
    """Latent codes ``[n, z_dim]``.

    * ``"normal"``:  z ~ N(0, I)
    * ``"uniform"``: z ~ U[-1, 1]^z_dim
    * ``"sphere"``:  z = sqrt(z_dim) · u / ||u||₂ with u ~ N(0, I), i.e. uniform on the sphere of
      radius sqrt(z_dim) (where a high-dimensional normal concentrates anyway).
    """
    if prior == "normal":
        return randn((n, z_dim), generator=generator, device=device)
    if prior == "uniform":
        return rand((n, z_dim), generator=generator, device=device) * 2.0 - 1.0
    if prior == "sphere":
        u = randn((n, z_dim), generator=generator, device=device)
        return u / u.norm(dim=1, keepdim=True).clamp_min(1e-12) * math.sqrt(z_dim)
    raise ConfigError(f"latent prior must be one of {list(Z_PRIORS)}, got {prior!r}")
