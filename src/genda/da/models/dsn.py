"""Domain Separation Networks (Bousmalis et al., NeurIPS 2016) for 28×28 images.

Components (``B`` = batch, ``D`` = ``code_dim``, default 100):

* shared encoder :math:`E_c`: :class:`~genda.da.models.dann.DANNFeatures` [B,3,28,28] -> [B,800], then
  Linear 800→D and ReLU -> :math:`h_c` [B, D];
* private encoders :math:`E_p^s, E_p^t` (one per domain, :class:`DSNPrivateEncoder`): conv 5×5 3→32, ReLU,
  MaxPool 2 ([B,32,12,12]), conv 5×5 32→64, ReLU, MaxPool 2 ([B,64,4,4]), flatten 1024, Linear→D, ReLU
  -> :math:`h_p` [B, D];
* shared decoder :math:`D` (:class:`DSNDecoder`) reconstructs :math:`\\hat x = D(h_c + h_p)`:
  Linear D→3·14·14, ReLU, reshape [B,3,14,14], conv 3×3 3→32, ReLU, conv 3×3 32→32, ReLU,
  nearest ×2 upsample [B,32,28,28], conv 3×3 32→32, ReLU, conv 3×3 32→3 -> [B,3,28,28] (no output
  activation: the scale-invariant loss ignores a global offset);
* classifier :math:`G` on :math:`h_c`: D→100, BN, ReLU, 100→C;
* domain classifier on :math:`h_c` (similarity loss, behind a GRL): D→100, BN, ReLU, 100→2.

The decoder is fed the *sum* of shared and private codes, as in the paper.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genda.da.models.dann import DANNDomainHead, DANNFeatures

__all__ = ["DSNSharedEncoder", "DSNPrivateEncoder", "DSNDecoder", "DSNClassifier", "DSN"]


class DSNSharedEncoder(nn.Module):
    """:math:`E_c`: [B, 3, 28, 28] -> shared code [B, code_dim] (DANN conv features + Linear + ReLU)."""

    def __init__(self, code_dim: int = 100, in_channels: int = 3, image_size: int = 28) -> None:
        super().__init__()
        self.features = DANNFeatures(in_channels, image_size)
        self.fc = nn.Sequential(nn.Linear(self.features.out_dim, code_dim), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


class DSNPrivateEncoder(nn.Module):
    """:math:`E_p`: [B, 3, 28, 28] -> private code [B, code_dim]."""

    def __init__(self, code_dim: int = 100, in_channels: int = 3, image_size: int = 28) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * side * side, code_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class DSNDecoder(nn.Module):
    """Shared decoder: code [B, code_dim] -> image [B, out_channels, image_size, image_size]."""

    def __init__(self, code_dim: int = 100, out_channels: int = 3, image_size: int = 28) -> None:
        super().__init__()
        if image_size % 2:
            raise ValueError(f"DSNDecoder needs an even image_size, got {image_size}")
        self.half = image_size // 2
        self.out_channels = out_channels
        self.fc = nn.Sequential(nn.Linear(code_dim, out_channels * self.half * self.half), nn.ReLU(inplace=True))
        self.conv = nn.Sequential(
            nn.Conv2d(out_channels, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, out_channels, 3, padding=1),
        )

    def forward(self, h: Tensor) -> Tensor:
        z = self.fc(h).view(h.shape[0], self.out_channels, self.half, self.half)
        return self.conv(z)


class DSNClassifier(nn.Module):
    """Task classifier on the shared code: [B, code_dim] -> logits [B, n_classes] (D→100, BN, ReLU, 100→C)."""

    def __init__(self, code_dim: int = 100, n_classes: int = 10, hidden: int = 100) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(code_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_classes)
        )

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class DSN(nn.Module):
    """Container of all DSN networks; see the module docstring for shapes."""

    def __init__(self, n_classes: int = 10, code_dim: int = 100, in_channels: int = 3, image_size: int = 28) -> None:
        super().__init__()
        self.shared_encoder = DSNSharedEncoder(code_dim, in_channels, image_size)
        self.private_source = DSNPrivateEncoder(code_dim, in_channels, image_size)
        self.private_target = DSNPrivateEncoder(code_dim, in_channels, image_size)
        self.decoder = DSNDecoder(code_dim, in_channels, image_size)
        self.classifier = DSNClassifier(code_dim, n_classes)
        self.domain_head = DANNDomainHead(code_dim, 100)

    def private(self, x: Tensor, domain: str) -> Tensor:
        """Private code [B, D] from the encoder of ``domain`` ("source" or "target")."""
        if domain == "source":
            return self.private_source(x)
        if domain == "target":
            return self.private_target(x)
        raise ValueError(f"domain must be 'source' or 'target', got {domain!r}")

    def reconstruct(self, h_c: Tensor, h_p: Tensor) -> Tensor:
        """:math:`\\hat x = D(h_c + h_p)`: [B, D], [B, D] -> [B, 3, 28, 28]."""
        return self.decoder(h_c + h_p)

    @torch.no_grad()
    def reconstructions(self, x: Tensor, domain: str) -> dict[str, Tensor]:
        """For figures: decoder outputs from shared+private, shared only and private only codes."""
        h_c, h_p = self.shared_encoder(x), self.private(x, domain)
        return {
            "all": self.decoder(h_c + h_p),
            "shared": self.decoder(h_c),
            "private": self.decoder(h_p),
        }
