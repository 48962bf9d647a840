"""Domain-adversarial loss (the DANN transfer term).

Given source features :math:`f_s` and target features :math:`f_t`, a domain discriminator :math:`D`
behind a gradient reversal layer :math:`R_\\lambda` is trained to tell the domains apart:

.. math::
    L_{adv} = c\\Big[\\tfrac{1}{n_s}\\sum_{i} \\ell\\big(D(R_\\lambda(f_s^i)), 0\\big)
              + \\tfrac{1}{n_t}\\sum_{j} \\ell\\big(D(R_\\lambda(f_t^j)), 1\\big)\\Big]

with :math:`c = \\tfrac12` (``reduction="average"``) or :math:`c = 1` (``reduction="sum"``: Ganin et al., JMLR 2016,
eq. 9, and the common PyTorch port, which give the features twice the reversed gradient of "average"),
domain label 0 = source, 1 = target, and :math:`\\ell` the cross-entropy (``D`` outputs 2 logits)
or the binary cross-entropy with logits (``D`` outputs 1 logit). Minimising :math:`L_{adv}` trains
:math:`D`; because of the GRL the feature extractor receives :math:`-\\lambda\\,\\partial L_{adv}/\\partial f`,
i.e. it is pushed to make the domains indistinguishable. Each domain is averaged separately so unequal
batch sizes weigh the two domains equally.

Both domains go through ``D`` in one concatenated batch (BatchNorm in ``D`` sees a mixed batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.da.grl import GradientReverseLayer

__all__ = ["DomainAdversarialLoss", "SOURCE", "TARGET"]

SOURCE = 0
TARGET = 1


class DomainAdversarialLoss(nn.Module):
    """DANN domain loss with a gradient reversal in front of ``domain_discriminator``.

    Args:
        domain_discriminator: module mapping features [N, *F] to domain logits [N, 2] (cross-entropy)
            or [N, 1] / [N] (binary cross-entropy, logit > 0 means "target").
        grl: the reversal module. Default :class:`~genda.da.grl.GradientReverseLayer`, called as
            ``grl(f, lambd)``. When ``forward`` is given ``lambd=None`` it is called as ``grl(f)``, which
            fits :class:`~genda.da.grl.WarmStartGradientReverseLayer` (own schedule) or ``nn.Identity()``
            (no reversal, e.g. to train a plain domain classifier).

        reduction: ``"average"`` (c = 1/2) or ``"sum"`` (c = 1) of the two per-domain means.

    Inputs: ``f_s`` [n_s, *F], ``f_t`` [n_t, *F] (same trailing shape), ``lambd`` float or None.
    Output: scalar loss. After each call :attr:`domain_accuracy` (float in [0, 1]) holds the
    discriminator's accuracy on the ``n_s + n_t`` samples (source predicted 0, target predicted 1);
    :attr:`last_accuracy_tensor` is the same value as a 0-d tensor (no device sync).
    """

    REDUCTIONS = {"average": 0.5, "sum": 1.0}

    def __init__(self, domain_discriminator: nn.Module, grl: nn.Module | None = None,
                 reduction: str = "average") -> None:
        super().__init__()
        if reduction not in self.REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(self.REDUCTIONS)}, got {reduction!r}")
        self.scale = self.REDUCTIONS[reduction]
        self.domain_discriminator = domain_discriminator
        self.grl = GradientReverseLayer() if grl is None else grl
        self.last_accuracy_tensor: Tensor | None = None

    @property
    def domain_accuracy(self) -> float:
        """Discriminator accuracy of the last call (NaN before the first call)."""
        if self.last_accuracy_tensor is None:
            return float("nan")
        return float(self.last_accuracy_tensor)

    def forward(self, f_s: Tensor, f_t: Tensor, lambd: float | None = 1.0) -> Tensor:
        if f_s.shape[1:] != f_t.shape[1:]:
            raise ValueError(f"source/target feature shapes differ: {tuple(f_s.shape)} vs {tuple(f_t.shape)}")
        n_s = f_s.shape[0]
        f = torch.cat([f_s, f_t], dim=0)
        f = self.grl(f) if lambd is None else self.grl(f, lambd)
        logits = self.domain_discriminator(f)
        labels = torch.cat(
            [
                torch.full((n_s,), SOURCE, dtype=torch.long, device=f.device),
                torch.full((f_t.shape[0],), TARGET, dtype=torch.long, device=f.device),
            ]
        )
        if logits.dim() == 2 and logits.shape[1] >= 2:
            per_sample = F.cross_entropy(logits, labels, reduction="none")
            pred = logits.argmax(dim=1)
        else:
            z = logits.reshape(-1)
            if z.shape[0] != labels.shape[0]:
                raise ValueError(f"domain discriminator output shape {tuple(logits.shape)} is not [N, 2] or [N, 1]")
            per_sample = F.binary_cross_entropy_with_logits(z, labels.to(z.dtype), reduction="none")
            pred = (z > 0).long()
        loss = self.scale * (per_sample[:n_s].mean() + per_sample[n_s:].mean())
        with torch.no_grad():
            acc = (pred == labels).float().mean()
        self.last_accuracy_tensor = acc
        return loss
