"""ACGAN: auxiliary-classifier GAN (Odena et al., 2017).

The generator is conditioned on a class label, the discriminator predicts both *real/fake* and the
class.  With the usual BCE adversarial loss :math:`\\mathcal{L}_S` and the auxiliary cross-entropy
:math:`\\mathcal{L}_C`::

    L_S = E[log P(S=real | x_real)] + E[log P(S=fake | G(z, c))]
    L_C = E[log P(C=c | x_real)]    + E[log P(C=c | G(z, c))]

D maximises ``L_S + L_C``, G maximises ``L_C - L_S``.  The losses themselves live with the trainer;
this module gives the networks, :func:`acgan_aux_loss` and :func:`attribute_pairs`.

Two uses in genda:

* digits (28x28x3, ``n_classes=10``);
* faces conditioned on one binary attribute (64x64x3, ``n_classes=2``): class 0 = attribute off,
  class 1 = attribute on; :func:`attribute_pairs` renders the same noise with the attribute off and on.

Images are in ``[-1, 1]`` with shape ``[B, C, H, W]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.errors import ConfigError

__all__ = ["ACGANGenerator", "ACGANDiscriminator", "acgan_aux_loss", "attribute_pairs"]

_NORMS = ("batch", "none", "layer")


def _base_size(img_size: int) -> tuple[int, int]:
    """Smallest feature map the generator starts from and the number of x2 upsamplings.

    Halve ``img_size`` while it is even and larger than 7: 28 -> 7 (2 ups), 32 -> 4 (3), 64 -> 4 (4).
    """
    if not isinstance(img_size, int) or img_size < 8:
        raise ConfigError(f"ACGAN: img_size must be an integer >= 8, got {img_size!r}")
    size, n_up = img_size, 0
    while size % 2 == 0 and size > 7:
        size //= 2
        n_up += 1
    if size > 7 or n_up == 0:
        raise ConfigError(
            f"ACGAN: img_size={img_size} must be a small size (3..7) times a power of two, e.g. 28, 32 or 64")
    return size, n_up


_LABEL_INPUTS = ("product", "concat")


class ACGANGenerator(nn.Module):
    """Label-conditioned generator ``G(z, y)``.

    ``h = input(z, y)`` -> ``Linear`` ->
    ``[B, base, s, s]`` (``base = min(512, 8 ngf)``: 512 at the full-size ngf 64, 128 at ngf 16) with ``s = img_size / 2^k`` (7 for 28, 4 for 64) -> BN -> ``k`` blocks of
    (nearest Upsample x2, Conv 3x3, BN, ReLU) with channels ``ngf * 2^(k-1-i)`` (at most 512) ->
    Conv 3x3 to ``channels`` -> Tanh, where ``input`` (``label_input``) is

    * ``"product"``: ``Embed(y) * z`` (element-wise, ``[B, z_dim]``; the PyTorch-GAN ACGAN's): every noise
      dimension is rescaled by the label, so the same z under another label is another image altogether;
    * ``"concat"``: ``[z, onehot(y)]`` (``[B, z_dim + n_classes]``; Odena et al.'s and the seed's attribute GAN's): a
      label change moves only K of the inputs, so the same z keeps the rest of the image (attribute pairs keep the
      identity, :mod:`genda.metrics.pair_identity`).

    Args:
        z_dim: noise dimension.
        n_classes: number of labels (2 for an on/off attribute).
        img_size: output side length (28, 32, 64, ...).
        channels: output channels.
        ngf: width of the last upsampling block.
        base: channels of the first feature map (default ``min(512, 8 ngf)``; up to 2026-11-30 always 512).
        label_input: ``"product"`` or ``"concat"`` (above).

    Shapes:
        z: ``[B, z_dim]``, labels: ``[B]`` long -> ``[B, channels, img_size, img_size]`` in ``[-1, 1]``.
    """

    def __init__(self, z_dim: int = 100, n_classes: int = 10, img_size: int = 28, channels: int = 3,
                 ngf: int = 64, base: int | None = None, label_input: str = "product"):
        super().__init__()
        if z_dim < 1 or n_classes < 1 or channels < 1 or ngf < 1:
            raise ConfigError(f"ACGAN generator: z_dim, n_classes, channels, ngf must be >= 1 "
                              f"(got {z_dim}, {n_classes}, {channels}, {ngf})")
        if label_input not in _LABEL_INPUTS:
            raise ConfigError(f"ACGAN generator: label_input must be one of {', '.join(_LABEL_INPUTS)}, "
                              f"got {label_input!r}")
        self.label_input = label_input
        self.z_dim, self.n_classes, self.img_size, self.channels = z_dim, n_classes, img_size, channels
        self.init_size, n_up = _base_size(img_size)
        self.base = base = base or min(512, 8 * ngf)
        if label_input == "product":
            self.label_emb = nn.Embedding(n_classes, z_dim)
        self.fc = nn.Linear(z_dim + (n_classes if label_input == "concat" else 0), base * self.init_size ** 2)
        self.bn0 = nn.BatchNorm2d(base)
        blocks: list[nn.Module] = []
        in_ch = base
        for i in range(n_up):
            out_ch = min(512, ngf * 2 ** (n_up - 1 - i))
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                       nn.BatchNorm2d(out_ch),
                       nn.ReLU(inplace=True)]
            in_ch = out_ch
        blocks += [nn.Conv2d(in_ch, channels, 3, padding=1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"ACGANGenerator: z must be [B, {self.z_dim}], got {tuple(z.shape)}")
        if labels.shape != (z.shape[0],):
            raise ValueError(f"ACGANGenerator: labels must be [B={z.shape[0]}], got {tuple(labels.shape)}")
        h = self.input(z, labels)
        h = self.bn0(self.fc(h).view(-1, self.base, self.init_size, self.init_size))
        if self.blocks[1].weight.is_contiguous(memory_format=torch.channels_last):
            # The fc output is NCHW. In a channels_last network (genda.runtime.precision) the first convolution would convert
            # the upsampled map; nearest upsampling itself is ~20x slower in NCHW on a CPU (1.5 vs 0.06 ms for
            # [32, 128, 7, 7]), so convert the small map before it: same values, a digit ACGAN step 5-10 % faster.
            h = h.contiguous(memory_format=torch.channels_last)
        return self.blocks(h)

    def input(self, z: Tensor, labels: Tensor) -> Tensor:
        """The fully connected layer's input: ``[B, z_dim]`` (product) or ``[B, z_dim + n_classes]`` (concat)."""
        if self.label_input == "concat":
            return torch.cat([z, F.one_hot(labels.long(), self.n_classes).to(z.dtype)], dim=1)
        return self.label_emb(labels.long()) * z


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "layer":  # LayerNorm over (C, H, W): per-sample, so fine for WGAN-GP
        return nn.GroupNorm(1, ch)
    return nn.Identity()


class ACGANDiscriminator(nn.Module):
    """Two-headed discriminator ``D(x) -> (adv_logit, class_logits)``.

    Stride-2 blocks (Conv 3x3 s2 p1, norm, LeakyReLU(0.2), Dropout2d) with channels
    ``ndf, 2ndf, 4ndf, 8ndf, ...`` (at most 512) until the map is at most 4x4 (28 -> 14 -> 7 -> 4,
    64 -> 32 -> 16 -> 8 -> 4); the first block has no norm.  The flattened features feed a linear
    adversarial head (one logit, no sigmoid) and a linear auxiliary head (``n_classes`` logits).

    Args:
        norm: ``"batch"`` (BatchNorm2d), ``"layer"`` (GroupNorm with one group = LayerNorm over C,H,W)
            or ``"none"``.  Use ``"layer"``/``"none"`` with WGAN-GP: the gradient penalty needs
            each output to depend on its own sample only.
        dropout: Dropout2d probability in ``[0, 1)``.

    Shapes:
        x: ``[B, channels, img_size, img_size]`` -> ``([B], [B, n_classes])``.
    """

    def __init__(self, n_classes: int = 10, img_size: int = 28, channels: int = 3, ndf: int = 64,
                 dropout: float = 0.25, norm: str = "batch"):
        super().__init__()
        if norm not in _NORMS:
            raise ConfigError(f"ACGAN discriminator: norm={norm!r} is not one of {', '.join(_NORMS)}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"ACGAN discriminator: dropout must be in [0, 1), got {dropout}")
        if n_classes < 1 or channels < 1 or ndf < 1:
            raise ConfigError("ACGAN discriminator: n_classes, channels and ndf must be >= 1")
        if img_size < 8:
            raise ConfigError(f"ACGAN discriminator: img_size must be >= 8, got {img_size}")
        self.n_classes, self.img_size, self.channels = n_classes, img_size, channels
        layers: list[nn.Module] = []
        in_ch, size, i = channels, img_size, 0
        while size > 4:
            out_ch = min(512, ndf * 2 ** i)
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1),
                       _norm(norm if i > 0 else "none", out_ch),
                       nn.LeakyReLU(0.2, inplace=True),
                       nn.Dropout2d(dropout)]
            in_ch, size, i = out_ch, (size + 1) // 2, i + 1
        self.features = nn.Sequential(*layers)
        n_feat = in_ch * size * size
        self.adv_head = nn.Linear(n_feat, 1)
        self.aux_head = nn.Linear(n_feat, n_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(x).flatten(1)
        return self.adv_head(h).squeeze(1), self.aux_head(h)


def acgan_aux_loss(class_logits: Tensor, labels: Tensor) -> Tensor:
    """Auxiliary classification loss ``-mean_i log softmax(class_logits_i)[labels_i]``.

    Shapes: class_logits ``[B, K]``, labels ``[B]`` long -> scalar.
    """
    return F.cross_entropy(class_logits, labels.long())


@torch.no_grad()
def attribute_pairs(G: ACGANGenerator, z: Tensor, attr_off: int = 0, attr_on: int = 1) -> tuple[Tensor, Tensor]:
    """Render the same noise with the attribute off and on (no gradients).

    ``G`` is switched to eval mode for the call (BatchNorm uses running statistics, so the two
    halves do not influence each other) and restored afterwards.

    Returns:
        ``(G(z, attr_off), G(z, attr_on))``, each ``[B, C, H, W]``.
    """
    was_training = G.training
    G.eval()
    try:
        off = torch.full((z.shape[0],), attr_off, dtype=torch.long, device=z.device)
        on = torch.full_like(off, attr_on)
        return G(z, off), G(z, on)
    finally:
        G.train(was_training)
