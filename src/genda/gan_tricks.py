"""GAN training tricks from the course's seed reports (latent priors, label smoothing / noisy labels,
skipping discriminator updates, optimiser and schedule choice) and two beyond them: an exponential
moving average of the generator weights and Differentiable Augmentation (Zhao et al., 2020).

Randomness: every function drawing random numbers takes an optional ``torch.Generator``. Numbers are
drawn on the generator's device (the pipeline uses a CPU generator) and then moved to the target
device, so the same seed gives the same tensors on CPU and GPU. Without a generator the global RNG
of the target device is used.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from genda import optim
from genda.errors import ConfigError

PRIORS = ("normal", "uniform", "sphere")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULERS = ("none", "linear", "cosine", "step")
AUGMENTS = ("color", "translation", "cutout")


# ----------------------------------------------------------------------------- random helpers
def _gen_device(generator: torch.Generator | None, device) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def rand(shape, *, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """U[0, 1) of ``shape``, drawn on the generator's device, returned on ``device``."""
    return torch.rand(shape, generator=generator, device=_gen_device(generator, device)).to(device)


def randn(shape, *, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """N(0, 1) of ``shape``, drawn on the generator's device, returned on ``device``."""
    return torch.randn(shape, generator=generator, device=_gen_device(generator, device)).to(device)


def randint(low: int, high: int, shape, *, generator=None, device="cpu") -> torch.Tensor:
    """Integers uniform in [low, high) of ``shape`` (int64), returned on ``device``."""
    out = torch.randint(low, high, shape, generator=generator, device=_gen_device(generator, device))
    return out.to(device)


# ----------------------------------------------------------------------------- latent prior
def sample_z(n: int, z_dim: int, prior: str = "normal", *, generator=None, device="cpu") -> torch.Tensor:
    """Latent codes ``[n, z_dim]``.

    * ``"normal"``:  z ~ N(0, I)
    * ``"uniform"``: z ~ U[-1, 1]^z_dim
    * ``"sphere"``:  z = sqrt(z_dim) · u / ||u||₂ with u ~ N(0, I), i.e. uniform on the sphere of
      radius sqrt(z_dim) (where a high-dimensional normal concentrates anyway).
    """
    if prior == "normal":
        return randn((n, z_dim), generator=generator, device=device)
    if prior == "uniform":
        return rand((n, z_dim), generator=generator, device=device) * 2.0 - 1.0
    if prior == "sphere":
        u = randn((n, z_dim), generator=generator, device=device)
        return u / u.norm(dim=1, keepdim=True).clamp_min(1e-12) * math.sqrt(z_dim)
    raise ConfigError(f"latent prior must be one of {list(PRIORS)}, got {prior!r}")


# ----------------------------------------------------------------------------- labels
def _check_range(name: str, pair) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a (low, high) pair of numbers, got {pair!r}") from None
    if lo > hi:
        raise ConfigError(f"{name} must satisfy low <= high, got {pair!r}")
    return lo, hi


def real_fake_targets(
    n: int,
    *,
    smoothing: float = 0.0,
    noisy_real=None,
    noisy_fake=None,
    generator: torch.Generator | None = None,
    device="cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator targets ``(real [n], fake [n])`` for the BCE / LSGAN losses.

    * one-sided label smoothing (Salimans et al., 2016): real = 1 − ``smoothing``, fake = 0;
    * noisy labels: real ~ U[lo, hi] for ``noisy_real=(lo, hi)`` such as (0.7, 1.2), and
      fake ~ U[lo, hi] for ``noisy_fake`` such as (0.0, 0.3); drawn per sample.

    ``smoothing`` and ``noisy_real`` are exclusive. The real draw comes before the fake draw.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"label smoothing must be in [0, 1), got {smoothing!r}")
    if noisy_real is not None and smoothing > 0:
        raise ConfigError("label smoothing and noisy_real labels are exclusive; set only one")
    if noisy_real is not None:
        lo, hi = _check_range("noisy_real", noisy_real)
        real = lo + (hi - lo) * rand((n,), generator=generator, device=device)
    else:
        real = torch.full((n,), 1.0 - smoothing, device=device)
    if noisy_fake is not None:
        lo, hi = _check_range("noisy_fake", noisy_fake)
        fake = lo + (hi - lo) * rand((n,), generator=generator, device=device)
    else:
        fake = torch.zeros(n, device=device)
    return real, fake


def should_skip_d(d_loss_value: float, threshold: float | None) -> bool:
    """True when the discriminator is already winning (its loss < ``threshold``) and its update
    should be skipped this step; never skips when ``threshold`` is None."""
    return threshold is not None and float(d_loss_value) < float(threshold)


# ----------------------------------------------------------------------------- EMA
EMA_BN_BATCHES = 32  # default `ema_bn_batches`: noise batches for the EMA copy's BatchNorm statistics
EMA_BN_SEED_OFFSET = 7919  # their torch.Generator is seeded with `seed + this` (apart from the training streams)


class EMA:
    """Exponential moving average of a model's parameters (Karras et al., 2018; Yazıcı et al., 2019).

    After each ``update(model)``: θ_ema ← d·θ_ema + (1 − d)·θ for every parameter, with the warm-up
    d = min(decay, (1 + n) / (10 + n)) after n earlier updates (as TensorFlow's ExponentialMovingAverage),
    so a short run is not dominated by the initial weights (0.999 alone keeps 45 % of them after 800 steps);
    buffers (e.g. BatchNorm running statistics) are copied as-is, and :meth:`standing_bn_stats` recomputes them for
    the averaged weights before the copy is used. ``.model`` is a frozen deep copy in eval mode
    (``requires_grad=False``) used for sampling / evaluation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay <= 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1], got {decay!r}")
        self.decay = float(decay)
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        self.num_updates += 1
        src_params = dict(model.named_parameters())
        ema = [p for _, p in self.model.named_parameters()]
        src = [src_params[name].detach().to(p.dtype) for name, p in self.model.named_parameters()]
        torch._foreach_mul_(ema, d)  # the multi-tensor form of p_ema.mul_(d).add_(p, alpha=1 - d): same bits
        torch._foreach_add_(ema, src, alpha=1.0 - d)
        src_bufs = dict(model.named_buffers())
        for name, b_ema in self.model.named_buffers():
            b_ema.copy_(src_bufs[name])

    @torch.no_grad()
    def standing_bn_stats(self, run: Callable[[nn.Module, torch.Generator], object], n_batches: int, seed: int) -> int:
        """Recompute the EMA copy's BatchNorm running statistics from its own activations ("standing statistics",
        Brock et al., 2019, BigGAN); returns the number of BatchNorm layers recomputed (0: nothing to do).

        :meth:`update` copies the trained model's running statistics, which describe the *trained* weights'
        activations, not the averaged weights' (the two drift apart while G moves). Here every BatchNorm of
        ``self.model`` is reset, ``run(self.model, g)`` is called ``n_batches`` times in train mode (e.g. the
        generator on a fresh ``[B, z_dim]`` noise batch drawn from ``g``) and the statistics become the cumulative
        average over those batches (``momentum=None``), after which the copy is back in eval mode. ``g`` is a
        ``torch.Generator`` of its own, seeded with ``seed + EMA_BN_SEED_OFFSET``, so the result is reproducible and
        the training's random streams (and a resumed run) are unaffected. Measured on CelebA
        64x64, Method B (noisy labels, h-flip, EMA 0.999; 1,600 steps, 3 seeds): FID 4.8 +- 1.0 -> 1.5 +- 0.04 in fp32
        and 12.8 +- 4.2 -> 2.7 +- 0.5 in bf16 autocast (``benchmarks/results/ab_ema_bn_faces_celeba_cpu.json``).
        """
        bns = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
               and m.track_running_stats]
        if not bns or n_batches <= 0:
            return 0
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        g = torch.Generator().manual_seed(seed + EMA_BN_SEED_OFFSET)
        self.model.train()
        try:
            for _ in range(n_batches):
                run(self.model, g)
        finally:
            for m, mom in zip(bns, momenta):
                m.momentum = mom
            self.model.eval()
        return len(bns)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "model": self.model.state_dict()}

    def load_state_dict(self, sd: dict) -> None:
        self.decay = float(sd["decay"])
        self.num_updates = int(sd.get("num_updates", 10 ** 9))  # older checkpoints: past the warm-up
        self.model.load_state_dict(sd["model"])


# ----------------------------------------------------------------------------- augmentation
def random_hflip(x: torch.Tensor, p: float = 0.5, *, generator=None) -> torch.Tensor:
    """Flip each sample of ``x [B, C, H, W]`` left-right independently with probability ``p``."""
    flip = rand((x.shape[0],), generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _color(x: torch.Tensor, generator) -> torch.Tensor:
    b = x.shape[0]
    # brightness: x + δ, δ ~ U[-0.5, 0.5] per sample
    x = x + (rand((b, 1, 1, 1), generator=generator, device=x.device) - 0.5)
    # saturation: scale each pixel's deviation from its channel mean by s ~ U[0, 2]
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (rand((b, 1, 1, 1), generator=generator, device=x.device) * 2.0) + m
    # contrast: scale the deviation from the image mean by c ~ U[0.5, 1.5]
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (rand((b, 1, 1, 1), generator=generator, device=x.device) + 0.5) + m


def _translation(x: torch.Tensor, generator, ratio: float = 0.125) -> torch.Tensor:
    """out[b, :, i, j] = x[b, :, i + t_y, j + t_x], zero (mid-grey) outside, t ~ U{-s..s}, s = ratio·size."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = randint(-sy, sy + 1, (b, 1, 1), generator=generator, device=x.device)
    tx = randint(-sx, sx + 1, (b, 1, 1), generator=generator, device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + ty + sy  # index into the padded image
    cols = torch.arange(w, device=x.device)[None, None, :] + tx + sx
    padded = nn.functional.pad(x, (sx, sx, sy, sy)).permute(0, 2, 3, 1)  # [B, H+2sy, W+2sx, C]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero (mid-grey) a square of side ratio·size at a uniformly random centre (may be clipped)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = randint(0, h, (b, 1, 1), generator=generator, device=x.device)
    cx = randint(0, w, (b, 1, 1), generator=generator, device=x.device)
    i = torch.arange(h, device=x.device)[None, :, None] - (cy - ch // 2)
    j = torch.arange(w, device=x.device)[None, None, :] - (cx - cw // 2)
    inside = (i >= 0) & (i < ch) & (j >= 0) & (j < cw)
    return x * (~inside).to(x.dtype)[:, None]


_AUG_FNS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout", *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Differentiable Augmentation (Zhao et al., NeurIPS 2020) of ``x [B, C, H, W]`` in [-1, 1].

    ``policy`` is a comma-separated list applied in order, each with fresh per-sample parameters:

    * ``color``: brightness x+δ, δ~U[-½,½]; saturation (x−x̄_c)·s + x̄_c, s~U[0,2] (x̄_c: mean over
      channels at each pixel); contrast (x−x̄)·c + x̄, c~U[½,3/2] (x̄: mean of the image);
    * ``translation``: integer shift by up to 1/8 of the height/width in each axis, zero padding;
    * ``cutout``: a square of half the height/width at a random centre is set to 0.

    Every op is differentiable w.r.t. ``x`` (additions, products and index gathers), so the trainer
    applies it to both real and generated batches before the discriminator, D(T(x)) and D(T(G(z))).
    Output has the shape of ``x``. An empty policy returns ``x`` unchanged.
    """
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in _AUG_FNS:
            raise ConfigError(f"diff_augment policy entries must be in {list(AUGMENTS)}, got {name!r}")
    for name in names:
        x = _AUG_FNS[name](x, generator)
    return x


# ----------------------------------------------------------------------------- optimisation
def make_optimizer(
    params: Iterable, name: str, lr: float, betas=(0.5, 0.999), momentum: float = 0.9
) -> torch.optim.Optimizer:
    """``"adam"`` (Adam with ``betas``; DCGAN uses (0.5, 0.999), WGAN-GP (0.0, 0.9)),
    ``"sgd"`` (with ``momentum``) or ``"rmsprop"`` (torch defaults, no momentum, as in WGAN)."""
    if not lr > 0:
        raise ConfigError(f"learning rate must be > 0, got {lr!r}")
    if name == "adam":
        return optim.build("adam", params, lr=lr, betas=tuple(float(b) for b in betas))
    if name == "sgd":
        return optim.build("sgd", params, lr=lr, momentum=momentum)
    if name == "rmsprop":
        return optim.build("rmsprop", params, lr=lr)
    raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")


def make_scheduler(opt: torch.optim.Optimizer, name: str, total_steps: int):
    """Learning-rate schedule stepped once per optimiser step (lr_t for t = 0..total_steps):

    * ``"none"``: None (constant lr)
    * ``"linear"``: lr_t = lr · max(0, 1 − t / total_steps)
    * ``"cosine"``: lr_t = lr · (1 + cos(π t / total_steps)) / 2
    * ``"step"``: lr halves at t = ⌊total/2⌋ and again at t = ⌊3·total/4⌋
    """
    if name == "none":
        return None
    if name not in SCHEDULERS:
        raise ConfigError(f"lr scheduler must be one of {list(SCHEDULERS)}, got {name!r}")
    if int(total_steps) <= 0:
        raise ConfigError(f"lr scheduler needs total_steps > 0, got {total_steps!r}")
    total = int(total_steps)
    if name == "linear":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / total))
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[total // 2, (3 * total) // 4], gamma=0.5)
