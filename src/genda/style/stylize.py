"""The feed-forward stylizer: held-out images through a trained MSG-Net, one style at a time, and its speed.

Speed (:func:`seconds_per_image`): wall seconds per image of one ``[1, 3, S, S]`` forward pass at ``S`` = the
evaluation side (256 in every profile), averaged over ``n`` passes after one warm-up, on the stage's threads and
precision; the style's CoMatch target is set once beforehand (per style, not per image: the real-time use case).
"""
from __future__ import annotations

import time

import torch

from genda.data.tensors import to_float_images, to_uint8_images
from genda.style.images import style_image
from genda.style.models import MSGNet

__all__ = ["stylize", "seconds_per_image"]


@torch.no_grad()
def stylize(model: MSGNet, content: torch.Tensor, style: str, style_size: int, c) -> torch.Tensor:
    """uint8 ``content [N, 3, S, S]`` in style ``style`` -> uint8 ``[N, 3, S, S]`` (``c``: a
    :class:`genda.runtime.precision.Compute`)."""
    dev = c.device
    with c.autocast():
        model.set_style(c.images(to_float_images(style_image(style, style_size)).to(dev)))
        out = [model(c.images(to_float_images(x[None]).to(dev))).float() for x in content]
    return to_uint8_images(torch.cat(out)).cpu()


@torch.no_grad()
def seconds_per_image(model: MSGNet, size: int, n: int, c) -> float:
    """Mean wall seconds of one ``[1, 3, size, size]`` forward pass (module docstring); the target must be set."""
    x = c.images(torch.zeros(1, 3, size, size, device=c.device))
    with c.autocast():
        model(x)  # warm-up
        t0 = time.perf_counter()
        for _ in range(n):
            model(x)
        return (time.perf_counter() - t0) / n
