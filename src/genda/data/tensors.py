"""The pipeline's image tensors: uint8 [B, C, H, W] in 0..255 on disk, float in [-1, 1] in the networks."""
from __future__ import annotations

import torch


def to_float_images(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,C,H,W] in 0..255 -> float in [-1, 1]."""
    return x_uint8.float().div_(127.5).sub_(1.0)


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """float [B,C,H,W] in [-1, 1] -> uint8 in 0..255 (clamped, rounded)."""
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@torch.no_grad()
def predict_labels(model: torch.nn.Module, x_uint8: torch.Tensor, device: torch.device, *, batch: int = 1000,
                   head: str | None = None) -> torch.Tensor:
    """Class predictions int64 ``[N]`` (CPU) of uint8 images ``[N, C, H, W]``: ``argmax`` of the logits of
    ``model`` (or of its method ``head``, e.g. a DA network's ``classify``) in eval mode, ``batch`` images at a
    time. Every classifier of the pipeline (the digit classifier, the attribute classifiers, the DA networks)
    predicts through this one function."""
    model.eval()
    forward = getattr(model, head) if head else model
    return torch.cat([forward(to_float_images(x_uint8[i:i + batch].to(device))).argmax(1).cpu()
                      for i in range(0, len(x_uint8), batch)])
