"""Tag-conditioned DCGAN (cDCGAN) with a matching-aware discriminator, 64x64 images.

A tag is a tuple of categorical attributes, one per *group* (e.g. hair colour out of 12 and eye
colour out of 10: ``tag_dims = [12, 10]``).  Tags travel as

* ``LongTensor [B, G]`` of per-group indices (``tags``), or
* ``FloatTensor [B, sum(tag_dims)]``: the concatenated one-hot vectors (``tags_onehot``), which is
  what the networks take.

The discriminator scores an (image, tag) pair; following GAN-CLS (Reed et al., 2016) it is trained to
accept only *real image + matching tag* and to reject fake images, real images with a wrong tag and
other real images with the right tag (:func:`matching_aware_d_loss`).  Optionally the discriminator also
classifies the image's tags (an auxiliary head, as in AC-GAN, Odena et al., 2017; :func:`tag_aux_loss`): a direct
signal for tags that the matching term learns slowly (e.g. 'Smiling' next to hair colour on CelebA).
"""
from __future__ import annotations

import itertools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.errors import ConfigError, DataError

__all__ = ["TagEncoder", "TagGenerator", "TagDiscriminator", "one_hot_tags", "random_wrong_tags",
           "matching_aware_d_loss", "tag_grid", "synthetic_tag_table"]

IMG_SIZE = 64


def _check_tag_dims(tag_dims: Sequence[int]) -> list[int]:
    dims = [int(d) for d in tag_dims]
    if len(dims) == 0 or any(d < 1 for d in dims):
        raise ConfigError(f"tag_dims must be a non-empty list of positive group sizes, got {list(tag_dims)}")
    return dims


def one_hot_tags(tags: Tensor, tag_dims: Sequence[int]) -> Tensor:
    """Concatenate the per-group one-hot codes.

    ``out[b] = concat_g onehot(tags[b, g], tag_dims[g])``.

    Shapes: tags ``[B, G]`` long -> ``[B, sum(tag_dims)]`` float (same device).

    Raises:
        ValueError: ``tags`` is not ``[B, len(tag_dims)]``.
        DataError: a tag index is outside ``0..tag_dims[g]-1``.
    """
    dims = _check_tag_dims(tag_dims)
    if tags.dim() != 2 or tags.shape[1] != len(dims):
        raise ValueError(f"one_hot_tags: tags must be [B, {len(dims)}], got {tuple(tags.shape)}")
    tags = tags.long()
    parts = []
    for g, d in enumerate(dims):
        col = tags[:, g]
        if col.numel() and (int(col.min()) < 0 or int(col.max()) >= d):
            raise DataError(f"tag group {g}: indices must be in 0..{d - 1}, "
                            f"found {int(col.min())}..{int(col.max())}")
        parts.append(F.one_hot(col, d))
    return torch.cat(parts, dim=1).float()


def random_wrong_tags(tags: Tensor, tag_dims: Sequence[int], generator: torch.Generator | None = None) -> Tensor:
    """Mismatched tags for the matching-aware loss.

    Every group is resampled uniformly, then one group ``g*`` (uniform over the groups with more than one
    value) is forced to differ: ``wrong[b, g*] = (tags[b, g*] + U{1..d-1}) mod d``.  So every row differs
    from its input in at least one group.  Random numbers are drawn on the CPU from ``generator`` and
    moved to ``tags.device``.

    Shapes: ``[B, G]`` long -> ``[B, G]`` long.
    """
    dims = _check_tag_dims(tag_dims)
    if tags.dim() != 2 or tags.shape[1] != len(dims):
        raise ValueError(f"random_wrong_tags: tags must be [B, {len(dims)}], got {tuple(tags.shape)}")
    eligible = [g for g, d in enumerate(dims) if d > 1]
    if not eligible:
        raise ConfigError(f"random_wrong_tags: every tag group has a single value ({dims}); no wrong tag exists")
    B = tags.shape[0]
    cpu_tags = tags.detach().long().cpu()
    forced = torch.tensor(eligible)[torch.randint(len(eligible), (B,), generator=generator)]
    out = torch.empty_like(cpu_tags)
    for g, d in enumerate(dims):
        resampled = torch.randint(d, (B,), generator=generator)
        if d > 1:
            shifted = (cpu_tags[:, g] + torch.randint(1, d, (B,), generator=generator)) % d
            resampled = torch.where(forced == g, shifted, resampled)
        out[:, g] = resampled
    return out.to(tags.device)


