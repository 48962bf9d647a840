"""One unconditional face-GAN trainer for every loss, architecture and training trick.

A method is a set of params (``face_gans.<name>`` over the shared ``gan`` section), never a copied
trainer.  Per iteration::

    repeat d_steps:  D ← D − ∇ [ L_D(D(aug(x)), D(aug(G(z)))) + λ_gp·GP + [i % k = 0]·R1_k ]
                     (skipped while L_D < d_skip_threshold)
    repeat g_steps:  G ← G − ∇ L_G(D(aug(G(z))))                          (then EMA of G, if enabled)

with L from :class:`genda.gan.losses.GANLoss` (bce | lsgan | wgan_gp | hinge), real/fake targets from
label smoothing or noisy labels, z from the chosen prior, aug = optional h-flip (real only) and
DiffAugment (both). R1_k = (γ/2)·k·E‖∇_x D(aug(x))‖² (:func:`genda.gan.losses.r1_penalty`, γ = ``r1_gamma``,
off at 0) on the real batch, lazily on the D steps i = 0, k, 2k, ... (i counts D steps over the run,
k = ``r1_every``), in fp32; the logged ``loss_d`` includes it on those steps, as it includes λ_gp·GP. G(z) of
both the D and the G step is style-mixed with probability ``mixing_prob`` (:func:`genda.gan.tricks.style_mixing`;
StyleGAN2-lite only). Data stay on the device as uint8; every random draw comes from one seeded CPU generator
whose state is checkpointed, so an interrupted run resumes bit-for-bit on CPU.
"""
from __future__ import annotations

from pathlib import Path

import torch

from genda.runtime import distributed
from genda.runtime.checkpoint import save_atomic
from genda.data.store import BatchStream
from genda.gan.networks import build_discriminator, build_generator
from genda.gan.sample import run_generator
from genda.gan.tricks import EMA, EMA_BN_BATCHES, real_fake_targets, should_skip_d, style_mixing
from genda.data.augment import diff_augment, random_hflip
from genda.train.optim import make_optimizer, make_scheduler
from genda.rng import sample_z
from genda.gan.losses import GANLoss, gradient_penalty, r1_penalty
from genda.train.loop import TrainLoop, setup, share, write_history  # noqa: F401  (write_history: re-exported)
from genda.data.tensors import to_float_images








def _pair(v):
    return tuple(v) if v is not None else None


