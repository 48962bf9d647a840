"""Process-level helpers: device choice, seeding, stable fingerprints of settings."""
from __future__ import annotations

import hashlib
import json
import os
import random

import numpy as np
import torch


def get_device() -> torch.device:
    """`GENDA_DEVICE` (cpu | cuda | cuda:N | auto, default auto). Not a param: the device must not
    change results enough to invalidate DVC's cache, and it is not an experiment knob."""
    want = os.environ.get("GENDA_DEVICE", "auto")
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if want == "auto" else want)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for the pipeline's own random draws.

    Random tensors are drawn on the CPU from this generator and then moved, so the same seed gives
    the same noise / batches on CPU and GPU."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def fingerprint(obj) -> str:
    """Short stable hash of a JSON-able object (used to tie checkpoints to the settings that made them)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def to_float_images(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,C,H,W] in 0..255 -> float in [-1, 1]."""
    return x_uint8.float().div_(127.5).sub_(1.0)


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """float [B,C,H,W] in [-1, 1] -> uint8 in 0..255 (clamped, rounded)."""
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