class TagEncoder(nn.Module):
    """Tag embedding ``e = LeakyReLU_0.2(W · onehot + b)``.

    Shapes: ``[B, sum(tag_dims)]`` -> ``[B, embed_dim]``.
    """

    def __init__(self, tag_dims: Sequence[int], embed_dim: int = 256):
        super().__init__()
        self.tag_dims = _check_tag_dims(tag_dims)
        if embed_dim < 1:
            raise ConfigError(f"TagEncoder: embed_dim must be >= 1, got {embed_dim}")
        self.in_dim, self.embed_dim = sum(self.tag_dims), embed_dim
        self.fc = nn.Linear(self.in_dim, embed_dim)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, tags_onehot: Tensor) -> Tensor:
        if tags_onehot.dim() != 2 or tags_onehot.shape[1] != self.in_dim:
            raise ValueError(f"TagEncoder: expected one-hot tags [B, {self.in_dim}], got {tuple(tags_onehot.shape)}")
        return self.act(self.fc(tags_onehot.float()))


class TagGenerator(nn.Module):
    """``G(z, tags)``: ``[z, TagEncoder(tags)]`` -> Linear -> ``[B, 8ngf, 4, 4]`` -> BN, ReLU ->
    4 ConvTranspose(4, s2, p1) blocks 4 -> 8 -> 16 -> 32 -> 64 (channels 4ngf, 2ngf, ngf, ``channels``;
    BN + ReLU except the last) -> Tanh.

    Shapes: z ``[B, z_dim]``, tags_onehot ``[B, sum(tag_dims)]`` -> ``[B, channels, 64, 64]`` in ``[-1, 1]``.
    """

    def __init__(self, z_dim: int = 100, tag_dims: Sequence[int] = (12, 10), embed_dim: int = 256,
                 ngf: int = 64, channels: int = 3):
        super().__init__()
        if z_dim < 1 or ngf < 1 or channels < 1:
            raise ConfigError(f"TagGenerator: z_dim, ngf, channels must be >= 1 (got {z_dim}, {ngf}, {channels})")
        self.z_dim, self.tag_dims, self.ngf = z_dim, _check_tag_dims(tag_dims), ngf
        self.encoder = TagEncoder(self.tag_dims, embed_dim)
        self.fc = nn.Sequential(nn.Linear(z_dim + embed_dim, ngf * 8 * 16, bias=False),
                                nn.Unflatten(1, (ngf * 8, 4, 4)),
                                nn.BatchNorm2d(ngf * 8), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        ch = [ngf * 8, ngf * 4, ngf * 2, ngf]
        for cin, cout in zip(ch[:-1], ch[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(ngf, channels, 4, 2, 1), nn.Tanh()]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor, tags_onehot: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"TagGenerator: z must be [B, {self.z_dim}], got {tuple(z.shape)}")
        h = torch.cat([z, self.encoder(tags_onehot)], dim=1)
        return self.deconv(self.fc(h))


class TagDiscriminator(nn.Module):
    """``D(x, tags) -> logit``.

    Image path: Conv(4, s2, p1) x4, 64 -> 32 -> 16 -> 8 -> 4, channels ndf..8ndf, LeakyReLU(0.2),
    BatchNorm except on the first block -> ``[B, 8ndf, 4, 4]``.  The tag embedding ``[B, E]`` is
    replicated to ``[B, E, 4, 4]`` and concatenated -> Conv 1x1 to 8ndf + LeakyReLU -> Conv 4x4 (valid)
    -> one logit (no sigmoid).  With ``aux=True`` a Linear head on the flattened image features
    ``[B, 8ndf * 16]`` gives per-group tag logits ``[B, sum(tag_dims)]`` (:meth:`classify`), independent of the
    tags fed in.

    Shapes: images ``[B, channels, 64, 64]``, tags_onehot ``[B, sum(tag_dims)]`` -> ``[B]``.
    """

    def __init__(self, tag_dims: Sequence[int] = (12, 10), embed_dim: int = 256, ndf: int = 64, channels: int = 3,
                 aux: bool = False):
        super().__init__()
        if ndf < 1 or channels < 1:
            raise ConfigError(f"TagDiscriminator: ndf and channels must be >= 1 (got {ndf}, {channels})")
        self.tag_dims = _check_tag_dims(tag_dims)
        self.encoder = TagEncoder(self.tag_dims, embed_dim)
        layers: list[nn.Module] = []
        ch = [channels, ndf, ndf * 2, ndf * 4, ndf * 8]
        for i, (cin, cout) in enumerate(zip(ch[:-1], ch[1:])):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=(i == 0)))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.conv = nn.Sequential(*layers)
        self.joint = nn.Sequential(nn.Conv2d(ndf * 8 + embed_dim, ndf * 8, 1), nn.LeakyReLU(0.2, inplace=True),
                                   nn.Conv2d(ndf * 8, 1, 4))
        self.aux_head = nn.Linear(ndf * 8 * 16, sum(self.tag_dims)) if aux else None

    def _features(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[-2:] != (IMG_SIZE, IMG_SIZE):
            raise ValueError(f"TagDiscriminator: images must be [B, C, 64, 64], got {tuple(images.shape)}")
        return self.conv(images)

    def forward(self, images: Tensor, tags_onehot: Tensor, return_aux: bool = False):
        """The matching logit ``[B]``; with ``return_aux`` also the tag logits ``[B, sum(tag_dims)]`` (one pass)."""
        h = self._features(images)
        e = self.encoder(tags_onehot)[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
        logit = self.joint(torch.cat([h, e], dim=1)).flatten()
        return (logit, self._aux(h)) if return_aux else logit

    def classify(self, images: Tensor) -> Tensor:
        """Per-group tag logits ``[B, sum(tag_dims)]`` of the auxiliary head (``aux=True`` only)."""
        return self._aux(self._features(images))

    def _aux(self, h: Tensor) -> Tensor:
        if self.aux_head is None:
            raise ConfigError("TagDiscriminator: built without the auxiliary tag head (aux=False)")
        return self.aux_head(h.flatten(1))


def tag_aux_loss(aux_logits: Tensor, tags: Tensor, tag_dims: Sequence[int]) -> Tensor:
    """Auxiliary tag classification loss: the mean over groups of each group's cross-entropy (batch mean).

    ``L = (1/G) sum_g CE(aux_logits[:, o_g : o_g + d_g], tags[:, g])`` with ``o_g = d_0 + ... + d_(g-1)``.

    Shapes: aux_logits ``[B, sum(tag_dims)]``, tags ``[B, G]`` long -> scalar.
    """
    dims = _check_tag_dims(tag_dims)
    if aux_logits.dim() != 2 or aux_logits.shape[1] != sum(dims) or tags.shape != (aux_logits.shape[0], len(dims)):
        raise ValueError(f"tag_aux_loss: expected logits [B, {sum(dims)}] and tags [B, {len(dims)}], got "
                         f"{tuple(aux_logits.shape)} and {tuple(tags.shape)}")
    parts = torch.split(aux_logits.float(), dims, dim=1)
    return torch.stack([F.cross_entropy(p, tags[:, g].long()) for g, p in enumerate(parts)]).mean()


def matching_aware_d_loss(D: nn.Module, real: Tensor, fake: Tensor, right_tags: Tensor, wrong_tags: Tensor,
                          wrong_images: Tensor) -> Tensor:
    """GAN-CLS discriminator loss (Reed et al., 2016) with BCE on logits.

    ``L = bce(D(real, right), 1) + [bce(D(fake, right), 0) + bce(D(real, wrong), 0) +
    bce(D(wrong_images, right), 0)] / 3``, each ``bce`` a batch mean.

    ``fake`` is detached (this is the D step).  Tags are one-hot ``[B, sum(tag_dims)]``;
    ``wrong_images`` are real images whose own tags differ from ``right_tags`` (e.g. a shuffled batch).
    """
    def bce(logits: Tensor, target: float) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    return bce(D(real, right_tags), 1.0) + (bce(D(fake.detach(), right_tags), 0.0)
                                            + bce(D(real, wrong_tags), 0.0)
                                            + bce(D(wrong_images, right_tags), 0.0)) / 3.0


@torch.no_grad()
def tag_grid(G: TagGenerator, z_dim: int, tag_dims: Sequence[int], n_per_combo: int = 1,
             generator: torch.Generator | None = None, device: str | torch.device = "cpu",
             max_combos: int | None = None, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Generate images for every tag combination (``itertools.product`` order, last group fastest).

    Each combination is repeated ``n_per_combo`` times in consecutive rows with its own noise.  If
    ``max_combos`` is set and smaller than ``prod(tag_dims)``, evenly spaced combinations are kept.
    Noise is drawn on the CPU from ``generator`` then moved to ``device``; ``G`` runs in eval mode
    (restored afterwards), in chunks of ``batch_size``.

    Returns:
        images ``[N, C, 64, 64]`` on ``device`` and tags ``[N, G]`` long (on ``device``),
        ``N = n_combos * n_per_combo``.
    """
    dims = _check_tag_dims(tag_dims)
    if n_per_combo < 1:
        raise ConfigError(f"tag_grid: n_per_combo must be >= 1, got {n_per_combo}")
    if max_combos is not None and max_combos < 1:
        raise ConfigError(f"tag_grid: max_combos must be >= 1 or None, got {max_combos}")
    combos = torch.tensor(list(itertools.product(*[range(d) for d in dims])), dtype=torch.long)
    if max_combos is not None and max_combos < len(combos):
        idx = torch.linspace(0, len(combos) - 1, max_combos).round().long()
        combos = combos[idx]
    tags = combos.repeat_interleave(n_per_combo, dim=0)
    z = torch.randn(len(tags), z_dim, generator=generator)
    was_training = G.training
    G.eval()
    try:
        onehot = one_hot_tags(tags, dims)
        images = torch.cat([G(z[i:i + batch_size].to(device), onehot[i:i + batch_size].to(device))
                            for i in range(0, len(tags), batch_size)])
    finally:
        G.train(was_training)
    return images, tags.to(device)


def synthetic_tag_table(n: int, tag_dims: Sequence[int], seed: int = 0) -> Tensor:
    """A small random attribute table for tests: ``[n, G]`` long, column ``g`` uniform in ``0..tag_dims[g]-1``.

    If ``n >= max(tag_dims)`` every value of every group appears at least once (the first rows cycle
    through the values), so one-hot columns are never all zero.
    """
    dims = _check_tag_dims(tag_dims)
    if n < 0:
        raise ConfigError(f"synthetic_tag_table: n must be >= 0, got {n}")
    gen = torch.Generator().manual_seed(seed)
    table = torch.stack([torch.randint(d, (n,), generator=gen) for d in dims], dim=1) if n else \
        torch.empty(0, len(dims), dtype=torch.long)
    if n >= max(dims):
        for g, d in enumerate(dims):
            perm = torch.randperm(n, generator=gen)[:d]
            table[perm, g] = torch.arange(d)
    return table
