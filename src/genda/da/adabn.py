"""AdaBN: test-time re-estimation of BatchNorm statistics on the target domain (Li et al., 2016/2018).

A network trained with BatchNorm normalises every test image with the *running* statistics it gathered
during training -- on source images for source-only, on a mix of both domains for a joint-batch DANN.
AdaBN replaces them, for each BatchNorm layer ``l``, by the statistics of that layer's input over the
unlabelled *target training* images (no labels, no gradient step; the weights ``gamma_l, beta_l`` stay)::

    mu_l      = mean over the target images (and spatial positions) of h_l
    sigma2_l  = variance of h_l over the same
    BN_l(h)   = gamma_l (h - mu_l) / sqrt(sigma2_l + eps) + beta_l

The statistics are accumulated with ``momentum=None`` (PyTorch's cumulative average): the mean of the
per-batch means and of the per-batch unbiased variances, in a fixed order, so the result is deterministic.
Layers are visited in forward order, so every layer sees inputs already normalised by the re-estimated
layers below it, as in the paper.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from genda.data.tensors import to_float_images

__all__ = ["adapt_bn"]


@torch.no_grad()
def adapt_bn(model: nn.Module, x_uint8: torch.Tensor, device: torch.device, batch: int = 500) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are those of ``x_uint8`` (uint8 [N, C, H, W]),
    gathered through ``model.classify``; every other layer (dropout included) in eval mode. Returns the copy
    in eval mode; ``model`` itself is untouched. A model without BatchNorm is returned as an eval-mode copy."""
    if len(x_uint8) == 0:
        raise ValueError("adapt_bn: no images to estimate BatchNorm statistics from")
    m = copy.deepcopy(model).eval()
    bns = [mod for mod in m.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
        bn.train()
    if bns:
        for i in range(0, len(x_uint8), batch):
            m.classify(to_float_images(x_uint8[i:i + batch].to(device)))
    return m.eval()