def train_gan(cfg: dict, x_train: torch.Tensor, *, seed: int, device: torch.device, ckpt_dir: Path,
              out_model: Path, tracker=None, loss_csv: Path | None = None, progress: bool = True,
              compute: dict | None = None) -> list[dict]:
    """Train G and D on uint8 images [N,3,H,W]; save G (EMA G if enabled) to `out_model`. ``compute``: the
    params section of :mod:`genda.runtime.precision` (its autocast wraps each forward pass and loss; backward passes and
    optimiser steps run outside it); None: ``cfg["compute"]`` (:func:`genda.config.face_gan_config`), else fp32.
    Resume, logging and checkpoints: :class:`genda.train.loop.TrainLoop`.

    Returns the loss history (one row per `log_every` iterations)."""
    gen, c = setup(seed, compute if compute is not None else cfg.get("compute"), device)
    G, D = c.module(build_generator(cfg).to(device)), c.module(build_discriminator(cfg).to(device))
    opt_g = make_optimizer(G.parameters(), cfg["opt_g"], cfg["lr_g"], betas=(cfg["beta1"], cfg["beta2"]))
    opt_d = make_optimizer(D.parameters(), cfg["opt_d"], cfg["lr_d"], betas=(cfg["beta1"], cfg["beta2"]))
    share((G, D), (opt_g, opt_d))
    sch_g = make_scheduler(opt_g, cfg["lr_schedule"], cfg["steps"])
    sch_d = make_scheduler(opt_d, cfg["lr_schedule"], cfg["steps"])
    loss = GANLoss(cfg["loss"], gp_weight=cfg["gp_weight"])
    ema = EMA(G, cfg["ema_decay"]) if cfg["ema_decay"] else None
    x = x_train.to(device)
    stream = BatchStream(len(x), cfg["batch_size"], seed, device)
    policy = cfg["diffaugment"]
    aug = (lambda t: diff_augment(t, policy, generator=gen)) if policy else (lambda t: t)

    def restore(st: dict) -> None:
        G.load_state_dict(st["G"]); D.load_state_dict(st["D"])
        opt_g.load_state_dict(st["opt_g"]); opt_d.load_state_dict(st["opt_d"])
        if sch_g:
            sch_g.load_state_dict(st["sch_g"]); sch_d.load_state_dict(st["sch_d"])
        if ema:
            ema.load_state_dict(st["ema"])

    def state() -> dict:
        return {"G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "sch_g": sch_g.state_dict() if sch_g else {}, "sch_d": sch_d.state_dict() if sch_d else {},
                "ema": ema.state_dict() if ema else {}}

    loop = TrainLoop("train_gan", steps=cfg["steps"], log_every=cfg["log_every"], gen=gen, device=device,
                     ckpt_dir=ckpt_dir, checkpoint_every=cfg["checkpoint_every"], state=state, restore=restore,
                     settings={"cfg": cfg, "seed": seed, "n": len(x), "shape": list(x.shape[1:]),
                               "compute": c.record()}, tracker=tracker, progress=progress)
    bs, zd = stream.batch_size, cfg["z_dim"]
    last_d = float("inf")
    # R1 and style mixing: optional keys (params files from before them: off)
    r1_gamma, r1_every = cfg.get("r1_gamma") or 0.0, cfg.get("r1_every") or 16
    mixing_prob = cfg.get("mixing_prob") or 0.0

    def fake_images(z: torch.Tensor) -> torch.Tensor:
        """G(z) of a training step: its noise and style mixing drawn from ``gen``."""
        return run_generator(G, z, gen, **style_mixing(G, bs, zd, cfg["z_prior"], mixing_prob, gen, device))

    def step_fn(step: int):
        # Autocast covers forward passes and losses only. Its weight cache (a bf16 copy of each parameter, made once
        # per autocast region) would otherwise outlive opt_d.step(): the G step would be scored by the D from
        # before D's update, in bf16 only.
        nonlocal last_d
        G.train(); D.train()
        skipped = 0
        for k in range(cfg["d_steps"]):
            real = c.images(to_float_images(x[stream.indices(step * cfg["d_steps"] + k)]))
            if cfg["hflip"]:
                real = random_hflip(real, generator=gen)
            z = sample_z(bs, zd, cfg["z_prior"], generator=gen).to(device)
            with c.autocast(), torch.no_grad():
                fake = fake_images(z)
            rt, ft = real_fake_targets(bs, smoothing=cfg["label_smoothing"], noisy_real=_pair(cfg["noisy_real"]),
                                       noisy_fake=_pair(cfg["noisy_fake"]), generator=gen)
            with c.autocast():
                d_real, d_fake = D(aug(real)), D(aug(fake))
                d_loss = loss.d_loss(d_real, d_fake, rt.to(device) if torch.is_tensor(rt) else rt,
                                     ft.to(device) if torch.is_tensor(ft) else ft)
                if loss.needs_gradient_penalty:
                    d_loss = d_loss + cfg["gp_weight"] * gradient_penalty(D, real, fake, generator=gen)
                if r1_gamma and (step * cfg["d_steps"] + k) % r1_every == 0:  # lazy R1: D steps 0, k, 2k, ...
                    d_loss = d_loss + r1_penalty(lambda t: D(aug(t)), real, r1_gamma, r1_every)
            # the D-skip decision must agree on every rank: it uses the loss averaged over them
            last_d = (distributed.mean_scalar(d_loss.detach()) if cfg["d_skip_threshold"] is not None
                      else float(d_loss.detach()))
            if should_skip_d(last_d, cfg["d_skip_threshold"]):
                skipped += 1
                continue
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        for _ in range(cfg["g_steps"]):
            z = sample_z(bs, zd, cfg["z_prior"], generator=gen).to(device)
            with c.autocast():
                g_loss = loss.g_loss(D(aug(fake_images(z))))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            if ema:
                ema.update(G)
        if sch_g:
            sch_g.step(); sch_d.step()
        return g_loss, d_real, d_fake, skipped

    def row_fn(out) -> dict:
        g_loss, d_real, d_fake, skipped = out
        return {"loss_d": last_d, "loss_g": float(g_loss.detach()), "d_real": float(d_real.detach().mean()),
                "d_fake": float(d_fake.detach().mean()), "d_skipped": skipped,
                "lr_d": opt_d.param_groups[0]["lr"], "lr_g": opt_g.param_groups[0]["lr"]}

    history = loop.run(step_fn, row_fn)
    if ema:  # the EMA copy's BatchNorm statistics from its own activations (gan_tricks.EMA.standing_bn_stats)
        with c.autocast():
            ema.standing_bn_stats(lambda net, g: run_generator(net, sample_z(bs, zd, cfg["z_prior"], generator=g)
                                                               .to(device), g),
                                  cfg.get("ema_bn_batches", EMA_BN_BATCHES), seed)
    final = ema.model if ema else G
    save_atomic({"G": final.state_dict(), "cfg": cfg, "steps": cfg["steps"], "seed": seed}, out_model)
    loop.finish(loss_csv)
    return history




