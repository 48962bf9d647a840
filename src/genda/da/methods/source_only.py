"""Supervised baseline ("source only" / "train on target"): cross-entropy on the labelled batch.

.. math::  L = \\frac{1}{B}\\sum_i \\mathrm{CE}(G_y(G_f(x_i)), y_i)

Network: :class:`~genda.da.models.dann.DANNNet` (DANN digit features 800-d + label predictor). The trainer
uses the same method for the lower bound (``xs, ys`` from the source domain) and the upper bound
(``xs, ys`` from the target training split); ``xt`` is ignored.

Options:
    classifier_layers (int, 2): hidden 100-unit layers of the label predictor; 2 = 800→100→100→C,
        1 = 800→100→C.
    dropout (float, 0.5): dropout after the first hidden layer of the label predictor.

Logs: ``loss`` (= ``cls``), ``cls`` (cross-entropy), ``acc`` (accuracy on the labelled batch).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from genda.da.methods.base import DAMethod, accuracy, register, to_floats
from genda.da.models.dann import DANNNet

__all__ = ["SourceOnly", "DIGIT_NET_DEFAULTS", "build_digit_net", "check_digit_net_options"]

DIGIT_NET_DEFAULTS: dict[str, Any] = {"classifier_layers": 2, "dropout": 0.5}


def build_digit_net(n_classes: int, options: dict[str, Any]) -> DANNNet:
    """:class:`DANNNet` configured by the ``classifier_layers`` and ``dropout`` options."""
    return DANNNet(n_classes, hidden=(100,) * options["classifier_layers"], dropout=options["dropout"])


def check_digit_net_options(method: DAMethod) -> None:
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
