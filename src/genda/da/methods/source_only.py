"""Supervised baseline ("source only" / "train on target"): cross-entropy on the labelled batch.

.. math::  L = \\frac{1}{B}\\sum_i \\mathrm{CE}(G_y(G_f(x_i)), y_i)

Network: ``network="dann"`` (default) is :class:`~genda.da.models.dann.DANNNet` (DANN digit features 800-d + label
predictor); ``"gp"`` is :class:`~genda.da.models.self_ensembling.SelfEnsemblingNet` (French et al.'s 8-conv
``grey-32-64-128-gp``, 128-d features). DANN and the mean teacher build their network with the same options.
The trainer uses the same method for the lower bound (``xs, ys`` from the source domain) and the upper bound
(``xs, ys`` from the target training split); ``xt`` is ignored.

Options:
    network ("dann"): the digit network, ``"dann"`` or ``"gp"``.
    classifier_layers (int, 2): hidden layers of the label predictor; ``dann``: 100-unit, 2 = 800→100→100→C,
        1 = 800→100→C; ``gp``: 128-unit, 1 = 128→128→C (French et al.'s head), 2 = 128→128→128→C.
    dropout (float, 0.5): dropout after the first hidden layer of the label predictor (``dann``) or before it
        (``gp``).

Logs: ``loss`` (= ``cls``), ``cls`` (cross-entropy), ``acc`` (accuracy on the labelled batch).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from genda.da.methods.base import DAMethod, accuracy, register, to_floats
from genda.da.models.dann import DANNNet
from genda.da.models.self_ensembling import SelfEnsemblingNet

__all__ = ["SourceOnly", "DIGIT_NET_DEFAULTS", "DIGIT_NETWORKS", "build_digit_net", "check_digit_net_options"]

DIGIT_NET_DEFAULTS: dict[str, Any] = {"network": "dann", "classifier_layers": 2, "dropout": 0.5}
DIGIT_NETWORKS = ("dann", "gp")


def build_digit_net(n_classes: int, options: dict[str, Any]) -> DANNNet | SelfEnsemblingNet:
    """The digit network named by ``options["network"]``, its head set by ``classifier_layers`` and ``dropout``.

    Both have ``.features`` ([B, 3, 28, 28] -> [B, d], d = ``.features.out_dim``: 800 or 128) and
    ``.classifier`` ([B, d] -> [B, n_classes]).
    """
    if options["network"] == "gp":
        return SelfEnsemblingNet(n_classes, hidden=(128,) * options["classifier_layers"], dropout=options["dropout"])
    return DANNNet(n_classes, hidden=(100,) * options["classifier_layers"], dropout=options["dropout"])


def check_digit_net_options(method: DAMethod) -> None:
    method._require(method.options["network"] in DIGIT_NETWORKS, "network", " or ".join(DIGIT_NETWORKS))
    method._require(method.options["classifier_layers"] in (1, 2), "classifier_layers", "1 or 2")
    method._require(0.0 <= method.options["dropout"] < 1.0, "dropout", "in [0, 1)")


@register
class SourceOnly(DAMethod):
    """Cross-entropy on the labelled batch only (no adaptation)."""

    name = "source_only"
    needs_target = False
    defaults = DIGIT_NET_DEFAULTS
    log_keys = ("loss", "cls", "acc")

    def __init__(self, n_classes: int = 10, **options: Any) -> None:
        super().__init__(n_classes, **options)
        self.net = build_digit_net(n_classes, self.options)

    def check_options(self, options: dict[str, Any]) -> None:
        check_digit_net_options(self)

    def training_step(
        self, xs: Tensor, ys: Tensor, xt: Tensor | None = None, progress: float = 0.0
    ) -> tuple[Tensor, dict[str, float]]:
        logits = self.net(xs)
        cls = self._cross_entropy(logits, ys)
        return cls, to_floats({"loss": cls, "cls": cls, "acc": accuracy(logits, ys)})

    def classify(self, x: Tensor) -> Tensor:
        return self.net(x)

    def embed(self, x: Tensor) -> Tensor:
        return self.net.features(x)
