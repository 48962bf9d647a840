"""DSN: Domain Separation Networks (Bousmalis et al., NeurIPS 2016).

Networks (:class:`~genda.da.models.dsn.DSN`): shared encoder :math:`E_c`, private encoders :math:`E_p^s,E_p^t`,
shared decoder :math:`D`, classifier :math:`G` on the shared code, domain classifier on the shared code.
With :math:`h_c^d = E_c(x^d)`, :math:`h_p^d = E_p^d(x^d)` (each [B_d, K]) and
:math:`\\hat x^d = D(h_c^d + h_p^d)`:

.. math::
    L = L_{cls} + \\alpha L_{recon} + \\beta L_{difference} + \\gamma L_{similarity}

* :math:`L_{cls}` = cross-entropy of :math:`G(h_c^s)` on the source labels;
* :math:`L_{recon} = \\sum_{d\\in\\{s,t\\}} \\mathrm{SIMSE}(x^d, \\hat x^d)` with the scale-invariant MSE
  (:func:`simse`) :math:`\\frac1k\\|x-\\hat x\\|_2^2 - \\frac{1}{k^2}\\big(\\mathbf 1^\\top(x-\\hat x)\\big)^2`,
  ``k`` = pixels·channels, averaged over the batch;
* :math:`L_{difference} = \\sum_{d} \\frac{1}{K^2}\\|\\tilde H_c^{d\\top} \\tilde H_p^d\\|_F^2`
  (:func:`difference_loss`), where :math:`\\tilde H` is the code matrix centred over the batch and with
  L2-normalised rows (soft orthogonality of shared and private subspaces);
* :math:`L_{similarity}` = DANN loss on the shared codes, summed over the two domains
  (= 2 × :class:`~genda.da.adversarial.DomainAdversarialLoss`, which averages them), with a GRL of
  coefficient :math:`\\lambda_p = 2/(1+e^{-\\gamma_{grl} p}) - 1`.

The reconstruction, difference and similarity terms are each summed over source and target, as in the
paper's objective (and in the reference PyTorch port whose MNIST→MNIST-M weights we use as defaults:
α = 0.01, β = 0.075, γ = 0.25, K = 100; the TensorFlow release tuned them per task). The paper also
switches the similarity loss on only after 10 000 steps; here the λ_p ramp plays that role.

Options:
    alpha (0.01), beta (0.075), gamma (0.25): loss weights above.
    grl_gamma (10.0): steepness of the GRL schedule λ_p.
    code_dim (100): K, size of shared and private codes.

Logs: ``loss``, ``cls``, ``recon``, ``diff``, ``sim``, ``lambda``, ``dom_acc``, ``acc`` (unweighted terms).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genda.da.adversarial import DomainAdversarialLoss
from genda.da.grl import grl_lambda
from genda.da.methods.base import DAMethod, accuracy, register, to_floats
from genda.da.models.dsn import DSN as DSNNetworks

__all__ = ["DSN", "simse", "difference_loss"]


def simse(x: Tensor, x_hat: Tensor) -> Tensor:
    """Scale-invariant MSE: x, x_hat [B, *] -> scalar.

    Per sample with :math:`d = x - \\hat x` flattened to ``k`` values:
    :math:`\\frac1k\\sum d_j^2 - \\frac{1}{k^2}(\\sum d_j)^2` (= the variance of ``d``, so adding a constant
    to :math:`\\hat x` does not change it); averaged over the batch.
    """
    d = (x - x_hat).flatten(1)
    k = d.shape[1]
    return ((d * d).sum(dim=1) / k - d.sum(dim=1).pow(2) / (k * k)).mean()


def difference_loss(h_c: Tensor, h_p: Tensor, eps: float = 1e-6) -> Tensor:
    """Soft orthogonality between shared and private codes: [B, K_c], [B, K_p] -> scalar.

    Rows are centred over the batch and L2-normalised, :math:`\\tilde H = \\mathrm{norm}(H - \\bar H)`; the
    loss is :math:`\\|\\tilde H_c^\\top \\tilde H_p\\|_F^2 / (K_c K_p)`. It is 0 when every shared dimension is
    uncorrelated (over the batch) with every private dimension.
    """
    def _prep(h: Tensor) -> Tensor:
        h = h.flatten(1)
        h = h - h.mean(dim=0, keepdim=True)
        return h / (h.norm(dim=1, keepdim=True) + eps)

    c, p = _prep(h_c), _prep(h_p)
    return (c.t() @ p).pow(2).mean()


@register
class DSN(DAMethod):
    """Domain separation network (shared/private encoders, shared decoder)."""

    name = "dsn"
    needs_target = True
    defaults = {"alpha": 0.01, "beta": 0.075, "gamma": 0.25, "grl_gamma": 10.0, "code_dim": 100}
    log_keys = ("loss", "cls", "recon", "diff", "sim", "lambda", "dom_acc", "acc")

    def __init__(self, n_classes: int = 10, **options: Any) -> None:
        super().__init__(n_classes, **options)
        self.nets = DSNNetworks(n_classes, code_dim=self.options["code_dim"])
        self.domain_adv = DomainAdversarialLoss(self.nets.domain_head)

    def check_options(self, options: dict[str, Any]) -> None:
        for key in ("alpha", "beta", "gamma"):
            self._require(options[key] >= 0, key, ">= 0")
        self._require(options["grl_gamma"] > 0, "grl_gamma", "> 0")
        self._require(options["code_dim"] >= 1, "code_dim", ">= 1")

    def training_step(
        self, xs: Tensor, ys: Tensor, xt: Tensor | None, progress: float
    ) -> tuple[Tensor, dict[str, float]]:
        xt = self._require_target(xt)
        n_s = xs.shape[0]
        nets = self.nets
        h_c = nets.shared_encoder(torch.cat([xs, xt], dim=0))
        h_cs, h_ct = h_c[:n_s], h_c[n_s:]
        h_ps, h_pt = nets.private_source(xs), nets.private_target(xt)

        logits = nets.classifier(h_cs)
        cls = self._cross_entropy(logits, ys)
        recon = simse(xs, nets.reconstruct(h_cs, h_ps)) + simse(xt, nets.reconstruct(h_ct, h_pt))
        diff = difference_loss(h_cs, h_ps) + difference_loss(h_ct, h_pt)
        lam = grl_lambda(progress, self.options["grl_gamma"])
        sim = 2.0 * self.domain_adv(h_cs, h_ct, lam)

        o = self.options
        loss = cls + o["alpha"] * recon + o["beta"] * diff + o["gamma"] * sim
        logs = {
            "loss": loss,
            "cls": cls,
            "recon": recon,
            "diff": diff,
            "sim": sim,
            "lambda": lam,
            "dom_acc": self.domain_adv.last_accuracy_tensor,
            "acc": accuracy(logits, ys),
        }
        return loss, to_floats(logs)

    def classify(self, x: Tensor) -> Tensor:
        return self.nets.classifier(self.nets.shared_encoder(x))

    def embed(self, x: Tensor) -> Tensor:
        return self.nets.shared_encoder(x)
