"""The baseline: Gatys et al. (2016)'s per-image optimisation. The pixels of one image are optimised for the same
objective MSG-Net is trained on (:func:`genda.style.losses.objective`, same loss network, same weights),

.. math::  y^* = \\arg\\min_y\\; w_c \\ell_c(y, x) + w_s \\ell_s(y, s) + w_{tv} \\ell_{tv}(y),

starting from the content image ``x`` (Adam on the pixels in [-1, 1], clamped after each step, ``steps`` steps of
learning rate ``lr``: a fixed iteration budget, so the same params give the same image; its wall time is measured and
reported next to it). Every step is a forward and backward pass of VGG-16 at full resolution, which is what a
feed-forward stylizer saves.
"""
from __future__ import annotations

import time

import torch

from genda.data.tensors import to_float_images, to_uint8_images
from genda.style.losses import objective, style_grams

__all__ = ["gatys"]


def gatys(content: torch.Tensor, style: torch.Tensor, vgg, weights: dict, *, steps: int, lr: float,
          c) -> tuple[torch.Tensor, float]:
    """(uint8 ``[1, 3, S, S]`` result, wall seconds) for uint8 ``content [1, 3, S, S]`` and ``style [1, 3, S', S']``;
    ``vgg`` the frozen loss network, ``weights`` as :func:`genda.style.losses.objective`, ``c`` a
    :class:`genda.runtime.precision.Compute`."""
    t0 = time.perf_counter()
    x = c.images(to_float_images(content).to(c.device))
    with torch.no_grad(), c.autocast():
        fx = vgg(x)
        gs = style_grams(vgg(c.images(to_float_images(style).to(c.device))))
    y = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    for _ in range(steps):
        with c.autocast():
            total, _, _ = objective(vgg(y), fx, gs, y, weights)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            y.clamp_(-1, 1)
    return to_uint8_images(y).cpu(), time.perf_counter() - t0
