"""The CoMatch layer of MSG-Net (Zhang & Dana 2017, Sec. 3; "Inspiration" layer of the reference code): it matches
second-order feature statistics to a target style *inside* the generator, with a learnable weight.

Given the target Gram matrix :math:`G \\in \\mathbb{R}^{C \\times C}` of the style's encoded features (set once per
style by the Siamese encoder, :meth:`CoMatch.set_target`) and the content features
:math:`\\Phi(x) \\in \\mathbb{R}^{C \\times HW}` of one image,

.. math::  \\hat{\\mathcal{Y}} = \\operatorname{reshape}\\big((W G)^\\top \\Phi(x)\\big), \\qquad
           W \\in \\mathbb{R}^{C \\times C} \\text{ learnable},

the closed-form minimiser direction of :math:`\\lVert G(\\hat{\\mathcal{Y}}) - G\\rVert` for a fixed content
(the paper's derivation), with :math:`W` learning how far to move. Shapes::

    target G   [B_s, C, C]   B_s = 1 (one style for the whole batch) or B
    W          [1, C, C]     initialised U(0, 0.02) as the reference
    x          [B, C, H, W]  ->  out [B, C, H, W]
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["CoMatch"]


class CoMatch(nn.Module):
    """``out_b = reshape((W G)^T Phi_b)`` (module docstring). Call :meth:`set_target` before :meth:`forward`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.empty(1, channels, channels).uniform_(0.0, 0.02))
        self.target: torch.Tensor | None = None

    def set_target(self, gram: torch.Tensor) -> None:
        """The style's Gram matrix ``[B_s, C, C]`` (kept with its autograd graph: training reaches the encoder)."""
        if gram.dim() != 3 or gram.shape[1:] != (self.channels, self.channels):
            raise ValueError(f"CoMatch({self.channels}) target must be [B, {self.channels}, {self.channels}], "
                             f"got {tuple(gram.shape)}")
        self.target = gram

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.target is None:
            raise RuntimeError("CoMatch: set_target(gram) before forward (MSGNet.set_style)")
        b, c, h, w = x.shape
        p = torch.bmm(self.weight.expand(self.target.shape[0], c, c), self.target.to(x.dtype))  # W G  [B_s, C, C]
        p = p.transpose(1, 2).expand(b, c, c)                                                  # (W G)^T [B, C, C]
        return torch.bmm(p, x.reshape(b, c, h * w)).view(b, c, h, w)

    def extra_repr(self) -> str:
        return f"C={self.channels}"
