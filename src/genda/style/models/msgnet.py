"""MSG-Net, the multi-style generative network (Zhang & Dana 2017, Fig. 3; layout of the reference ``Net``).

One network for all styles: a **Siamese encoder** ``E`` (shared by the style and the content branch) maps the style
image to features whose Gram matrix :math:`G(E(s))` is the CoMatch target (:meth:`MSGNet.set_style`); the content
image goes through ``E``, the **CoMatch** layer (:mod:`genda.style.models.comatch`), residual blocks and the
upsampling decoder. Widths, for generator width ``ngf`` (``n`` = ``ngf``, a multiple of 8; the reference has
``n = 128``)::

    x [B, 3, H, W]
    E: ConvLayer(3, n/2, 7) - IN - ReLU                         [B, n/2, H, W]
       Bottleneck(n/2, n/4, stride 2)                           [B, n, H/2, W/2]
       Bottleneck(n, n, stride 2)                               [B, 4n, H/4, W/4]
    CoMatch(4n)  with target G(E(s)) [1, 4n, 4n]                [B, 4n, H/4, W/4]
    n_blocks x Bottleneck(4n, n)                                [B, 4n, H/4, W/4]
    UpBottleneck(4n, n/4)                                       [B, n, H/2, W/2]
    UpBottleneck(n, n/8)                                        [B, n/2, H, W]
    IN - ReLU - ConvLayer(n/2, 3, 7)                            [B, 3, H, W]   (images in [-1, 1], unbounded)

H and W must be multiples of 4.
"""
from __future__ import annotations

import torch
from torch import nn

from genda.style.gram import gram_matrix
from genda.style.models.blocks import Bottleneck, ConvLayer, UpBottleneck, norm
from genda.style.models.comatch import CoMatch

__all__ = ["MSGNet"]


class MSGNet(nn.Module):
    """The generator (module docstring). ``set_style(s)`` once per style, then ``forward(x)`` for any batch."""

    def __init__(self, ngf: int = 128, n_blocks: int = 6) -> None:
        super().__init__()
        if ngf % 8:
            raise ValueError(f"MSGNet: ngf must be a multiple of 8, got {ngf}")
        self.encoder = nn.Sequential(ConvLayer(3, ngf // 2, 7), norm(ngf // 2), nn.ReLU(inplace=True),
                                     Bottleneck(ngf // 2, ngf // 4, 2), Bottleneck(ngf, ngf, 2))
        self.comatch = CoMatch(4 * ngf)
        self.decoder = nn.Sequential(*[Bottleneck(4 * ngf, ngf) for _ in range(n_blocks)],
                                     UpBottleneck(4 * ngf, ngf // 4), UpBottleneck(ngf, ngf // 8),
                                     norm(ngf // 2), nn.ReLU(inplace=True), ConvLayer(ngf // 2, 3, 7))

    def set_style(self, style: torch.Tensor) -> None:
        """Style image(s) ``[1, 3, S, S]`` in [-1, 1] -> the CoMatch target :math:`G(E(s))` ``[1, 4n, 4n]``."""
        self.comatch.set_target(gram_matrix(self.encoder(style)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.comatch(self.encoder(x)))
