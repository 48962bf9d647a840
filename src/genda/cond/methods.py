"""The four conditional generators behind one small interface (used by :mod:`genda.cond.train`).

Every method owns its networks, optimisers, schedulers and EMA, and exposes::

    batches_per_step                    how many (x, cond) batches one training step consumes
    training_step(batches, step) -> {name: value}   one optimisation step (all its updates); values are
                                        0-dim tensors or floats (the trainer reads them only when logging)
    autocast                            a zero-argument context factory (the trainer sets it to
                                        :meth:`genda.runtime.precision.Compute.autocast`): ``training_step`` runs
                                        each forward pass and loss under it, backward passes and optimiser
                                        steps outside it (a bf16 weight cache made before ``opt_d.step()``
                                        must not serve the G step)
    state_dict() / load_state_dict(sd)  everything needed to resume training exactly
    export() -> dict                    the weights needed to sample (written to models/cond/<name>)
    sample(cond, generator, sample_cfg) -> float images [B, C, H, W] in [-1, 1] (no grad, eval mode)

``x`` is a float batch ``[B, C, H, W]`` in ``[-1, 1]``; ``cond`` is ``[B]`` long (class / attribute
on-off) or ``[B, G]`` long (one index per tag group, tag_cdcgan).  All random draws (z, fake
labels, ε of the gradient penalty, wrong tags, diffusion noise) come from the CPU ``torch.Generator``
given to the constructor, so a checkpointed generator state reproduces them.

Losses (B = batch mean, CE = cross-entropy, L_adv from :class:`genda.gan.losses.GANLoss`):

* ``acgan`` / ``attr_acgan`` (Odena et al., 2017), with ``(z, c~) ~ N(0, I) x U{0..K-1}``::

      L_D = L_adv_D(D_s(x), D_s(G(z, c~))) [+ λ_gp GP]  + λ_aux [CE(D_c(x), c) + CE(D_c(G(z, c~)), c~)]
                                                          (the fake term only with ``aux_fake_d``, default true)
      L_G = L_adv_G(D_s(G(z, c~)))                      + λ_aux  CE(D_c(G(z, c~)), c~)

* ``tag_cdcgan`` (GAN-CLS, Reed et al., 2016): ``L_D`` = :func:`~genda.cond.models.cdcgan.matching_aware_d_loss`
  over (real, right tags), (fake, right), (real, wrong tags), (other real images, right);
  ``L_G = BCE(D(G(z, t), t), 1)``; with ``tag_aux_weight`` λ > 0 the discriminator also classifies the tags
  (AC-GAN's auxiliary head, :func:`~genda.cond.models.cdcgan.tag_aux_loss`): ``L_D += λ CE(D_c(x), t)`` on real
  faces, ``L_G += λ CE(D_c(G(z, t)), t)``.
* ``ddpm`` (Ho et al., 2020, seed 002): ``L = E ||ε - ε_θ(x_t, t/T, c, mask)||²`` with label dropout
  ``p_uncond`` (:meth:`genda.cond.diffusion.DDPMScheduler.training_loss`), sampled with classifier-free
  guidance by DDIM or ancestral DDPM.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genda.train import optim
from genda.errors import ConfigError
from genda.gan.tricks import EMA, EMA_BN_BATCHES
from genda.train.optim import make_optimizer, make_scheduler
from genda.rng import randint, sample_z
from genda.gan.bn_mode import sampling_mode

__all__ = ["CondMethod", "ACGANMethod", "DDPMMethod", "TagCDCGANMethod", "build_method"]


class CondMethod:
    """Base class: stores settings, device and generator; subclasses fill in the networks."""

    batches_per_step = 1
    noise_generator = False  # True: the sampling network maps (z, condition) to images (prepare_sampling)

    def __init__(self, cfg: dict, meta: dict, device: torch.device, generator: torch.Generator, train: bool = True):
        self.cfg, self.meta, self.device, self.gen, self.train = cfg, meta, torch.device(device), generator, train
        self.ema: EMA | None = None
        self.autocast: Callable[[], ContextManager] = contextlib.nullcontext

    # -- helpers shared by the subclasses
    def _schedulers(self, *opts) -> list:
        return [make_scheduler(o, self.cfg["lr_schedule"], self.cfg["steps"]) for o in opts]

    def _modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def _optims(self) -> dict:
        raise NotImplementedError

    def sampling_net(self) -> nn.Module:
        """The network used for sampling: the EMA copy when enabled, else the trained one."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        sd = {k: m.state_dict() for k, m in self._modules().items()}
        sd.update({k: (o.state_dict() if o is not None else {}) for k, o in self._optims().items()})
        sd["ema"] = self.ema.state_dict() if self.ema else {}
        return sd

    def load_state_dict(self, sd: dict) -> None:
        for k, m in self._modules().items():
            m.load_state_dict(sd[k])
        for k, o in self._optims().items():
            if o is not None:
                o.load_state_dict(sd[k])
        if self.ema:
            self.ema.load_state_dict(sd["ema"])

    def export(self) -> dict:
        return {"net": self.sampling_net().state_dict()}

    def _bn_condition(self, n: int, generator: torch.Generator, cond: Tensor) -> Tensor:
        """G's conditioning input for ``n`` noise vectors, drawn as training draws its fakes' (noise-to-image
        generators only: those with ``noise_generator = True``)."""
        raise NotImplementedError

    @torch.no_grad()
    def prepare_sampling(self, cond: Tensor, seed: int) -> int:
        """Before the EMA generator samples: recompute its BatchNorm statistics for the averaged weights
        (:meth:`genda.gan.tricks.EMA.standing_bn_stats`, seeded from ``seed``) from ``cfg["ema_bn_batches"]``
        batches of fresh noise, with conditions drawn by :meth:`_bn_condition` (``cond``: the training conditions).
        A no-op without EMA and for the DDPM's denoiser. Returns the BatchNorm layers recomputed."""
        n = self.cfg.get("ema_bn_batches", EMA_BN_BATCHES)
        if not (self.noise_generator and self.ema and n):
            return 0
        bs = self.cfg["batch_size"]

        def run(net: nn.Module, g: torch.Generator) -> None:
            z = sample_z(bs, self.cfg["z_dim"], "normal", generator=g).to(self.device)
            net(z, self._bn_condition(bs, g, cond).to(self.device))
        return self.ema.standing_bn_stats(run, n, seed)

    def load_export(self, sd: dict) -> None:
        self.sampling_net().load_state_dict(sd["net"])

    def training_step(self, batches: list[tuple[Tensor, Tensor]], step: int) -> dict[str, Tensor | float]:
        raise NotImplementedError

    def sample(self, cond: Tensor, generator: torch.Generator, sample_cfg: dict | None = None) -> Tensor:
        raise NotImplementedError


