"""ImageNet-pretrained ResNet backbones that never download.

:func:`resnet_backbone` returns a :class:`ResNetBackbone` mapping [B, 3, H, W] (ImageNet-normalised) to
pooled features [B, out_dim] (512 for resnet18/34, 2048 for resnet50). Weights are looked up in order:

1. ``weights_path`` if given (must exist);
2. the torch hub cache, ``<torch.hub.get_dir()>/checkpoints/<file>``, where ``<file>`` is torchvision's
   file name for ``IMAGENET1K_V1`` (``resnet18-f37072fd.pth`` for ResNet18_Weights.IMAGENET1K_V1);
   ``torch.hub.get_dir()`` is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``).

If neither exists, a :class:`~genda.errors.ConfigError` says where to put the file, unless
``require_pretrained=False`` (random initialisation; tests only).

:class:`ImageNetInput` turns our [-1, 1] digit images [B, 3, 28, 28] into ImageNet-normalised
[B, 3, size, size] (bilinear upsampling).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.errors import ConfigError, DataError

__all__ = ["ResNetBackbone", "ImageNetInput", "resnet_backbone", "imagenet_weights_file", "SUPPORTED_RESNETS"]

SUPPORTED_RESNETS: dict[str, int] = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_weights_file(name: str = "resnet18") -> str:
    """torchvision's file name of the IMAGENET1K_V1 weights of ``name`` (e.g. ``resnet18-f37072fd.pth``)."""
    if name not in SUPPORTED_RESNETS:
        raise ConfigError(f"unknown backbone {name!r}; valid backbones: {', '.join(SUPPORTED_RESNETS)}")
    import torchvision  # lazily: importing torchvision costs ~3 s (torch._dynamo) in every stage otherwise

    weights = torchvision.models.get_model_weights(name)["IMAGENET1K_V1"]
    return os.path.basename(urlparse(weights.url).path)


class ResNetBackbone(nn.Module):
    """torchvision ResNet without its ``fc`` layer: [B, 3, H, W] -> [B, out_dim] (global average pooled).

    Attributes: ``out_dim``, ``pretrained`` (whether ImageNet weights were loaded), ``weights_source``
    (path they came from, or None).
    """

    def __init__(self, body: nn.Module, out_dim: int, pretrained: bool, weights_source: str | None) -> None:
        super().__init__()
        self.body = body
        self.out_dim = out_dim
        self.pretrained = pretrained
        self.weights_source = weights_source

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class ImageNetInput(nn.Module):
    """[-1, 1] images [B, 3, h, w] -> ImageNet-normalised [B, 3, size, size].

    :math:`x' = ((x+1)/2 - \\mu) / \\sigma` per channel (μ, σ: ImageNet statistics), then bilinear resize.
    """

    def __init__(self, size: int = 64) -> None:
        super().__init__()
        self.size = int(size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = ((x + 1.0) * 0.5 - self.mean) / self.std
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x


def _missing_weights_message(name: str, file_name: str, cache_path: Path) -> str:
    import torchvision
    weights = torchvision.models.get_model_weights(name)["IMAGENET1K_V1"]
    return (
        f"ImageNet weights for backbone {name!r} were not found and are never downloaded by the pipeline. "
        f"Put torchvision's file {file_name} at {cache_path} (the torch hub cache; set TORCH_HOME to move it), "
        f"or set the method option weights_path to a local copy of it. "
        f"The file is available from {weights.url} (fetch it on a machine with internet access). "
        f"To train from random initialisation instead, set require_pretrained: false."
    )


def resnet_backbone(
    name: str = "resnet18", weights_path: str | None = None, require_pretrained: bool = True
) -> ResNetBackbone:
    """Build a ResNet feature extractor and load local ImageNet weights (never downloads).

    Args:
        name: one of :data:`SUPPORTED_RESNETS` ("resnet18", "resnet34", "resnet50").
        weights_path: explicit path to a torchvision state dict (``.pth``); must exist if given.
        require_pretrained: if True and no weights are found, raise ConfigError naming where to put them.

    Returns:
        :class:`ResNetBackbone`, [B, 3, H, W] -> [B, 512] (resnet18/34) or [B, 2048] (resnet50).

    Raises:
        ConfigError: unknown name, ``weights_path`` missing, or no weights and ``require_pretrained``.
        DataError: the weights file exists but cannot be read or does not match the architecture.
    """
    file_name = imagenet_weights_file(name)
    import torchvision
    body = torchvision.models.get_model(name, weights=None)
    body.fc = nn.Identity()

    cache_path = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if weights_path is not None:
        path: Path | None = Path(weights_path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"weights_path {str(path)!r} does not exist. "
                + _missing_weights_message(name, file_name, cache_path)
            )
    elif cache_path.is_file():
        path = cache_path
    else:
        path = None

    if path is None:
        if require_pretrained:
            raise ConfigError(_missing_weights_message(name, file_name, cache_path))
        return ResNetBackbone(body, SUPPORTED_RESNETS[name], pretrained=False, weights_source=None)

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name for the user
        raise DataError(f"cannot read ResNet weights file {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataError(f"ResNet weights file {path} does not contain a state dict")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        body.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(f"ResNet weights file {path} does not match {name}: {exc}") from exc
    return ResNetBackbone(body, SUPPORTED_RESNETS[name], pretrained=True, weights_source=str(path))
