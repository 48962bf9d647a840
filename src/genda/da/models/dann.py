"""DANN networks for 28×28 digits (Ganin et al. 2016, MNIST→MNIST-M architecture).

Shapes for a 28×28 input (``B`` = batch):

=====================  ==================  =========================================
layer                  output              parameters
=====================  ==================  =========================================
input                  [B, 3, 28, 28]
conv 5×5, 3→64         [B, 64, 24, 24]     3·64·25 + 64 = 4 864
BatchNorm2d(64)        [B, 64, 24, 24]     2·64 = 128
MaxPool 2, ReLU        [B, 64, 12, 12]
conv 5×5, 64→50        [B, 50, 8, 8]       64·50·25 + 50 = 80 050
BatchNorm2d(50)        [B, 50, 8, 8]       2·50 = 100
Dropout2d(0.5)         [B, 50, 8, 8]
MaxPool 2, ReLU        [B, 50, 4, 4]
flatten                [B, 800]            total 85 142
=====================  ==================  =========================================

Label predictor (:class:`DANNClassifier`) with ``hidden=(100, 100)`` (default, as in the widely used
PyTorch DANN port): 800→100, BN, ReLU, Dropout(0.5), 100→100, BN, ReLU, 100→C. With ``hidden=(100,)``
it is the shorter 800→100 (BN, ReLU, Dropout) →C head. Domain classifier (:class:`DANNDomainHead`):
800→100, BN, ReLU, 100→2.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["DANNFeatures", "DANNClassifier", "DANNDomainHead", "DANNNet"]


class DANNFeatures(nn.Module):
    """Feature extractor :math:`G_f`: [B, C_in, H, W] -> [B, out_dim]; out_dim = 800 for 28×28.

    Args:
        in_channels: image channels (3; grey images should be repeated to 3 channels by the caller).
        image_size: input height = width, only used to compute :attr:`out_dim` ((s-4)/2 - 4)/2)² · 50.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 28) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=5),
            nn.BatchNorm2d(64),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 50, kernel_size=5),
            nn.BatchNorm2d(50),
            nn.Dropout2d(0.5),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        side = ((image_size - 4) // 2 - 4) // 2
        if side <= 0:
            raise ValueError(f"image_size {image_size} is too small for DANNFeatures (needs >= 16)")
        self.out_dim = 50 * side * side

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def _mlp(in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for i, h in enumerate(hidden):
        layers += [nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
        if i == 0 and dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class DANNClassifier(nn.Module):
    """Label predictor :math:`G_y`: [B, in_dim] -> logits [B, n_classes].

    Each hidden layer is Linear, BatchNorm1d, ReLU; dropout (p=``dropout``) follows the first one.
    ``hidden=(100, 100)`` (default): 800→100→100→C; ``hidden=(100,)``: 800→100→C.
    """

    def __init__(
        self, in_dim: int = 800, n_classes: int = 10, hidden: Sequence[int] = (100, 100), dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.net = _mlp(in_dim, tuple(hidden), n_classes, dropout)

    def forward(self, f: Tensor) -> Tensor:
        return self.net(f)


class DANNDomainHead(nn.Module):
    """Domain classifier :math:`G_d`: [B, in_dim] -> 2 domain logits [B, 2] (0 = source, 1 = target).

    in_dim→hidden, BatchNorm1d, ReLU, hidden→2 (800→100→2 for the digit network).
    """

    def __init__(self, in_dim: int = 800, hidden: int = 100) -> None:
        super().__init__()
        self.net = _mlp(in_dim, (hidden,), 2, dropout=0.0)

    def forward(self, f: Tensor) -> Tensor:
        return self.net(f)


class DANNNet(nn.Module):
    """:class:`DANNFeatures` followed by :class:`DANNClassifier`: [B, 3, 28, 28] -> logits [B, n_classes].

    ``.features(x)`` gives the 800-d features, ``.classifier(f)`` the logits.
    """

    def __init__(
        self,
        n_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 28,
        hidden: Sequence[int] = (100, 100),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = DANNFeatures(in_channels, image_size)
        self.classifier = DANNClassifier(self.features.out_dim, n_classes, hidden, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