def _opt_step(opt, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


# --------------------------------------------------------------------------- ACGAN (digits and one attribute)
class ACGANMethod(CondMethod):
    """ACGAN on ``meta["n_classes"]`` classes at ``meta["img_size"]`` (digits 28, faces 64 with K = 2)."""

    noise_generator = True

    def __init__(self, cfg, meta, device, generator, train=True):
        from genda.gan.losses import GANLoss
        from genda.cond.models.acgan import ACGANDiscriminator, ACGANGenerator
        from genda.gan.models.dcgan import init_dcgan_weights

        super().__init__(cfg, meta, device, generator, train)
        self.K = meta["n_classes"]
        self.G = ACGANGenerator(cfg["z_dim"], self.K, meta["img_size"], meta["channels"], cfg["ngf"],
                                label_input=cfg.get("label_input") or "product").to(device)
        self.G.apply(init_dcgan_weights)
        self.batches_per_step = cfg["d_steps"]
        self.D = self.opt_g = self.opt_d = None
        self.sch_g = self.sch_d = None
        if train:
            self.D = ACGANDiscriminator(self.K, meta["img_size"], meta["channels"], cfg["ndf"], cfg["dropout"],
                                        cfg["d_norm"]).to(device)
            self.D.apply(init_dcgan_weights)
            self.opt_g = make_optimizer(self.G.parameters(), "adam", cfg["lr_g"], betas=cfg["betas"])
            self.opt_d = make_optimizer(self.D.parameters(), "adam", cfg["lr_d"], betas=cfg["betas"])
            self.sch_g, self.sch_d = self._schedulers(self.opt_g, self.opt_d)
            self.loss = GANLoss(cfg["loss"], gp_weight=cfg["gp_weight"])
            self.ema = EMA(self.G, cfg["ema_decay"]) if cfg["ema_decay"] else None

    def _modules(self):
        return {"G": self.G, "D": self.D}

    def _optims(self):
        return {"opt_g": self.opt_g, "opt_d": self.opt_d, "sch_g": self.sch_g, "sch_d": self.sch_d}

    def sampling_net(self):
        return self.ema.model if self.ema else self.G

    def _bn_condition(self, n, generator, cond):
        return randint(0, self.K, (n,), generator=generator)  # fake labels are uniform in training too

    def _draw(self, n: int) -> tuple[Tensor, Tensor]:
        z = sample_z(n, self.cfg["z_dim"], "normal", generator=self.gen).to(self.device)
        return z, randint(0, self.K, (n,), generator=self.gen).to(self.device)

    def training_step(self, batches, step):
        from genda.gan.losses import gradient_penalty
        from genda.cond.models.acgan import acgan_aux_loss

        cfg, G, D = self.cfg, self.G, self.D
        G.train(); D.train()
        lam = cfg["aux_weight"]
        for real, y in batches:
            z, fy = self._draw(real.shape[0])
            with self.autocast():
                with torch.no_grad():
                    fake = G(z, fy)
                adv_r, cls_r = D(real)
                adv_f, cls_f = D(fake)
                d_adv = self.loss.d_loss(adv_r, adv_f)
                if self.loss.needs_gradient_penalty:
                    d_adv = d_adv + cfg["gp_weight"] * gradient_penalty(lambda t: D(t)[0], real, fake,
                                                                        generator=self.gen)
                d_aux = acgan_aux_loss(cls_r, y)
                if cfg.get("aux_fake_d", True):
                    d_aux = d_aux + acgan_aux_loss(cls_f, fy)
                d_loss = d_adv + lam * d_aux
            _opt_step(self.opt_d, d_loss)
        n = batches[-1][0].shape[0]
        z, fy = self._draw(n)
        with self.autocast():
            adv, cls = D(G(z, fy))
            g_adv, g_aux = self.loss.g_loss(adv), acgan_aux_loss(cls, fy)
            g_loss = g_adv + lam * g_aux
        _opt_step(self.opt_g, g_loss)
        if self.ema:
            self.ema.update(G)
        for s in (self.sch_g, self.sch_d):
            if s:
                s.step()
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), "d_adv": d_adv.detach(),
                "d_aux": d_aux.detach(), "g_aux": g_aux.detach(),
                "acc_real": (cls_r.detach().argmax(1) == y).float().mean(),
                "acc_fake": (cls.detach().argmax(1) == fy).float().mean(),
                "lr_d": self.opt_d.param_groups[0]["lr"], "lr_g": self.opt_g.param_groups[0]["lr"]}

    @torch.no_grad()
    def sample(self, cond, generator, sample_cfg=None):
        with sampling_mode(self.sampling_net(), (sample_cfg or {}).get("bn_mode", "eval")) as net:
            z = sample_z(len(cond), self.cfg["z_dim"], "normal", generator=generator).to(self.device)
            return net(z, cond.to(self.device))

    @torch.no_grad()
    def sample_pairs(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Attribute off / on from the same noise: two ``[n, C, H, W]`` batches."""
        from genda.cond.models.acgan import attribute_pairs

        z = sample_z(n, self.cfg["z_dim"], "normal", generator=generator).to(self.device)
        return attribute_pairs(self.sampling_net(), z)


# --------------------------------------------------------------------------- DDPM (seed 002)
class DDPMMethod(CondMethod):
    """Conditional DDPM: :class:`~genda.cond.models.context_unet.ContextUnet` or :class:`~genda.cond.models.film_unet.FiLMUnet`
    (``cfg["denoiser"]``) predicting ``eps`` or ``v`` (``cfg["prediction"]``) + linear-β scheduler, Adam."""

    def __init__(self, cfg, meta, device, generator, train=True):
        from genda.cond.diffusion import DDPMScheduler
        from genda.cond.models.context_unet import ContextUnet
        from genda.cond.models.film_unet import FiLMUnet

        super().__init__(cfg, meta, device, generator, train)
        net_cls = {"context_unet": ContextUnet, "film_unet": FiLMUnet}[cfg["denoiser"]]
        self.net = net_cls(meta["channels"], cfg["n_feat"], meta["n_classes"], meta["img_size"]).to(device)
        self.sched = DDPMScheduler(cfg["T"], cfg["beta_start"], cfg["beta_end"], device=device)
        self.opt = self.sch = None
        if train:
            self.opt = optim.build("adam", self.net.parameters(), lr=cfg["lr"])
            (self.sch,) = self._schedulers(self.opt)
            self.ema = EMA(self.net, cfg["ema_decay"]) if cfg["ema_decay"] else None

    def _modules(self):
        return {"net": self.net}

    def _optims(self):
        return {"opt": self.opt, "sch": self.sch}

    def sampling_net(self):
        return self.ema.model if self.ema else self.net

    def training_step(self, batches, step):
        self.net.train()
        (x0, y), = batches
        with self.autocast():
            loss = self.sched.training_loss(self.net, x0, y, p_uncond=self.cfg["p_uncond"], generator=self.gen,
                                            prediction=self.cfg["prediction"],
                                            weighting=self.cfg.get("loss_weight") or "none",
                                            snr_gamma=self.cfg.get("min_snr_gamma") or 5.0,
                                            t_sampling=self.cfg.get("t_sampling") or "uniform",
                                            t_logit_mean=self.cfg.get("t_logit_mean") or 0.0,
                                            t_logit_std=self.cfg.get("t_logit_std") or 1.0)
        _opt_step(self.opt, loss)
        if self.ema:
            self.ema.update(self.net)
        lr = self.opt.param_groups[0]["lr"]
        if self.sch:
            self.sch.step()
        return {"loss": loss.detach(), "lr": lr}

    @torch.no_grad()
    def sample(self, cond, generator, sample_cfg=None, keep_steps: list[int] | None = None, return_steps=False):
        """Guided samples of labels ``cond [B]``; with ``return_steps`` also ``{t: x_t}`` of ``keep_steps``.

        Without ``sample_cfg`` (the training curve's snapshots) it samples by DDIM with ``cfg["curve_ddim_steps"]``
        steps (default 50, at most ``T``) and guidance ``cfg["curve_guide_w"]`` (default 2)."""
        from genda.cond.diffusion import EpsFromV, sample_ddim, sample_ddpm

        s = sample_cfg or {"sampler": "ddim", "ddim_steps": min(self.cfg.get("curve_ddim_steps") or 50, self.cfg["T"]),
                           "ddim_eta": 0.0, "guide_w": self.cfg.get("curve_guide_w", 2.0)}
        shape = (self.meta["channels"], self.meta["img_size"], self.meta["img_size"])
        with sampling_mode(self.sampling_net(), s.get("bn_mode", "eval")) as net:
            net = EpsFromV(net, self.sched) if self.cfg["prediction"] == "v" else net
            labels = cond.to(self.device)
            if s["sampler"] == "ddim":
                x, inter = sample_ddim(net, self.sched, labels, steps=s["ddim_steps"], eta=s["ddim_eta"],
                                       guide_w=s["guide_w"], generator=generator, img_shape=shape,
                                       keep_steps=keep_steps, clip_x0=True)
            else:
                x, inter = sample_ddpm(net, self.sched, labels, guide_w=s["guide_w"], generator=generator,
                                       img_shape=shape, keep_steps=keep_steps)
        x = x.clamp(-1, 1)
        return (x, inter) if return_steps else x

    def visited_steps(self, sample_cfg: dict) -> list[int]:
        """Steps ``t`` the configured sampler passes through, from ``T`` down to 0."""
        from genda.cond.diffusion import ddim_timesteps

        if sample_cfg["sampler"] == "ddim":
            return ddim_timesteps(self.sched.T, sample_cfg["ddim_steps"]) + [0]
        return list(range(self.sched.T, -1, -1))


# --------------------------------------------------------------------------- tag cDCGAN (seed 001)
class TagCDCGANMethod(CondMethod):
    """Tag-conditioned DCGAN with a matching-aware discriminator; tags ``[B, G]`` long, groups ``meta["tag_dims"]``."""

    noise_generator = True

    def __init__(self, cfg, meta, device, generator, train=True):
        from genda.cond.models.cdcgan import TagDiscriminator, TagGenerator
        from genda.gan.models.dcgan import init_dcgan_weights

        super().__init__(cfg, meta, device, generator, train)
        self.dims = list(meta["tag_dims"])
        self.aux_w = float(cfg.get("tag_aux_weight") or 0.0)
        self.G = TagGenerator(cfg["z_dim"], self.dims, cfg["embed_dim"], cfg["ngf"], meta["channels"]).to(device)
        self.G.apply(init_dcgan_weights)
        self.D = self.opt_g = self.opt_d = self.sch_g = self.sch_d = None
        if train:
            self.D = TagDiscriminator(self.dims, cfg["embed_dim"], cfg["ndf"], meta["channels"],
                                      aux=self.aux_w > 0).to(device)
            self.D.apply(init_dcgan_weights)
            self.opt_g = make_optimizer(self.G.parameters(), "adam", cfg["lr_g"], betas=cfg["betas"])
            self.opt_d = make_optimizer(self.D.parameters(), "adam", cfg["lr_d"], betas=cfg["betas"])
            self.sch_g, self.sch_d = self._schedulers(self.opt_g, self.opt_d)
            self.ema = EMA(self.G, cfg["ema_decay"]) if cfg["ema_decay"] else None
        self.batches_per_step = cfg["d_steps"]

    def _modules(self):
        return {"G": self.G, "D": self.D}

    def _optims(self):
        return {"opt_g": self.opt_g, "opt_d": self.opt_d, "sch_g": self.sch_g, "sch_d": self.sch_d}

    def sampling_net(self):
        return self.ema.model if self.ema else self.G

    def _bn_condition(self, n, generator, cond):
        from genda.cond.models.cdcgan import one_hot_tags

        # fakes are made for the real batch's tags in training: draw tags [n, G] from the training set's
        return one_hot_tags(cond[torch.randint(len(cond), (n,), generator=generator).to(cond.device)], self.dims)

    def training_step(self, batches, step):
        from genda.cond.models.cdcgan import matching_aware_d_loss, one_hot_tags, random_wrong_tags, tag_aux_loss

        G, D = self.G, self.D
        aux_d = aux_g = None
        G.train(); D.train()
        for real, tags in batches:
            B = real.shape[0]
            right = one_hot_tags(tags, self.dims)
            wrong = one_hot_tags(random_wrong_tags(tags, self.dims, generator=self.gen), self.dims)
            other = real[torch.randperm(B, generator=self.gen).to(real.device)]
            z = sample_z(B, self.cfg["z_dim"], "normal", generator=self.gen).to(self.device)
            with self.autocast():
                with torch.no_grad():
                    fake = G(z, right)
                d_loss = matching_aware_d_loss(D, real, fake, right, wrong, other)
                if self.aux_w:
                    aux_d = tag_aux_loss(D.classify(real), tags, self.dims)
                    d_loss = d_loss + self.aux_w * aux_d
            _opt_step(self.opt_d, d_loss)
        z = sample_z(B, self.cfg["z_dim"], "normal", generator=self.gen).to(self.device)
        with self.autocast():
            if self.aux_w:
                logits, aux_logits = D(G(z, right), right, return_aux=True)
                aux_g = tag_aux_loss(aux_logits, tags, self.dims)
            else:
                logits = D(G(z, right), right)
            g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            if aux_g is not None:
                g_loss = g_loss + self.aux_w * aux_g
        _opt_step(self.opt_g, g_loss)
        if self.ema:
            self.ema.update(G)
        for s in (self.sch_g, self.sch_d):
            if s:
                s.step()
        aux = {"aux_d": aux_d.detach(), "aux_g": aux_g.detach()} if self.aux_w else {}
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), **aux,
                "d_fake": torch.sigmoid(logits.detach()).mean(),
                "lr_d": self.opt_d.param_groups[0]["lr"], "lr_g": self.opt_g.param_groups[0]["lr"]}

    @torch.no_grad()
    def sample(self, cond, generator, sample_cfg=None):
        from genda.cond.models.cdcgan import one_hot_tags

        with sampling_mode(self.sampling_net(), (sample_cfg or {}).get("bn_mode", "eval")) as net:
            z = sample_z(len(cond), self.cfg["z_dim"], "normal", generator=generator).to(self.device)
            return net(z, one_hot_tags(cond.to(self.device), self.dims))


_METHODS = {"acgan": ACGANMethod, "attr_acgan": ACGANMethod, "ddpm": DDPMMethod, "tag_cdcgan": TagCDCGANMethod}


def build_method(cfg: dict, meta: dict, device: torch.device, generator: torch.Generator | None = None,
                 train: bool = True) -> CondMethod:
    """The method named by ``cfg["method"]``; ``train=False`` builds only what sampling needs."""
    try:
        cls = _METHODS[cfg["method"]]
    except KeyError:
        raise ConfigError(f"unknown conditional method {cfg.get('method')!r}; valid: {', '.join(_METHODS)}") from None
    return cls(cfg, meta, device, generator if generator is not None else torch.Generator(), train)
