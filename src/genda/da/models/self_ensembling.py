"""The larger digit network of self-ensembling (French et al., ICLR 2018), their ``grey-32-64-128-gp``.

Eight 3×3 conv-BN-ReLU layers in three blocks (32, 64, 128 channels), 2×2 max pooling after each block, global
average pooling, then a small fully connected label predictor. French et al. used it for their MNIST↔USPS and
synthetic-digit experiments; in genda it is the ``network: gp`` option of the digit methods (source-only,
target-only, DANN, mean teacher), next to the default ``dann`` network (:mod:`genda.da.models.dann`).

Shapes for a 28×28 RGB input (``B`` = batch; every conv is 3×3 with padding 1, followed by BatchNorm2d and ReLU):

======================  ==================  =========================================
layer                   output              parameters
======================  ==================  =========================================
input                   [B, 3, 28, 28]
conv 3→32, 32→32        [B, 32, 28, 28]     896 + 9 248 (+ 128 BN)
MaxPool 2               [B, 32, 14, 14]
conv 32→64, 2× 64→64    [B, 64, 14, 14]     18 496 + 2 · 36 928 (+ 384 BN)
MaxPool 2               [B, 64, 7, 7]
conv 64→128, 2×128→128  [B, 128, 7, 7]      73 856 + 2 · 147 584 (+ 768 BN)
MaxPool 2               [B, 128, 3, 3]
global average pool     [B, 128]            features total 472 800
======================  ==================  =========================================

Label predictor (:class:`SelfEnsemblingClassifier`) with ``hidden=(128,)``: Dropout(0.5), 128→128, ReLU, 128→C
(French et al.'s head, 17 802 parameters for C = 10; 490 602 in all); ``hidden=(128, 128)`` adds a second
128→128, ReLU. Measured (side probe, one seed, the real profile's 2,500-step target-only recipe on USPS, 2-core
AMD EPYC Zen 5, 1 thread): 97.6 % against the DANN network's 97.1 %, at 2.9× the training time
(``benchmarks/results/probe_da_network_usps_cpu.json``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["SelfEnsemblingFeatures", "SelfEnsemblingClassifier", "SelfEnsemblingNet"]

_BLOCKS: tuple[tuple[int, int], ...] = ((32, 2), (64, 3), (128, 3))  # (channels, conv layers) per block


class SelfEnsemblingFeatures(nn.Module):
    """Feature extractor: [B, C_in, H, W] -> [B, 128] (any H, W >= 8; global pooling makes it size-free).

    Args:
        in_channels: image channels (3; grey images are repeated to 3 channels by the data pipeline).
    """

    out_dim = _BLOCKS[-1][0]

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for channels, n_conv in _BLOCKS:
            for _ in range(n_conv):
                layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
                c_in = channels
            layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class SelfEnsemblingClassifier(nn.Module):
    """Label predictor: [B, in_dim] -> logits [B, n_classes]: Dropout(``dropout``), then per entry of ``hidden``
    Linear and ReLU, then Linear to ``n_classes``. No BatchNorm (as French et al.'s head)."""

    def __init__(self, in_dim: int = 128, n_classes: int = 10, hidden: Sequence[int] = (128,),
                 dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True)]
            d = h
        layers.append(nn.Linear(d, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, f: Tensor) -> Tensor:
        return self.net(f)


class SelfEnsemblingNet(nn.Module):
    """:class:`SelfEnsemblingFeatures` then :class:`SelfEnsemblingClassifier`: [B, 3, H, W] -> logits [B, C].

    Same interface as :class:`~genda.da.models.dann.DANNNet`: ``.features(x)`` gives the 128-d features
    (``.features.out_dim`` = 128), ``.classifier(f)`` the logits.
    """

    def __init__(self, n_classes: int = 10, in_channels: int = 3, hidden: Sequence[int] = (128,),
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.features = SelfEnsemblingFeatures(in_channels)
        self.classifier = SelfEnsemblingClassifier(self.features.out_dim, n_classes, hidden, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
