"""DANN: domain-adversarial training of neural networks (Ganin et al., 2016).

.. math::
    L = \\underbrace{\\tfrac{1}{n_s}\\textstyle\\sum_i \\mathrm{CE}(G_y(G_f(x^s_i)), y^s_i)}_{cls}
        + \\underbrace{L_{adv}\\big(G_f(x^s), G_f(x^t); \\lambda_p\\big)}_{dom},
    \\qquad \\lambda_p = w_d \\Big(\\frac{2}{1+\\exp(-\\gamma p)} - 1\\Big)

:math:`L_{adv}` is :class:`~genda.da.adversarial.DomainAdversarialLoss` with the domain classifier
:class:`~genda.da.models.dann.DANNDomainHead` (800→100→2) behind a gradient reversal layer of coefficient
:math:`\\lambda_p`; the discriminator itself always learns with weight 1, the features receive
:math:`-\\lambda_p` times its gradient. With ``passes="joint"`` source and target go through :math:`G_f` as one
concatenated batch ([n_s + n_t, 3, 28, 28] -> [n_s + n_t, 800]), so BatchNorm normalises with statistics of
both domains; ``"separate"`` runs two forward passes (each domain its own batch statistics, as the reference
DANN/DSN code does). The label predictor only sees the source part.

Options:
    domain_weight (float, 1.0): :math:`w_d`, scales the reversed gradient (λ).
    gamma (float, 10.0): γ of the λ schedule.
    domain_reduction ("average"): ``"average"`` = ½(mean_s + mean_t) or ``"sum"`` = mean_s + mean_t (Ganin
        et al. eq. 9), see :class:`~genda.da.adversarial.DomainAdversarialLoss`.
    passes ("joint"): ``"joint"`` (one concatenated batch) or ``"separate"`` (one forward pass per domain).
    classifier_layers (int, 2), dropout (float, 0.5): label predictor, see ``source_only``.
    eval_ema (float, 0.0): δ of an exponential moving average of the label network's weights and BatchNorm
        statistics (:class:`~genda.da.methods.averaging.WeightEMA`, updated after every optimiser step) that
        ``classify`` and ``embed`` use; 0 = the final weights. Training is the same either way.

Logs: ``loss``, ``cls``, ``dom`` (domain loss), ``lambda`` (λ_p), ``dom_acc`` (discriminator accuracy),
``acc`` (source batch accuracy).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genda.da.adversarial import DomainAdversarialLoss
from genda.da.grl import grl_lambda
from genda.da.methods.averaging import WeightEMA
from genda.da.methods.base import DAMethod, accuracy, register, to_floats
from genda.da.methods.source_only import DIGIT_NET_DEFAULTS, build_digit_net, check_digit_net_options
from genda.da.models.dann import DANNDomainHead

__all__ = ["DANN"]


@register
class DANN(DAMethod):
    """Domain-adversarial neural network on the DANN digit architecture."""

    name = "dann"
    needs_target = True
    defaults = {"domain_weight": 1.0, "gamma": 10.0, "domain_reduction": "average", "passes": "joint",
                "eval_ema": 0.0, **DIGIT_NET_DEFAULTS}
    log_keys = ("loss", "cls", "dom", "lambda", "dom_acc", "acc")

    def __init__(self, n_classes: int = 10, **options: Any) -> None:
        super().__init__(n_classes, **options)
        self.net = build_digit_net(n_classes, self.options)
        self.domain_adv = DomainAdversarialLoss(DANNDomainHead(self.net.features.out_dim, 100),
                                                reduction=self.options["domain_reduction"])
        # only when on: a model file without it keeps its state_dict keys
        self.ema = WeightEMA(self.net, self.options["eval_ema"]) if self.options["eval_ema"] > 0 else None

    def check_options(self, options: dict[str, Any]) -> None:
        check_digit_net_options(self)
        self._require(options["domain_weight"] >= 0, "domain_weight", ">= 0")
        self._require(options["gamma"] > 0, "gamma", "> 0")
        self._require(options["domain_reduction"] in ("average", "sum"), "domain_reduction", "average or sum")
        self._require(options["passes"] in ("joint", "separate"), "passes", "joint or separate")
        self._require(0.0 <= options["eval_ema"] < 1.0, "eval_ema", "in [0, 1) (0 = off)")

    def lambd(self, progress: float) -> float:
        """GRL coefficient λ_p = domain_weight · grl_lambda(p, gamma)."""
        return self.options["domain_weight"] * grl_lambda(progress, self.options["gamma"])

    def training_step(
        self, xs: Tensor, ys: Tensor, xt: Tensor | None, progress: float
    ) -> tuple[Tensor, dict[str, float]]:
        xt = self._require_target(xt)
        if self.options["passes"] == "joint":
            f = self.net.features(torch.cat([xs, xt], dim=0))
            f_s, f_t = f[: xs.shape[0]], f[xs.shape[0] :]
        else:
            f_s, f_t = self.net.features(xs), self.net.features(xt)
        logits = self.net.classifier(f_s)
        cls = self._cross_entropy(logits, ys)
        lam = self.lambd(progress)
        dom = self.domain_adv(f_s, f_t, lam)
        loss = cls + dom
        logs = {
            "loss": loss,
            "cls": cls,
            "dom": dom,
            "lambda": lam,
            "dom_acc": self.domain_adv.last_accuracy_tensor,
            "acc": accuracy(logits, ys),
        }
        return loss, to_floats(logs)

    def after_optimizer_step(self) -> None:
        if self.ema is not None:
            self.ema.update(self.net)

    def eval_net(self):
        """The label network used at test time: the weight average with ``eval_ema``, else the trained one."""
        return self.net if self.ema is None else self.ema.net

    def classify(self, x: Tensor) -> Tensor:
        return self.eval_net()(x)

    def embed(self, x: Tensor) -> Tensor:
        return self.eval_net().features(x)
