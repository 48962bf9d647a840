"""The loss network: VGG-16's convolutional features up to ``relu4_3`` (Simonyan & Zisserman 2015), as in Johnson
et al. (2016) and MSG-Net, frozen.

Weights, in this order:

1. ``weights`` (the ``style.vgg_weights`` param), when the file exists: torchvision's ImageNet checkpoint
   ``vgg16-397923af.pth`` (keys ``features.<i>.weight/bias``) or a state dict of the features alone;
2. torchvision's cache, ``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth``, when present;
3. otherwise (offline: nothing can be downloaded here) a **random-weight** VGG-16 drawn from ``seed`` with
   torchvision's own initialisation (Kaiming-normal, fan-out, zero biases), and exactly one ``warnings.warn`` naming
   the fallback. Gram statistics of random convolutional features still carry texture (Ustyuzhaninov et al. 2017;
   He et al. 2016), but the losses then measure a random-feature style, not the ImageNet-VGG one of the paper.

:func:`load_loss_network` returns the network with its name (``vgg16-imagenet(<file>)`` or
``vgg16-random(seed=<s>)``); that name goes next to every number and figure made with it, as the FID stages do
with their feature extractor.

Input: images in ``[-1, 1]`` ``[B, 3, H, W]``; they are mapped to ``[0, 1]`` and normalised by ImageNet's mean and
std. Output: the four feature maps ``relu1_2 [B,64,H,W]``, ``relu2_2 [B,128,H/2,W/2]``, ``relu3_3 [B,256,H/4,W/4]``,
``relu4_3 [B,512,H/8,W/8]``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

__all__ = ["LAYERS", "VGG_FILE", "LossNetwork", "load_loss_network"]

VGG_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG-16 (IMAGENET1K_V1)
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
_TAPS = (3, 8, 15, 22)  # indices of those ReLUs in torchvision's vgg16().features
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class LossNetwork(nn.Module):
    """VGG-16 ``features[:23]`` (frozen, eval) returning the activations at :data:`LAYERS` (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        self.features = make_layers(cfgs["D"])[: _TAPS[-1] + 1]
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in _TAPS:
                out.append(h)
        return out


def _random_init(net: LossNetwork, seed: int) -> None:
    """torchvision's VGG initialisation, drawn from a generator seeded with ``seed`` (the global RNG untouched)."""
    g = torch.Generator().manual_seed(seed)
    for m in net.features:
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5)
                m.bias.zero_()


def _weights_file(weights: str | Path | None) -> Path | None:
    if weights:
        return Path(weights) if Path(weights).is_file() else None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG_FILE
    return cached if cached.is_file() else None


def load_loss_network(weights: str | Path | None, seed: int, device: torch.device | str = "cpu"
                      ) -> tuple[LossNetwork, str]:
    """(frozen :class:`LossNetwork` in eval mode on ``device``, its name); module docstring for the order of the
    weights and the one warning of the random-weight fallback."""
    from genda.errors import DataError
    from genda.runtime.checkpoint import load_weights

    net = LossNetwork()
    path = _weights_file(weights)
    if path is None:
        where = f"'{weights}' does not exist" if weights else f"no {VGG_FILE} in torchvision's cache"
        warnings.warn(f"style loss network: {where}; falling back to a random-weight VGG-16 (seed {seed}), "
                      f"named vgg16-random(seed={seed}) next to every number", stacklevel=2)
        _random_init(net, seed)
        name = f"vgg16-random(seed={seed})"
    else:
        sd = load_weights(path)
        sd = {k.removeprefix("features."): v for k, v in sd.items() if not k.startswith("classifier.")}
        sd = {k: v for k, v in sd.items() if int(k.split(".")[0]) <= _TAPS[-1]}
        try:
            net.features.load_state_dict(sd)
        except RuntimeError as e:
            raise DataError(f"{path}: not VGG-16 weights ({str(e).splitlines()[0]})") from None
        name = f"vgg16-imagenet({path.name})"
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, name
