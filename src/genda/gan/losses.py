"""Adversarial losses on raw discriminator logits, the WGAN-GP gradient penalty and the R1 penalty.

Notation: r = D(x) logits on a real batch [B], f = D(G(z)) logits on a generated batch [B],
σ the logistic sigmoid, E the batch mean, a / b the real / fake targets (floats or tensors [B]).

======== ========================================================== ===========================
name     discriminator loss                                         generator loss
======== ========================================================== ===========================
bce      −E[a log σ(r) + (1−a) log(1−σ(r))]                         −E[log σ(f)]  (non-saturating)
         −E[b log σ(f) + (1−b) log(1−σ(f))]      (Goodfellow 2014)
lsgan    ½E[(r − a)²] + ½E[(f − b)²]             (Mao et al. 2017)  ½E[(f − 1)²]
wgan_gp  E[f] − E[r]  (+ λ·GP, added by the trainer, Gulrajani 2017) −E[f]
hinge    E[relu(1 − r)] + E[relu(1 + f)]         (Lim & Ye 2017)    −E[f]
======== ========================================================== ===========================

Penalties on the critic's input gradient, added by the trainer to the D loss: :func:`gradient_penalty` (WGAN-GP,
on interpolates, ``gp_weight``) and :func:`r1_penalty` (R1 on real images, lazily every ``r1_every`` D steps,
``r1_gamma``; StyleGAN2's recipe with the non-saturating ``bce`` loss).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genda.errors import ConfigError
from genda.rng import rand

LOSSES = ("bce", "lsgan", "wgan_gp", "hinge")


def _target(value, like: torch.Tensor) -> torch.Tensor:
    """Float or tensor target broadcast to the logits' shape / dtype / device."""
    if isinstance(value, torch.Tensor):
        return value.to(device=like.device, dtype=like.dtype).expand_as(like)
    return torch.full_like(like, float(value))


class GANLoss:
    """Adversarial loss ``name`` in {"bce", "lsgan", "wgan_gp", "hinge"} (formulas in the module doc).

    Logits are ``[B]`` (any shape works; all reductions are means). ``real_target`` and
    ``fake_target`` (label smoothing / noisy labels) are used only by "bce" and "lsgan".
    ``needs_gradient_penalty`` is True for "wgan_gp": the trainer then adds
    ``gp_weight * gradient_penalty(D, real, fake)`` (or :meth:`penalty`) to the critic loss.
    """

    def __init__(self, name: str, gp_weight: float = 10.0):
        if name not in LOSSES:
            raise ConfigError(f"GAN loss must be one of {list(LOSSES)}, got {name!r}")
        if gp_weight < 0:
            raise ConfigError(f"gp_weight must be >= 0, got {gp_weight!r}")
        self.name = name
        self.gp_weight = float(gp_weight)
        self.needs_gradient_penalty = name == "wgan_gp"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor,
               real_target=1.0, fake_target=0.0) -> torch.Tensor:
        """Discriminator (critic) loss to minimise; a scalar."""
        r, f = real_logits, fake_logits
        if self.name == "bce":
            return (F.binary_cross_entropy_with_logits(r, _target(real_target, r))
                    + F.binary_cross_entropy_with_logits(f, _target(fake_target, f)))
        if self.name == "lsgan":
            return (0.5 * (r - _target(real_target, r)).pow(2).mean()
                    + 0.5 * (f - _target(fake_target, f)).pow(2).mean())
        if self.name == "wgan_gp":
            return f.mean() - r.mean()
        return F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator loss to minimise; a scalar."""
        f = fake_logits
        if self.name == "bce":
            return F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
        if self.name == "lsgan":
            return 0.5 * (f - 1.0).pow(2).mean()
        return -f.mean()

    def penalty(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``gp_weight · gradient_penalty(...)`` when the loss needs it, else a zero scalar."""
        if not self.needs_gradient_penalty:
            return real.new_zeros(())
        return self.gp_weight * gradient_penalty(critic, real, fake, generator=generator)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al., 2017): E[(‖∇_x̂ D(x̂)‖₂ − 1)²].

    x̂ = ε·x + (1 − ε)·x̃ with x = ``real``, x̃ = ``fake`` (both ``[B, ...]``, detached here) and
    ε ~ U[0, 1] drawn once per sample (shape [B, 1, ..., 1]) from ``generator``. The gradient is
    taken with ``create_graph=True`` so the penalty back-propagates into the critic's weights.
    Returns a scalar.
    """
    real, fake = real.detach(), fake.detach()
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = rand(shape, generator=generator, device=real.device).to(real.dtype)
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(critic, real: torch.Tensor, gamma: float, every: int = 1) -> torch.Tensor:
    """R1 penalty (Mescheder et al., 2018) with lazy regularisation (Karras et al., 2020, StyleGAN2 §3.1):

        R1 = (γ / 2) · k · E_b[ ‖∇_x Σ_b' D(x)_b' |_b‖²₂ ],

    with x = ``real`` [B, C, H, W] (detached here, then ``requires_grad``), D(x) = ``critic(x)`` logits [B],
    ∇_x Σ_b' D(x)_b' [B, C, H, W] the gradient of the summed logits (as the official code; with a minibatch-std
    layer a sample's logit also depends on the others), |_b its sample b flattened to C·H·W, γ = ``gamma`` and
    k = ``every``: the trainer adds this term on every k-th D step only, so it is scaled by k to keep the
    penalty's expected weight γ/2 per step. Returns a scalar (fp32), with ``create_graph=True`` so that it
    back-propagates into the critic's weights.

    Numerics: the critic's forward pass and the gradient run in fp32 with autocast disabled, also inside the
    trainers' bf16 autocast region (a squared input gradient of a well-trained D is small; bf16's 8-bit
    mantissa would round it coarsely), and x is cast to fp32 first. A lazy term costs one extra fp32 forward and
    double backward of D every k steps.
    """
    x = real.detach().float().requires_grad_(True)
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = critic(x)
        (grad,) = torch.autograd.grad(out.float().sum(), x, create_graph=True)
        sq_norm = grad.pow(2).flatten(1).sum(dim=1)  # [B]
    return (0.5 * float(gamma) * int(every)) * sq_norm.mean()
