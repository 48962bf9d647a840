"""Self-ensembling / mean teacher for visual domain adaptation (French, Mackiewicz & Fisher, ICLR 2018).

A student network :math:`f_\\theta` and a teacher :math:`f_{\\theta'}` (same architecture:
:class:`~genda.da.models.dann.DANNNet`) whose weights are an exponential moving average of the student's:

.. math::  \\theta' \\leftarrow \\delta_t\\,\\theta' + (1-\\delta_t)\\,\\theta \\quad\\text{after optimiser step } t = 1, 2, \\dots,
    \\qquad \\delta_t = \\delta \\;\\text{ or, with ema_warmup, }\\; \\delta_t = \\min\\big(\\delta,\\; 1 - \\tfrac{1}{t+1}\\big)

With ``ema_warmup`` the ramp :math:`1 - 1/(t+1)` (Tarvainen & Valpola's reference code) makes the teacher the
plain average of the student's iterates until :math:`\\delta` takes over (t ≈ 1/(1-δ)); without it (French et
al.'s code, the default) :math:`\\delta_t = \\delta` and the initial weights keep weight :math:`\\delta^t`. On the
embedded MNIST-M→USPS pair (3 seeds) the ramp changed nothing beyond seed noise: 53.2 ± 7.5 → 55.4 ± 11.1 % at
150 SGD steps, 95.2 ± 0.9 → 95.1 ± 0.6 % at 400 Adam steps (``benchmarks/results/ab_da_recipe_embedded.json``).

For a source batch :math:`(x^s, y^s)` and a target batch :math:`x^t` ([B_t, 3, 28, 28]) two independent
stochastic augmentations :math:`a_1, a_2` (:mod:`~genda.data.augment`: random affine, colour jitter,
Gaussian noise; plus dropout in both networks) give student and teacher class probabilities
:math:`z_i = \\mathrm{softmax}(f_\\theta(a_1(x^t_i)))`,
:math:`\\tilde z_i = \\mathrm{softmax}(f_{\\theta'}(a_2(x^t_i)))`
([B_t, C]). With the confidence mask :math:`m_i = [\\max_c \\tilde z_{ic} > \\tau]` (:func:`confidence_mask`):

.. math::
    L = \\mathrm{CE}(f_\\theta(a(x^s)), y^s)
        + w_{cons} \\underbrace{\\tfrac{1}{B_t}\\textstyle\\sum_i m_i\\,\\tfrac1C\\|z_i - \\tilde z_i\\|^2}_{cons}
        + w_{bal} \\underbrace{\\bar m \\textstyle\\sum_c \\mathrm{BCE}(\\bar z_c, 1/C)}_{bal}

where :math:`\\bar z = \\frac{1}{B_t}\\sum_i z_i` and :math:`\\bar m` is the fraction of confident samples
(:func:`consistency_loss`, :func:`class_balance_loss`). The class-balance term keeps the student from
putting all target samples in a few classes. Source and target batches go through the student in
*separate* forward passes, so BatchNorm normalises each domain with its own batch statistics (the
per-domain BN of the paper). The teacher runs in the same mode as the module (train mode: dropout and
batch statistics, as in the paper) without gradients; it only ever sees target batches, so its BN running
statistics are target statistics, which ``classify`` (the teacher, in eval mode) uses at test time.
BN buffers are not averaged.

Options:
    ema_decay (0.99): δ.   ema_warmup (False): ramp δ_t as above.   conf_threshold (0.968): τ.   consistency_weight (3.0): w_cons.
    class_balance (0.005): w_bal.   augment_source (True): also augment the source batch (one view).
    affine_std (0.1), translate_px (2.0), gain (0.25), offset (0.25), invert_prob (0.0), noise_std (0.1):
        augmentation, see :class:`~genda.data.augment.AugmentConfig`.
    seed (None): seed of the augmentation generator; None draws it from the global torch RNG on first use
        (so ``torch.manual_seed`` makes runs reproducible).
    classifier_layers (2), dropout (0.5): network, see ``source_only``.

Logs: ``loss``, ``cls``, ``cons``, ``bal`` (unweighted terms), ``mask_rate`` (:math:`\\bar m`), ``acc``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genda.data.augment import AugmentConfig, augment_batch
from genda.da.methods.base import DAMethod, accuracy, register, to_floats
from genda.da.methods.source_only import DIGIT_NET_DEFAULTS, build_digit_net, check_digit_net_options

__all__ = ["MeanTeacher", "confidence_mask", "consistency_loss", "class_balance_loss"]


def confidence_mask(teacher_probs: Tensor, threshold: float) -> Tensor:
    """[B, C] probabilities -> float mask [B]: 1 where max_c p > threshold, else 0."""
    return (teacher_probs.max(dim=1).values > threshold).to(teacher_probs.dtype)


def consistency_loss(student_probs: Tensor, teacher_probs: Tensor, mask: Tensor | None = None) -> Tensor:
    """Masked squared difference of probabilities: [B, C], [B, C], [B] -> scalar.

    :math:`\\frac1B \\sum_i m_i \\frac1C \\sum_c (z_{ic} - \\tilde z_{ic})^2`; the teacher side is detached.
    """
    per_sample = (student_probs - teacher_probs.detach()).pow(2).mean(dim=1)
    if mask is not None:
        per_sample = per_sample * mask
    return per_sample.mean()


def class_balance_loss(student_probs: Tensor, eps: float = 1e-6) -> Tensor:
    """:math:`\\sum_c \\mathrm{BCE}(\\bar z_c, 1/C)` with :math:`\\bar z = ` batch mean of [B, C] probabilities.

    Minimal (= C · H_b(1/C)) when the batch's average prediction is uniform over the C classes.
    """
    n_classes = student_probs.shape[1]
    q = 1.0 / n_classes
    zbar = student_probs.mean(dim=0)
    bce = -(q * torch.log(zbar + eps) + (1.0 - q) * torch.log(1.0 - zbar + eps))
    return bce.sum()


@register
class MeanTeacher(DAMethod):
    """Self-ensembling domain adaptation with an EMA teacher, confidence threshold and class balance."""

    name = "mean_teacher"
    needs_target = True
    defaults = {
        "ema_decay": 0.99,
        "ema_warmup": False,
        "conf_threshold": 0.968,
        "consistency_weight": 3.0,
        "class_balance": 0.005,
        "augment_source": True,
        "affine_std": 0.1,
        "translate_px": 2.0,
        "gain": 0.25,
        "offset": 0.25,
        "invert_prob": 0.0,
        "noise_std": 0.1,
        "seed": None,
        **DIGIT_NET_DEFAULTS,
    }
    option_types = {"seed": (int, type(None))}
    log_keys = ("loss", "cls", "cons", "bal", "mask_rate", "acc")

    def __init__(self, n_classes: int = 10, **options: Any) -> None:
        super().__init__(n_classes, **options)
        o = self.options
        self.student = build_digit_net(n_classes, o)
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.augment_cfg = AugmentConfig(
            o["affine_std"], o["translate_px"], o["gain"], o["offset"], o["invert_prob"], o["noise_std"]
        )
        self._seed: int | None = o["seed"]
        self._generators: dict[str, torch.Generator] = {}
        # optimiser steps taken (the EMA ramp's t); a buffer, so it is checkpointed and a resumed run continues it
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self._register_load_state_dict_pre_hook(self._count_missing_in_old_checkpoints)

    @staticmethod
    def _count_missing_in_old_checkpoints(state_dict, prefix, *args) -> None:
        """Checkpoints from before ``ema_updates`` existed load with t = 0 (exact without ``ema_warmup``)."""
        state_dict.setdefault(prefix + "ema_updates", torch.zeros((), dtype=torch.long))

    def check_options(self, options: dict[str, Any]) -> None:
        check_digit_net_options(self)
        self._require(0.0 <= options["ema_decay"] < 1.0, "ema_decay", "in [0, 1)")
        self._require(0.0 <= options["conf_threshold"] < 1.0, "conf_threshold", "in [0, 1)")
        for key in ("consistency_weight", "class_balance", "affine_std", "translate_px", "gain", "offset", "noise_std"):
            self._require(options[key] >= 0, key, ">= 0")
        self._require(0.0 <= options["invert_prob"] <= 1.0, "invert_prob", "in [0, 1]")

    # ------------------------------------------------------------ randomness
    def generator(self, device: torch.device) -> torch.Generator:
        """The augmentation generator for ``device`` (created and seeded on first use)."""
        key = str(device)
        if key not in self._generators:
            if self._seed is None:
                self._seed = int(torch.randint(0, 2**62, (1,)).item())
            g = torch.Generator(device=device)
            g.manual_seed(self._seed)
            self._generators[key] = g
        return self._generators[key]

    def rng_state(self) -> dict:
        """The augmentation seed and each device's generator state (not model state: the model file keeps none)."""
        return {"seed": self._seed, "generators": {k: g.get_state() for k, g in self._generators.items()}}

    def set_rng_state(self, state: dict) -> None:
        self._seed = state["seed"]
        for key, s in state["generators"].items():
            g = torch.Generator(device=key)
            g.set_state(s)
            self._generators[key] = g

    def augment(self, x: Tensor) -> Tensor:
        """One stochastic view of ``x`` [B, 3, H, W] (see :mod:`~genda.data.augment`)."""
        return augment_batch(x, self.augment_cfg, self.generator(x.device))

    # ------------------------------------------------------------ training
    def training_step(
        self, xs: Tensor, ys: Tensor, xt: Tensor | None, progress: float
    ) -> tuple[Tensor, dict[str, float]]:
        xt = self._require_target(xt)
        o = self.options
        xs_in = self.augment(xs) if o["augment_source"] else xs
        logits_s = self.student(xs_in)
        cls = self._cross_entropy(logits_s, ys)

        z = F.softmax(self.student(self.augment(xt)), dim=1)
        with torch.no_grad():
            z_teacher = F.softmax(self.teacher(self.augment(xt)), dim=1)
        mask = confidence_mask(z_teacher, o["conf_threshold"])
        mask_rate = mask.mean()
        cons = consistency_loss(z, z_teacher, mask)
        bal = class_balance_loss(z) * mask_rate
        loss = cls + o["consistency_weight"] * cons + o["class_balance"] * bal
        logs = {
            "loss": loss,
            "cls": cls,
            "cons": cons,
            "bal": bal,
            "mask_rate": mask_rate,
            "acc": accuracy(logits_s, ys),
        }
        return loss, to_floats(logs)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """EMA update θ' ← δ_t θ' + (1 − δ_t) θ of the teacher parameters (buffers are not averaged)."""
        self.ema_updates += 1
        w = 1.0 - self.ema_decay_now()  # 0-d tensor on the buffer's device: no host sync per step
        for p_t, p_s in zip(self.teacher.parameters(), self.student.parameters()):
            p_t.lerp_(p_s.detach(), w)

    def ema_decay_now(self) -> Tensor:
        """δ_t of the latest update (0-d tensor): ``ema_decay``, capped by 1 − 1/(t+1) when ``ema_warmup``."""
        d = torch.full((), self.options["ema_decay"], dtype=torch.float32, device=self.ema_updates.device)
        if self.options["ema_warmup"]:
            d = torch.minimum(d, 1.0 - 1.0 / (self.ema_updates + 1).float())
        return d

    def classify(self, x: Tensor) -> Tensor:
        return self.teacher(x)

    def embed(self, x: Tensor) -> Tensor:
        return self.teacher.features(x)
