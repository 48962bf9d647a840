"""ImageNet-pretrained ResNet variants: ``resnet_source_only`` and ``resnet_dann``.

Network (:class:`ResNetNet`): [B, 3, 28, 28] in [-1, 1] -> :class:`~genda.da.models.backbones.ImageNetInput`
(ImageNet normalisation, bilinear upsampling to ``input_size``) -> ResNet backbone [B, 512]
-> bottleneck Linear 512→``bottleneck_dim``, BN, ReLU -> features [B, bottleneck_dim] (``embed``)
-> Linear →C logits. ``resnet_dann`` adds the DANN loss of :mod:`genda.da.methods.dann` on the bottleneck
features, with domain classifier bottleneck_dim→``domain_hidden``→2 (BN, ReLU) behind a GRL of coefficient
:math:`\\lambda_p = w_d(2/(1+e^{-\\gamma p}) - 1)`.

:meth:`param_groups` gives the pretrained backbone ``backbone_lr_mult`` × the learning rate (fine-tuning).

Options (both): backbone ("resnet18"), weights_path (None), require_pretrained (True), input_size (64),
bottleneck_dim (256), backbone_lr_mult (0.1). ``resnet_dann`` also: domain_weight (1.0), gamma (10.0),
domain_hidden (1024).

Logs: as ``source_only`` / ``dann``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genda.da.adversarial import DomainAdversarialLoss
from genda.da.grl import grl_lambda
from genda.da.methods.base import DAMethod, accuracy, register, to_floats
from genda.da.models.backbones import SUPPORTED_RESNETS, ImageNetInput, resnet_backbone
from genda.da.models.dann import DANNDomainHead

__all__ = ["ResNetNet", "ResNetSourceOnly", "ResNetDANN"]

RESNET_DEFAULTS: dict[str, Any] = {
    "backbone": "resnet18",
    "weights_path": None,
    "require_pretrained": True,
    "input_size": 64,
    "bottleneck_dim": 256,
    "backbone_lr_mult": 0.1,
}
RESNET_TYPES: dict[str, Any] = {"weights_path": (str, type(None))}


class ResNetNet(nn.Module):
    """Input adapter + ResNet backbone + bottleneck + linear head; see module docstring for shapes."""

    def __init__(self, n_classes: int, options: dict[str, Any]) -> None:
        super().__init__()
        self.input = ImageNetInput(options["input_size"])
        self.backbone = resnet_backbone(options["backbone"], options["weights_path"], options["require_pretrained"])
        d = options["bottleneck_dim"]
        self.bottleneck = nn.Sequential(nn.Linear(self.backbone.out_dim, d), nn.BatchNorm1d(d), nn.ReLU(inplace=True))
        self.head = nn.Linear(d, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """[B, 3, h, w] -> bottleneck features [B, bottleneck_dim]."""
        return self.bottleneck(self.backbone(self.input(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _ResNetMethod(DAMethod):
    defaults = RESNET_DEFAULTS
    option_types = RESNET_TYPES

    def __init__(self, n_classes: int = 10, **options: Any) -> None:
        super().__init__(n_classes, **options)
        self.net = ResNetNet(n_classes, self.options)

    def check_options(self, options: dict[str, Any]) -> None:
        self._require(options["backbone"] in SUPPORTED_RESNETS, "backbone", f"one of {', '.join(SUPPORTED_RESNETS)}")
        self._require(options["input_size"] >= 32, "input_size", ">= 32")
        self._require(options["bottleneck_dim"] >= 1, "bottleneck_dim", ">= 1")
        self._require(options["backbone_lr_mult"] >= 0, "backbone_lr_mult", ">= 0")

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Backbone at ``lr · backbone_lr_mult``, everything else at ``lr``."""
        backbone_ids = {id(p) for p in self.net.backbone.parameters()}
        rest = [p for p in self.trainable_parameters() if id(p) not in backbone_ids]
        blr = lr * self.options["backbone_lr_mult"]
        return [
            {"params": [p for p in self.net.backbone.parameters() if p.requires_grad], "lr": blr, "base_lr": blr},
            {"params": rest, "lr": lr, "base_lr": lr},
        ]

    def classify(self, x: Tensor) -> Tensor:
        return self.net(x)

    def embed(self, x: Tensor) -> Tensor:
        return self.net.features(x)


@register
class ResNetSourceOnly(_ResNetMethod):
    """Supervised fine-tuning of a pretrained ResNet on the labelled batch."""

    name = "resnet_source_only"
    needs_target = False
    log_keys = ("loss", "cls", "acc")

    def training_step(
        self, xs: Tensor, ys: Tensor, xt: Tensor | None = None, progress: float = 0.0
    ) -> tuple[Tensor, dict[str, float]]:
        logits = self.net(xs)
        cls = self._cross_entropy(logits, ys)
        return cls, to_floats({"loss": cls, "cls": cls, "acc": accuracy(logits, ys)})


@register
class ResNetDANN(_ResNetMethod):
    """DANN on bottleneck features of a pretrained ResNet."""

    name = "resnet_dann"
    needs_target = True
    defaults = {**RESNET_DEFAULTS, "domain_weight": 1.0, "gamma": 10.0, "domain_hidden": 1024}
    log_keys = ("loss", "cls", "dom", "lambda", "dom_acc", "acc")

    def __init__(self, n_classes: int = 10, **options: Any) -> None:
        super().__init__(n_classes, **options)
        self.domain_adv = DomainAdversarialLoss(
            DANNDomainHead(self.options["bottleneck_dim"], self.options["domain_hidden"])
        )

    def check_options(self, options: dict[str, Any]) -> None:
        super().check_options(options)
        self._require(options["domain_weight"] >= 0, "domain_weight", ">= 0")
        self._require(options["gamma"] > 0, "gamma", "> 0")
        self._require(options["domain_hidden"] >= 1, "domain_hidden", ">= 1")

    def training_step(
        self, xs: Tensor, ys: Tensor, xt: Tensor | None, progress: float
    ) -> tuple[Tensor, dict[str, float]]:
        xt = self._require_target(xt)
        f = self.net.features(torch.cat([xs, xt], dim=0))
        f_s, f_t = f[: xs.shape[0]], f[xs.shape[0] :]
        logits = self.net.head(f_s)
        cls = self._cross_entropy(logits, ys)
        lam = self.options["domain_weight"] * grl_lambda(progress, self.options["gamma"])
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
