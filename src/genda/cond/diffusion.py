"""DDPM noise schedule, training loss and samplers (DDPM ancestral, DDIM) with classifier-free guidance.

The scheduler holds only the numbers; the noise model is any ``model(x_t, t/T, labels, context_mask)``
returning ``eps`` with the shape of ``x_t`` (e.g. :class:`genda.cond.models.context_unet.ContextUnet`).

Notation (steps are 1-based, ``t = 1..T``; index 0 is the clean image)::

    beta_t      = linspace(beta_start, beta_end, T)[t-1],      beta_0 = 0
    alpha_t     = 1 - beta_t
    abar_t      = prod_{s<=t} alpha_s                           (abar_0 = 1)
    q(x_t|x_0)  = N(sqrt(abar_t) x_0, (1 - abar_t) I)  ->  x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps

DDPM step (Ho et al., 2020, sigma_t^2 = beta_t)::

    x_{t-1} = 1/sqrt(alpha_t) * (x_t - beta_t / sqrt(1 - abar_t) * eps) + sqrt(beta_t) z,   z = 0 at t = 1

DDIM step from t to s < t (Song et al., 2021)::

    x0_hat  = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    sigma   = eta * sqrt((1 - abar_s) / (1 - abar_t)) * sqrt(1 - abar_t / abar_s)
    x_s     = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z

Prediction targets: the network predicts ``eps`` (Ho et al.) or the velocity (Salimans & Ho, 2022)::

    v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0,      eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t

At high noise ``v ~ -x_0`` (a smooth image) where ``eps ~ x_t`` would ask the network to copy its input exactly:
an undertrained eps network leaves residual noise in ``x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``,
amplified ``1 / sqrt(abar_T)`` times (7x at T = 400), which DDIM carries into the image.  A v network is wrapped
by :class:`EpsFromV` so the samplers below always receive ``eps``.

Training steps are drawn uniformly from ``1..T`` (Ho et al.) or from a logit-normal (Esser et al., 2024, their
rectified-flow study's best sampler): ``t = ceil(T sigmoid(u))``, ``u ~ N(m, s^2)``, which spends the training
batches on the middle and (``m > 0``) noisier levels, where a digit's identity and shape are decided, instead of on
the nearly clean steps the 10-step DDIM sampler barely uses (:meth:`DDPMScheduler.sample_steps`).

Classifier-free guidance (Ho & Salimans, 2022), the conditional and unconditional halves batched::

    eps = (1 + w) eps(x_t, t, c) - w eps(x_t, t, null)

All randomness comes from the ``torch.Generator`` passed in: noise is drawn on the CPU and moved to the
device, so a seed gives the same starting noise on CPU and CUDA.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from genda.choices import DDPM_LOSS_WEIGHTS, DDPM_PREDICTIONS, DDPM_T_SAMPLINGS
from genda.errors import ConfigError

__all__ = ["DDPMScheduler", "EpsFromV", "PREDICTIONS", "LOSS_WEIGHTS", "T_SAMPLINGS", "sample_ddpm", "sample_ddim",
           "ddim_timesteps"]

PREDICTIONS, LOSS_WEIGHTS, T_SAMPLINGS = DDPM_PREDICTIONS, DDPM_LOSS_WEIGHTS, DDPM_T_SAMPLINGS

NoiseModel = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


class DDPMScheduler:
    """Linear-beta schedule with ``T`` steps; all buffers have length ``T + 1`` and are indexed by ``t``.

    Buffers (float32, on ``device``): ``betas``, ``alphas``, ``alpha_bars``, ``sqrt_ab`` = sqrt(abar),
    ``sqrt_1m_ab`` = sqrt(1 - abar), ``sqrt_betas``, ``one_over_sqrt_a`` = 1/sqrt(alpha),
    ``mab_over_sqrtmab`` = (1 - alpha)/sqrt(1 - abar) (index 0 of the last two is unused).
    The cumulative product is taken in float64.
    """

    def __init__(self, T: int = 400, beta_start: float = 1e-4, beta_end: float = 0.02,
                 device: str | torch.device = "cpu"):
        if not isinstance(T, int) or T < 1:
            raise ConfigError(f"DDPMScheduler: T must be a positive integer, got {T!r}")
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ConfigError(f"DDPMScheduler: need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        self.T = T
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        betas = torch.zeros(T + 1, dtype=torch.float64)
        betas[1:] = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        bufs = {
            "betas": betas,
            "alphas": alphas,
            "alpha_bars": abar,
            "sqrt_ab": abar.sqrt(),
            "sqrt_1m_ab": (1.0 - abar).sqrt(),
            "sqrt_betas": betas.sqrt(),
            "one_over_sqrt_a": 1.0 / alphas.sqrt(),
            "mab_over_sqrtmab": torch.cat([torch.zeros(1, dtype=torch.float64),
                                           (1.0 - alphas[1:]) / (1.0 - abar[1:]).sqrt()]),
        }
        self._names = list(bufs)
        for name, value in bufs.items():
            setattr(self, name, value.float())
        self.device = torch.device("cpu")
        self.to(device)

    def to(self, device: str | torch.device) -> "DDPMScheduler":
        """Move every buffer to ``device`` (in place); returns ``self``."""
        self.device = torch.device(device)
        for name in self._names:
            setattr(self, name, getattr(self, name).to(self.device))
        return self

    def _gather(self, buf: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``buf[t]`` reshaped to ``[B, 1, ..., 1]`` to broadcast against ``like``."""
        return buf.to(like.device)[t.to(like.device).long()].view(-1, *([1] * (like.dim() - 1))).to(like.dtype)

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """Forward process sample ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``.

        Shapes: x0, noise ``[B, ...]``; t ``[B]`` long in ``0..T`` (0 returns ``x0``) -> ``[B, ...]``.
        """
        if x0.shape != noise.shape:
            raise ValueError(f"add_noise: x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} differ in shape")
        t = t.long()
        if t.shape != (x0.shape[0],):
            raise ValueError(f"add_noise: t must be [B={x0.shape[0]}], got {tuple(t.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) > self.T):
            raise ValueError(f"add_noise: t must be in 0..{self.T}, got {int(t.min())}..{int(t.max())}")
        return self._gather(self.sqrt_ab, t, x0) * x0 + self._gather(self.sqrt_1m_ab, t, x0) * noise

    def velocity(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """``v = sqrt(abar_t) noise - sqrt(1 - abar_t) x0``; shapes as :meth:`add_noise`."""
        t = t.long()
        return self._gather(self.sqrt_ab, t, x0) * noise - self._gather(self.sqrt_1m_ab, t, x0) * x0

    def eps_from_v(self, x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
        """``eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t`` (inverse of :meth:`velocity` given ``x_t``)."""
        t = t.long()
        return self._gather(self.sqrt_ab, t, x_t) * v + self._gather(self.sqrt_1m_ab, t, x_t) * x_t

    def snr(self, t: Tensor) -> Tensor:
        """Signal-to-noise ratio ``abar_t / (1 - abar_t)`` at steps ``t`` (``[B]`` long in ``1..T``) -> ``[B]`` float."""
        ab = self.alpha_bars.to(t.device)[t.long()]
        return ab / (1.0 - ab)

    def loss_weights(self, t: Tensor, prediction: str, weighting: str = "none", gamma: float = 5.0) -> Tensor:
        """Per-sample weights ``[B]`` of the squared error at steps ``t`` (``[B]`` long in ``1..T``).

        ``none``: 1 (Ho et al.'s "simple" loss).  ``min_snr`` (Min-SNR-gamma, Hang et al., 2023): clamp the
        per-step weight of the x0-space error at ``min(SNR_t, gamma)``, which for the network's own target is::

            eps target:  w_t = min(SNR_t, gamma) / SNR_t
            v target:    w_t = min(SNR_t, gamma) / (SNR_t + 1)

        The low-noise steps (large SNR, where the image is nearly given) stop dominating the gradient; the paper
        reports 3.4x faster convergence on ImageNet.
        """
        if weighting not in LOSS_WEIGHTS:
            raise ConfigError(f"loss weighting must be one of {', '.join(LOSS_WEIGHTS)}, got {weighting!r}")
        if weighting == "none":
            return torch.ones(t.shape, device=t.device)
        if gamma <= 0:
            raise ConfigError(f"min_snr gamma must be > 0, got {gamma}")
        snr = self.snr(t)
        return snr.clamp(max=gamma) / (snr + 1.0 if prediction == "v" else snr)

    def sample_steps(self, n: int, generator: torch.Generator | None = None, how: str = "uniform",
                     logit_mean: float = 0.0, logit_std: float = 1.0) -> Tensor:
        """``n`` training steps (``[n]`` long in ``1..T``, on the CPU, drawn from ``generator``).

        ``uniform``: ``t ~ U{1..T}``.  ``logit_normal``: ``t = clamp(ceil(T sigmoid(u)), 1, T)`` with
        ``u ~ N(logit_mean, logit_std^2)``; with ``(0, 1)`` 73 % of the draws fall in the middle half of ``1..T``
        (uniform: 50 %), and ``logit_mean > 0`` shifts them to noisier steps.
        """
        if how not in T_SAMPLINGS:
            raise ConfigError(f"t_sampling must be one of {', '.join(T_SAMPLINGS)}, got {how!r}")
        if how == "uniform":
            return torch.randint(1, self.T + 1, (n,), generator=generator)
        if not logit_std > 0:
            raise ConfigError(f"t_logit_std must be > 0, got {logit_std}")
        u = torch.randn(n, generator=generator) * logit_std + logit_mean
        return (torch.sigmoid(u) * self.T).ceil().clamp(1, self.T).long()

    def training_loss(self, model: NoiseModel, x0: Tensor, labels: Tensor, *, p_uncond: float = 0.1,
                      generator: torch.Generator | None = None, prediction: str = "eps",
                      weighting: str = "none", snr_gamma: float = 5.0, t_sampling: str = "uniform",
                      t_logit_mean: float = 0.0, t_logit_std: float = 1.0) -> Tensor:
        """DDPM loss with label dropout for classifier-free guidance.

        ``t`` from :meth:`sample_steps` (``t_sampling``, default ``U{1..T}``), ``eps ~ N(0, I)``,
        ``mask_i ~ Bernoulli(p_uncond)`` (1 = label dropped), all drawn on the CPU from ``generator``;
        ``loss = mean_i w_i mean || target_i - model(x_t, t/T, labels, mask)_i ||^2``
        with ``target = eps`` (``prediction="eps"``) or ``v`` (``"v"``, :meth:`velocity`) and ``w`` from
        :meth:`loss_weights` (``weighting="none"``: all 1, Ho et al.'s simple loss).

        Shapes: x0 ``[B, C, H, W]``, labels ``[B]`` long -> scalar.
        """
        if not 0.0 <= p_uncond <= 1.0:
            raise ConfigError(f"training_loss: p_uncond must be in [0, 1], got {p_uncond}")
        if prediction not in PREDICTIONS:
            raise ConfigError(f"training_loss: prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
        B, dev = x0.shape[0], x0.device
        t = self.sample_steps(B, generator, t_sampling, t_logit_mean, t_logit_std)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        mask = (torch.rand(B, generator=generator) < p_uncond).to(x0.dtype)
        t, noise, mask = t.to(dev), noise.to(dev), mask.to(dev)
        x_t = self.add_noise(x0, noise, t)
        pred = model(x_t, t.to(x0.dtype) / self.T, labels, mask)
        target = noise if prediction == "eps" else self.velocity(x0, noise, t)
        if weighting == "none":
            return F.mse_loss(pred, target)
        per_sample = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
        return (self.loss_weights(t, prediction, weighting, snr_gamma) * per_sample).mean()


class EpsFromV(torch.nn.Module):
    """Wraps a v-predicting network so that it returns ``eps`` (:meth:`DDPMScheduler.eps_from_v`).

    Same call as the wrapped network: ``(x_t [B, ...], t/T [B], labels [B], mask [B]) -> eps [B, ...]``; the step
    index is recovered as ``round(T * t/T)``.
    """

    def __init__(self, net: torch.nn.Module, sched: DDPMScheduler):
        super().__init__()
        self.net, self.sched = net, sched

    def forward(self, x: Tensor, t: Tensor, c: Tensor, context_mask: Tensor | None = None) -> Tensor:
        v = self.net(x, t, c, context_mask)
        return self.sched.eps_from_v(x, v, torch.round(t.float() * self.sched.T).long())


def _check_keep(keep_steps: Iterable[int] | None, allowed: set[int], what: str) -> set[int]:
    keep = set(int(k) for k in keep_steps) if keep_steps is not None else set()
    bad = sorted(keep - allowed)
    if bad:
        shown = sorted(allowed, reverse=True)
        shown_txt = ", ".join(map(str, shown[:12])) + (", ..." if len(shown) > 12 else "")
        raise ConfigError(f"{what}: keep_steps {bad} are not visited by the sampler; visited steps: {shown_txt}")
    return keep


def _guided_eps(model: NoiseModel, x: Tensor, t_norm: float, labels: Tensor, guide_w: float) -> Tensor:
    """``(1 + w) eps(x, t, c) - w eps(x, t, null)``; one batched call of size 2B (B if ``w == 0``)."""
    B = x.shape[0]
    if guide_w == 0:
        t = torch.full((B,), t_norm, device=x.device, dtype=x.dtype)
        return model(x, t, labels, torch.zeros(B, device=x.device, dtype=x.dtype))
    t = torch.full((2 * B,), t_norm, device=x.device, dtype=x.dtype)
    mask = torch.cat([torch.zeros(B), torch.ones(B)]).to(device=x.device, dtype=x.dtype)
    eps = model(torch.cat([x, x]), t, torch.cat([labels, labels]), mask)
    return (1.0 + guide_w) * eps[:B] - guide_w * eps[B:]


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    return torch.randn(shape, generator=generator).to(device=like.device, dtype=like.dtype)


@torch.no_grad()
def sample_ddpm(model: NoiseModel, sched: DDPMScheduler, labels: Tensor, *, guide_w: float = 2.0,
                generator: torch.Generator | None = None, img_shape: tuple[int, ...] = (3, 28, 28),
                keep_steps: list[int] | None = None) -> tuple[Tensor, dict[int, Tensor]]:
    """Ancestral DDPM sampling over all ``T`` steps with classifier-free guidance ``guide_w``.

    Runs on ``labels.device`` (put the model there; call ``model.eval()`` first).

    Args:
        labels: ``[B]`` long class labels.
        keep_steps: steps ``t`` in ``0..T`` whose ``x_t`` to return (``T`` = the starting noise,
            0 = the final image).

    Returns:
        images ``[B, *img_shape]`` (the final ``x_0``, not clipped) and ``{t: x_t}`` as float CPU copies.
    """
    keep = _check_keep(keep_steps, set(range(sched.T + 1)), "sample_ddpm")
    B, dev = labels.shape[0], labels.device
    sched = sched if sched.device == dev else _moved(sched, dev)
    ref = torch.empty(0, device=dev)
    x = _randn((B, *img_shape), generator, ref)
    inter: dict[int, Tensor] = {}
    if sched.T in keep:
        inter[sched.T] = x.detach().cpu().clone()
    for t in range(sched.T, 0, -1):
        eps = _guided_eps(model, x, t / sched.T, labels, guide_w)
        z = _randn(x.shape, generator, x) if t > 1 else torch.zeros_like(x)
        x = sched.one_over_sqrt_a[t] * (x - sched.mab_over_sqrtmab[t] * eps) + sched.sqrt_betas[t] * z
        if t - 1 in keep:
            inter[t - 1] = x.detach().cpu().clone()
    return x, inter


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """Evenly spaced ("trailing") sub-sequence of ``1..T``, descending, always starting at ``T``:
    ``round(T - k T / steps)`` for ``k = 0..steps-1``.  E.g. ``T=400, steps=4 -> [400, 300, 200, 100]``."""
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ConfigError(f"DDIM: steps must be an integer in 1..T={T}, got {steps!r}")
    return [int(round(T - k * T / steps)) for k in range(steps)]


@torch.no_grad()
def sample_ddim(model: NoiseModel, sched: DDPMScheduler, labels: Tensor, *, steps: int = 50, eta: float = 0.0,
                guide_w: float = 2.0, generator: torch.Generator | None = None,
                img_shape: tuple[int, ...] = (3, 28, 28), keep_steps: list[int] | None = None,
                clip_x0: bool = False) -> tuple[Tensor, dict[int, Tensor]]:
    """DDIM sampling on :func:`ddim_timesteps` ``(T, steps)`` followed by a last step to ``t = 0``.

    ``eta = 0`` is deterministic given the starting noise; ``eta = 1`` matches DDPM's posterior variance.
    ``clip_x0`` clamps ``x0_hat`` to ``[-1, 1]`` at every step.  Runs on ``labels.device``.

    Args:
        keep_steps: steps to return, each one of the visited steps (``ddim_timesteps(T, steps)`` or 0).

    Returns:
        images ``[B, *img_shape]`` and ``{t: x_t}`` as CPU copies.
    """
    if eta < 0:
        raise ConfigError(f"sample_ddim: eta must be >= 0, got {eta}")
    taus = ddim_timesteps(sched.T, steps)
    keep = _check_keep(keep_steps, set(taus) | {0}, "sample_ddim")
    B, dev = labels.shape[0], labels.device
    sched = sched if sched.device == dev else _moved(sched, dev)
    ref = torch.empty(0, device=dev)
    x = _randn((B, *img_shape), generator, ref)
    inter: dict[int, Tensor] = {}
    if sched.T in keep:
        inter[sched.T] = x.detach().cpu().clone()
    abar = sched.alpha_bars
    for i, t in enumerate(taus):
        s = taus[i + 1] if i + 1 < len(taus) else 0
        eps = _guided_eps(model, x, t / sched.T, labels, guide_w)
        ab_t, ab_s = abar[t], abar[s]
        x0_hat = (x - (1.0 - ab_t).sqrt() * eps) / ab_t.sqrt()
        if clip_x0:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
            eps = (x - ab_t.sqrt() * x0_hat) / (1.0 - ab_t).sqrt()
        sigma = eta * ((1.0 - ab_s) / (1.0 - ab_t)).sqrt() * (1.0 - ab_t / ab_s).sqrt()
        x = ab_s.sqrt() * x0_hat + (1.0 - ab_s - sigma ** 2).clamp(min=0.0).sqrt() * eps
        if eta > 0 and s > 0:
            x = x + sigma * _randn(x.shape, generator, x)
        if s in keep:
            inter[s] = x.detach().cpu().clone()
    return x, inter


def _moved(sched: DDPMScheduler, device: torch.device) -> DDPMScheduler:
    """A copy of ``sched`` on ``device`` (the caller's scheduler is left where it is)."""
    copy = DDPMScheduler.__new__(DDPMScheduler)
    copy.__dict__.update(sched.__dict__)
    copy._names = list(sched._names)
    return copy.to(device)
