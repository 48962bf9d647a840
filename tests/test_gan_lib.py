"""Face-GAN library: DCGAN, StyleGAN2-lite, adversarial losses, gradient penalty, training tricks."""
from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from conftest import ROOT
from genda.config import face_gan_config, load_params
from genda.errors import ConfigError
from genda.gan.tricks import EMA, real_fake_targets, should_skip_d
from genda.data.augment import diff_augment, random_hflip
from genda.train.optim import make_optimizer, make_scheduler
from genda.rng import sample_z
from genda.gan.losses import GANLoss, gradient_penalty
from genda.gan.models.dcgan import DCGANDiscriminator, DCGANGenerator, init_dcgan_weights
from genda.gan.models.stylegan2_lite import LinearAttention, MinibatchStdDev, ModulatedConv2d, NoiseInjection, StyleGAN2LiteDiscriminator, StyleGAN2LiteGenerator


pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ----------------------------------------------------------------------------- DCGAN
def test_dcgan_shapes_and_range():
    torch.manual_seed(0)
    g, d = DCGANGenerator(), DCGANDiscriminator()
    g.apply(init_dcgan_weights)
    x = g(torch.randn(3, 100))
    assert x.shape == (3, 3, 64, 64)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0
    assert g(torch.randn(2, 100, 1, 1)).shape == (2, 3, 64, 64)
    logits = d(x)
    assert logits.shape == (3,)
    assert DCGANDiscriminator(ndf=16, norm="layer")(torch.randn(5, 3, 64, 64)).shape == (5,)


def test_dcgan_parameter_counts_by_hand():
    # G: 4×4 transposed convs without bias, BN(C) has 2C parameters.
    g_expected = (100 * 512 * 16 + 2 * 512 + 512 * 256 * 16 + 2 * 256 + 256 * 128 * 16 + 2 * 128
                  + 128 * 64 * 16 + 2 * 64 + 64 * 3 * 16)
    assert g_expected == 3_576_704
    assert n_params(DCGANGenerator(z_dim=100, ngf=64)) == 3_576_704
    convs = 3 * 64 * 16 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 1 * 16
    assert convs + 2 * (128 + 256 + 512) == 2_765_568
    assert n_params(DCGANDiscriminator(ndf=64, norm="batch")) == 2_765_568
    assert n_params(DCGANDiscriminator(ndf=64, norm="layer")) == 2_765_568  # GroupNorm(1, C): 2C
    assert n_params(DCGANDiscriminator(ndf=64, norm="instance")) == 2_765_568
    # no norm: the three middle convs carry a bias (C_out each) instead of the norm's 2C
    assert n_params(DCGANDiscriminator(ndf=64, norm="none")) == convs + (128 + 256 + 512) == 2_764_672
    # spectral norm keeps the same trainable parameters (the unnormalised weight)
    assert n_params(DCGANDiscriminator(ndf=64, spectral=True)) == 2_765_568


def test_dcgan_norm_options():
    for norm in ("none", "instance", "layer"):
        d = DCGANDiscriminator(ndf=8, norm=norm)
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    assert any(isinstance(m, nn.InstanceNorm2d) for m in DCGANDiscriminator(ndf=8, norm="instance").modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in DCGANDiscriminator(ndf=8).modules()) == 3
    with pytest.raises(ConfigError, match="batch"):
        DCGANDiscriminator(norm="group")


def test_dcgan_spectral_norm_really_normalises():
    torch.manual_seed(0)
    d = DCGANDiscriminator(ndf=4, norm="none", spectral=True)
    d.apply(init_dcgan_weights)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert all(parametrize.is_parametrized(c, "weight") for c in convs)
    assert not any(parametrize.is_parametrized(c, "weight") for c in DCGANDiscriminator(ndf=8).modules()
                   if isinstance(c, nn.Conv2d))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for _ in range(30):  # one power iteration per training-mode forward
            d(x)
    for c in convs:
        sigma = torch.linalg.matrix_norm(c.weight.detach().flatten(1), ord=2)
        raw = torch.linalg.matrix_norm(c.parametrizations.weight.original.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=2e-2)
        assert raw.item() != pytest.approx(1.0, abs=0.1)


def test_init_dcgan_weights_statistics_and_generator():
    g = DCGANGenerator(z_dim=100, ngf=64)
    g.apply(partial(init_dcgan_weights, generator=torch.Generator().manual_seed(0)))
    w = g.net[3].weight
    assert w.mean().abs() < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    bn = g.net[1]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert bn.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert torch.all(bn.bias == 0)
    g2 = DCGANGenerator(z_dim=100, ngf=64)
    g2.apply(partial(init_dcgan_weights, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(g.net[0].weight, g2.net[0].weight)


# ----------------------------------------------------------------------------- losses
R = torch.tensor([0.5, 2.0])
FK = torch.tensor([-2.0, 0.5])


def test_bce_loss_values():
    loss = GANLoss("bce")
    z = torch.zeros(4)
    assert loss.d_loss(z, z).item() == pytest.approx(2 * math.log(2))
    assert loss.g_loss(z).item() == pytest.approx(math.log(2))
    assert not loss.needs_gradient_penalty

    def bce(x, t):
        s = 1 / (1 + math.exp(-x))
        return -(t * math.log(s) + (1 - t) * math.log(1 - s))

    plain = bce(0.5, 1) / 2 + bce(2.0, 1) / 2 + bce(-2.0, 0) / 2 + bce(0.5, 0) / 2
    assert loss.d_loss(R, FK).item() == pytest.approx(plain, rel=1e-6)
    smooth = bce(0.5, 0.9) / 2 + bce(2.0, 0.9) / 2 + bce(-2.0, 0) / 2 + bce(0.5, 0) / 2
    assert loss.d_loss(R, FK, real_target=0.9).item() == pytest.approx(smooth, rel=1e-6)
    assert smooth > plain  # smoothing penalises confident real logits
    noisy = bce(0.5, 0.8) / 2 + bce(2.0, 1.1) / 2 + bce(-2.0, 0.1) / 2 + bce(0.5, 0.3) / 2
    got = loss.d_loss(R, FK, torch.tensor([0.8, 1.1]), torch.tensor([0.1, 0.3]))
    assert got.item() == pytest.approx(noisy, rel=1e-6)
    assert loss.g_loss(FK).item() == pytest.approx((bce(-2.0, 1) + bce(0.5, 1)) / 2, rel=1e-6)


def test_lsgan_hinge_wgan_values():
    ls = GANLoss("lsgan")
    # ½·mean((r−1)²) + ½·mean(f²) = ½·(0.25+1)/2 + ½·(4+0.25)/2
    assert ls.d_loss(R, FK).item() == pytest.approx(0.3125 + 1.0625)
    assert ls.d_loss(R, FK, real_target=0.5).item() == pytest.approx(0.5 * (0 + 2.25) / 2 + 1.0625)
    assert ls.g_loss(FK).item() == pytest.approx(0.5 * (9 + 0.25) / 2)
    hinge = GANLoss("hinge")
    # mean(relu(1 − r)) + mean(relu(1 + f)) = (0.5 + 0)/2 + (0 + 1.5)/2
    assert hinge.d_loss(R, FK).item() == pytest.approx(1.0)
    assert hinge.g_loss(FK).item() == pytest.approx(0.75)
    w = GANLoss("wgan_gp")
    assert w.needs_gradient_penalty and w.gp_weight == 10.0
    assert w.d_loss(R, FK).item() == pytest.approx(-0.75 - 1.25)
    assert w.g_loss(FK).item() == pytest.approx(0.75)
    # the targets are ignored by the losses that have none
    assert w.d_loss(R, FK, 0.9, 0.1).item() == pytest.approx(-2.0)
    assert hinge.d_loss(R, FK, 0.9, 0.1).item() == pytest.approx(1.0)


def test_unknown_loss_lists_choices():
    with pytest.raises(ConfigError, match="hinge"):
        GANLoss("wgan")


def test_gradient_penalty_linear_critic_exact():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=True))
    w = critic[1].weight
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    norm = w.detach().norm()
    assert gp.item() == pytest.approx((norm.item() - 1) ** 2, rel=1e-5)
    gp.backward()  # create_graph=True: d gp / d w = 2(‖w‖ − 1) w / ‖w‖
    torch.testing.assert_close(w.grad, 2 * (norm - 1) * w.detach() / norm)
    loss = GANLoss("wgan_gp", gp_weight=5.0)
    assert loss.penalty(critic, real, fake).item() == pytest.approx(5 * (norm.item() - 1) ** 2, rel=1e-5)
    assert GANLoss("hinge").penalty(critic, real, fake).item() == 0.0


def test_gradient_penalty_zero_for_unit_gradient_and_uses_interpolates():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[0.6, 0.8, 0.0, 0.0]]))
    gp = gradient_penalty(critic, torch.randn(3, 4), torch.randn(3, 4))
    assert gp.item() == pytest.approx(0, abs=1e-12)
    # a quadratic critic D(x) = ½‖x‖²: ∇ = x̂, so the penalty depends on where x̂ lies
    seen = []

    def quad(x):
        seen.append(x.detach().clone())
        return 0.5 * x.pow(2).sum(dim=1)

    real, fake = torch.ones(64, 2), -torch.ones(64, 2)
    gp = gradient_penalty(quad, real, fake, generator=torch.Generator().manual_seed(0))
    x_hat = seen[0]
    eps = (x_hat[:, 0] + 1) / 2
    assert torch.all((eps >= 0) & (eps <= 1)) and eps.std() > 0.1
    assert torch.allclose(x_hat[:, 0], x_hat[:, 1])  # one ε per sample
    assert gp.item() == pytest.approx(((x_hat.norm(dim=1) - 1) ** 2).mean().item(), rel=1e-5)


@pytest.mark.parametrize("name", ["bce", "wgan_gp"])
def test_toy_gan_learns_shifted_gaussian_mean(name):
    """2-D toy GAN: tiny MLPs learn N((2, −1), 0.5² I) from z ~ N(0, I₄); the EMA generator's mean
    must land within 0.3 of the target (it starts ~2.2 away).

    2-D rather than 1-D on purpose: in 1-D a GP critic has to pass through slope 0 to change sign,
    which the penalty (‖∇‖ − 1)² resists, so 1-D WGAN-GP overshoots by ~2λ or gets stuck."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor([2.0, -1.0])
    g = nn.Sequential(nn.Linear(4, 16), nn.LeakyReLU(0.2), nn.Linear(16, 2))
    d = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2),
                      nn.Linear(32, 1))
    loss = GANLoss(name, gp_weight=1.0)
    if name == "bce":
        opt_g = make_optimizer(g.parameters(), "adam", 2e-3, (0.5, 0.999))
        opt_d = make_optimizer(d.parameters(), "adam", 2e-3, (0.5, 0.999))
    else:  # two time-scale update rule: the critic learns 5× faster
        opt_g = make_optimizer(g.parameters(), "adam", 2e-3, (0.0, 0.9))
        opt_d = make_optimizer(d.parameters(), "adam", 1e-2, (0.0, 0.9))
    ema = EMA(g, decay=0.98)

    def mean_error(model):
        with torch.no_grad():
            return (model(sample_z(4000, 4, generator=gen)).mean(0) - mu).norm().item()

    assert mean_error(g) > 1.5
    for _ in range(300):
        real = mu + 0.5 * torch.randn(64, 2, generator=gen)
        fake = g(sample_z(64, 4, generator=gen))
        d_loss = loss.d_loss(d(real).flatten(), d(fake.detach()).flatten())
        d_loss = d_loss + loss.penalty(lambda x: d(x).flatten(), real, fake, generator=gen)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = loss.g_loss(d(g(sample_z(64, 4, generator=gen))).flatten())
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        ema.update(g)
    assert mean_error(ema.model) < 0.3
    assert mean_error(g) < 0.6  # the raw generator oscillates around the target


def test_ema_warm_up_follows_the_model_early_and_round_trips():
    m = nn.Linear(3, 2)
    ema = EMA(m, decay=0.999)
    init = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m)  # first update: d = min(0.999, 1/10) = 0.1
    torch.testing.assert_close(ema.model.weight, init + 0.9)
    for _ in range(799):
        ema.update(m)
    # without warm-up 0.999**800 = 45 % of the initial weights would remain; with it, almost none
    assert (ema.model.weight - m.weight).abs().max().item() < 0.02
    sd = ema.state_dict()
    other = EMA(nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(sd)
    assert other.num_updates == 800 and other.decay == 0.999
    torch.testing.assert_close(other.model.weight, ema.model.weight)


# ----------------------------------------------------------------------------- tricks
def test_sample_z_priors():
    z = sample_z(50, 16, "sphere", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.norm(dim=1), torch.full((50,), 4.0))
    u = sample_z(2000, 8, "uniform", generator=torch.Generator().manual_seed(0))
    assert u.min() >= -1 and u.max() <= 1 and u.min() < -0.99 and u.max() > 0.99
    assert u.mean().abs() < 0.05
    n = sample_z(2000, 8, generator=torch.Generator().manual_seed(0))
    assert n.shape == (2000, 8) and n.std().item() == pytest.approx(1.0, abs=0.05) and n.abs().max() > 1
    for prior in ("normal", "uniform", "sphere"):
        a = sample_z(4, 3, prior, generator=torch.Generator().manual_seed(7))
        b = sample_z(4, 3, prior, generator=torch.Generator().manual_seed(7))
        c = sample_z(4, 3, prior, generator=torch.Generator().manual_seed(8))
        assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ConfigError, match="sphere"):
        sample_z(2, 3, "gaussian")


def test_real_fake_targets():
    r, f = real_fake_targets(6)
    assert torch.equal(r, torch.ones(6)) and torch.equal(f, torch.zeros(6))
    r, f = real_fake_targets(6, smoothing=0.1)
    torch.testing.assert_close(r, torch.full((6,), 0.9))
    g = torch.Generator().manual_seed(0)
    r, f = real_fake_targets(1000, noisy_real=(0.7, 1.2), noisy_fake=(0.0, 0.3), generator=g)
    assert r.min() >= 0.7 and r.max() <= 1.2 and r.max() - r.min() > 0.45
    assert f.min() >= 0.0 and f.max() <= 0.3 and f.max() - f.min() > 0.25
    r2, f2 = real_fake_targets(1000, noisy_real=(0.7, 1.2), noisy_fake=(0.0, 0.3),
                               generator=torch.Generator().manual_seed(0))
    assert torch.equal(r, r2) and torch.equal(f, f2)
    with pytest.raises(ConfigError):
        real_fake_targets(4, smoothing=0.1, noisy_real=(0.7, 1.2))
    with pytest.raises(ConfigError):
        real_fake_targets(4, noisy_fake=(0.3, 0.0))
    with pytest.raises(ConfigError):
        real_fake_targets(4, smoothing=1.0)


def test_should_skip_d():
    assert should_skip_d(0.1, 0.3) is True
    assert should_skip_d(0.5, 0.3) is False
    assert should_skip_d(0.0, None) is False


def test_ema_standing_bn_stats_describe_the_averaged_weights():
    """After update() the EMA copy carries the trained model's BN statistics (of other weights); standing_bn_stats
    replaces them by the cumulative mean / unbiased variance of the copy's own pre-BN activations over the batches
    it runs, leaves the copy in eval mode with its momentum, draws nothing from the global RNG, and is a no-op
    (0) for a network without BatchNorm or with 0 batches."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.3))
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.mul_(-3.0).add_(1.0)
    model.train()
    model(torch.randn(16, 3) + 2)
    ema.update(model)
    assert torch.equal(ema.model[1].running_mean, model[1].running_mean)  # copied: stale for the averaged weights
    seen = []

    def run(net, g):
        x = torch.randn(32, 3, generator=g) + 2
        seen.append(net[0](x).detach())
        net(x)
    rng = torch.get_rng_state()
    assert ema.standing_bn_stats(run, 3, seed=5) == 1
    assert torch.equal(torch.get_rng_state(), rng)
    h = torch.cat(seen)  # what the copy's BN saw: 3 batches of 32
    torch.testing.assert_close(ema.model[1].running_mean, h.mean(0), rtol=0, atol=1e-5)
    torch.testing.assert_close(ema.model[1].running_var, torch.stack([b.var(0) for b in seen]).mean(0),
                               rtol=1e-5, atol=1e-5)  # momentum None: the plain average of the batches' values
    assert not torch.allclose(ema.model[1].running_mean, model[1].running_mean, atol=0.1)
    assert not ema.model.training and ema.model[1].momentum == 0.3
    first = ema.model[1].running_mean.clone()
    ema.standing_bn_stats(run, 3, seed=5)  # its own seeded generator: the same batches, the same statistics
    assert torch.equal(ema.model[1].running_mean, first)
    ema.standing_bn_stats(run, 3, seed=6)
    assert not torch.equal(ema.model[1].running_mean, first)
    assert ema.standing_bn_stats(run, 0, seed=5) == 0
    assert EMA(nn.Linear(3, 4)).standing_bn_stats(run, 3, seed=5) == 0


def test_ema_exact_update_and_buffers():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0], [-4.0, 0.5]]))
        model[0].bias.copy_(torch.tensor([8.0, -8.0]))
    ema = EMA(model, decay=0.75)
    ema.num_updates = 10 ** 6  # past the warm-up (tested separately): the plain decay applies
    assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[5.0, -2.0], [0.0, 4.5]]))
        model[0].bias.zero_()
    model.train()
    model(torch.randn(8, 2))  # changes the BN running statistics
    ema.update(model)
    assert torch.equal(ema.model[0].weight, torch.tensor([[2.0, 1.0], [-3.0, 1.5]]))  # 0.75·old + 0.25·new
    assert torch.equal(ema.model[0].bias, torch.tensor([6.0, -6.0]))
    assert torch.equal(ema.model[1].running_mean, model[1].running_mean)
    assert ema.model[1].num_batches_tracked.item() == 1
    # general decay: d·old + (1 − d)·new, and the live model is untouched
    ema2 = EMA(model, decay=0.999)
    ema2.num_updates = 10 ** 6
    old = ema2.model[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema2.update(model)
    torch.testing.assert_close(ema2.model[0].weight, 0.999 * old + 0.001 * model[0].weight, rtol=0, atol=1e-6)
    assert torch.equal(model[0].weight, old + 1.0)
    clone = EMA(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), decay=0.5)
    clone.load_state_dict(ema.state_dict())
    assert clone.decay == 0.75 and torch.equal(clone.model[0].weight, ema.model[0].weight)


def test_diff_augment_properties():
    torch.manual_seed(0)
    x = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_(True)
    y = diff_augment(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert (y - x).abs().mean() > 0.05
    y.pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    y1 = diff_augment(x.detach(), generator=torch.Generator().manual_seed(3))
    y2 = diff_augment(x.detach(), generator=torch.Generator().manual_seed(3))
    y3 = diff_augment(x.detach(), generator=torch.Generator().manual_seed(4))
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)
    assert torch.equal(diff_augment(x.detach(), ""), x.detach())
    with pytest.raises(ConfigError, match="cutout"):
        diff_augment(x, "color,rotate")


def test_diff_augment_translation_is_a_bounded_shift():
    x = torch.randn(8, 2, 16, 16) + 5  # no zeros in x
    y = diff_augment(x, "translation", generator=torch.Generator().manual_seed(0))
    s = 2  # 16 / 8
    shifts = set()
    for b in range(8):
        found = None
        for dy in range(-s, s + 1):
            for dx in range(-s, s + 1):
                padded = F.pad(x[b], (s, s, s, s))
                ref = padded[:, s + dy:s + dy + 16, s + dx:s + dx + 16]  # out[i, j] = x[i + dy, j + dx]
                if torch.equal(ref, y[b]):
                    found = (dy, dx)
        assert found is not None
        shifts.add(found)
    assert len(shifts) > 1


def test_diff_augment_cutout_and_color():
    x = torch.ones(16, 3, 16, 16)
    y = diff_augment(x, "cutout", generator=torch.Generator().manual_seed(0))
    zero = (y == 0).all(dim=1)  # [B, H, W], same mask over channels
    assert torch.equal((y == 0).any(dim=1), zero)
    frac = zero.flatten(1).float().mean(dim=1)
    assert torch.all(frac > 0) and torch.all(frac <= 0.25)  # at most an 8×8 square of 16×16
    assert torch.any(frac == 0.25)  # some squares lie fully inside
    for b in range(16):  # the erased region is an axis-aligned rectangle
        rows, cols = zero[b].any(dim=1), zero[b].any(dim=0)
        assert zero[b].sum() == rows.sum() * cols.sum()
    # color on a grey image: brightness shift δ ∈ [−½, ½]; saturation/contrast keep a flat image flat
    flat = torch.zeros(32, 3, 8, 8)
    c = diff_augment(flat, "color", generator=torch.Generator().manual_seed(0))
    per_img = c.flatten(1)
    torch.testing.assert_close(per_img.std(dim=1), torch.zeros(32), atol=1e-6, rtol=0)
    assert per_img[:, 0].abs().max() <= 0.5 and per_img[:, 0].std() > 0.1


def test_random_hflip():
    x = torch.arange(4 * 1 * 2 * 3, dtype=torch.float32).view(4, 1, 2, 3)
    assert torch.equal(random_hflip(x, p=1.0), x.flip(-1))
    assert torch.equal(random_hflip(x, p=0.0), x)
    x = torch.randn(64, 3, 4, 4)
    y = random_hflip(x, generator=torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(-1)) for i in range(64)])
    same = torch.tensor([torch.equal(y[i], x[i]) for i in range(64)])
    assert torch.all(flipped ^ same) and 16 < flipped.sum() < 48
    assert torch.equal(y, random_hflip(x, generator=torch.Generator().manual_seed(0)))


def test_make_optimizer_and_scheduler():
    p = [nn.Parameter(torch.zeros(2))]
    adam = make_optimizer(p, "adam", 2e-4, betas=(0, 0.9))
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.0, 0.9)
    sgd = make_optimizer(p, "sgd", 0.1)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    assert isinstance(make_optimizer(p, "rmsprop", 5e-5), torch.optim.RMSprop)
    with pytest.raises(ConfigError, match="rmsprop"):
        make_optimizer(p, "adamw", 1e-3)
    with pytest.raises(ConfigError):
        make_optimizer(p, "adam", 0.0)

    def lrs(name, total=8):
        opt = make_optimizer([nn.Parameter(torch.zeros(1))], "sgd", 1.0)
        sched = make_scheduler(opt, name, total)
        out = []
        for _ in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out + [opt.param_groups[0]["lr"]]

    assert make_scheduler(sgd, "none", 10) is None
    assert lrs("linear") == pytest.approx([1 - t / 8 for t in range(9)])
    assert lrs("cosine") == pytest.approx([(1 + math.cos(math.pi * t / 8)) / 2 for t in range(9)])
    assert lrs("step") == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.25])
    with pytest.raises(ConfigError, match="cosine"):
        make_scheduler(sgd, "exp", 10)
    with pytest.raises(ConfigError):
        make_scheduler(sgd, "linear", 0)


# ----------------------------------------------------------------------------- StyleGAN2-lite
SMALL = (64, 64, 32, 16, 8)


def test_stylegan2_lite_shapes_and_one_training_step():
    torch.manual_seed(0)
    g, d = StyleGAN2LiteGenerator(), StyleGAN2LiteDiscriminator()
    assert sum(isinstance(m, LinearAttention) for m in g.modules()) == 1
    z = torch.randn(4, 128)
    fake = g(z)
    assert fake.shape == (4, 3, 64, 64) and fake.abs().max() < 1
    loss = GANLoss("hinge")
    opt_g = make_optimizer(g.parameters(), "adam", 2e-3, (0.0, 0.99))
    opt_d = make_optimizer(d.parameters(), "adam", 2e-3, (0.0, 0.99))
    real = torch.rand(4, 3, 64, 64) * 2 - 1
    d_loss = loss.d_loss(d(real), d(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in d.parameters())
    opt_d.step()
    g_loss = loss.g_loss(d(g(z)))
    opt_g.zero_grad()
    g_loss.backward()
    grads = {n: p.grad for n, p in g.named_parameters()}
    assert all(v is not None and torch.isfinite(v).all() for v in grads.values())
    assert grads["attention.16.gamma"].abs() > 0 and grads["mapping.layers.0.weight"].abs().sum() > 0
    before = g.const.detach().clone()
    opt_g.step()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert not torch.equal(before, g.const)
    assert d(real).shape == (4,)


def test_stylegan2_lite_noise_and_config():
    torch.manual_seed(0)
    g = StyleGAN2LiteGenerator(z_dim=32, w_dim=32, channels=SMALL, attention_at=32).eval()
    z = torch.randn(2, 32)
    # noise strengths start at 0: noise has no effect at initialisation
    torch.testing.assert_close(g(z), g(z), rtol=0, atol=0)
    for m in g.modules():
        if isinstance(m, NoiseInjection):
            m.strength.data.fill_(0.5)
    assert not torch.allclose(g(z), g(z))
    a = g(z, noise_generator=torch.Generator().manual_seed(1))
    b = g(z, noise_generator=torch.Generator().manual_seed(1))
    c = g(z, noise_generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    with pytest.raises(ConfigError, match="attention_at"):
        StyleGAN2LiteGenerator(channels=SMALL, attention_at=12)
    assert StyleGAN2LiteGenerator(z_dim=8, w_dim=8, channels=(8, 8, 8), attention_at=None)(
        torch.randn(1, 8)).shape == (1, 3, 16, 16)


def test_modulated_conv_matches_per_sample_weight_formula():
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 5, 3, w_dim=6)
    x, w = torch.randn(2, 4, 7, 7), torch.randn(2, 6)
    out = conv(x, w)
    s = conv.affine(w)
    for b in range(2):
        wb = conv.weight * conv.scale * s[b][None, :, None, None]
        wb = wb / torch.sqrt(wb.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        torch.testing.assert_close(out[b:b + 1], F.conv2d(x[b:b + 1], wb, padding=1), rtol=1e-4, atol=1e-5)
    # demodulation: unit-variance input gives roughly unit-variance output
    big = ModulatedConv2d(64, 64, 3, w_dim=6)
    assert big(torch.randn(4, 64, 16, 16), torch.randn(4, 6)).std().item() == pytest.approx(1.0, abs=0.2)


def test_linear_attention_formula_and_minibatch_std():
    torch.manual_seed(0)
    att = LinearAttention(8, key_dim=4)
    att.gamma.data.fill_(1.0)
    x = torch.randn(2, 8, 3, 5)
    q = att.query(x).flatten(2).softmax(1)
    k = att.key(x).flatten(2).softmax(2)
    v = att.value(x).flatten(2)
    ref = torch.einsum("bdn,bcn,bdm->bcm", k, v, q).view(2, 8, 3, 5)  # Σ_d Σ_n k·v · q
    torch.testing.assert_close(att(x), x + att.proj(ref), rtol=1e-4, atol=1e-5)
    mb = MinibatchStdDev(4)
    same = torch.randn(1, 3, 4, 4).repeat(4, 1, 1, 1)
    y = mb(same)
    assert y.shape == (4, 4, 4, 4) and y[:, 3].max() < 1e-3
    x = torch.randn(6, 3, 4, 4)  # group size 3 (largest divisor of 6 that is <= 4)
    y = mb(x)
    expected = x.view(3, 2, 3, 4, 4).std(dim=0, unbiased=False).mean(dim=(1, 2, 3))
    torch.testing.assert_close(y[:, 3, 0, 0], expected.repeat(3), rtol=1e-4, atol=1e-5)
    assert StyleGAN2LiteDiscriminator(channels=SMALL)(torch.randn(3, 3, 64, 64)).shape == (3,)


# ----------------------------------------------------------------------------- every method's config
FULL_FACES = load_params(ROOT / "configs/real_faces.yaml", check_paths=False)
# size, and the numerics (compute: the machine's choice, e.g. the full config's precision auto); r1_gamma follows the
# batch size (StyleGAN2-ADA's heuristic gamma = 0.0002·res^2/batch)
SIZE_KEYS = {"steps", "batch_size", "ngf", "ndf", "checkpoint_every", "log_every", "compute", "r1_gamma"}


# the default's 600-step Methods A and B run G at lr 5e-4 (the seeds' 2e-4 learnt the portrait in 1 run of 5 at
# that length: benchmarks/results/ab_method_b_lr_g_embedded.json); the full-size runs keep the seeds' 2e-4
SHORT_RUN_KEYS = {"dcgan": {"lr_g"}, "dcgan_tricks": {"lr_g"}}
# what the real profile changed after a real-data run showed it (the GPU-size configs/real_faces.yaml is not rerun):
# LSGAN's D without BatchNorm (benchmarks/results/probe_lsgan_d_norm_celeba_cpu.json); the EMA of G of LSGAN and SNGAN and
# LSGAN's linear lr decay (2-seed sweeps: benchmarks/results/sweep_face_gans_celeba_cpu.json); WGAN-GP's lr 3e-4 for its
# 1,600 G steps (the paper's 1e-4: FID 32.0; 3e-4: 1.32; the same record)
FIXED = {"lsgan": {"d_norm", "ema_decay", "lr_schedule"}, "sngan_hinge": {"ema_decay"}, "wgan_gp": {"lr_d", "lr_g"}}


def test_the_real_profile_runs_every_face_gan_method_of_the_full_config():
    """The real profile (configs/real.yaml) and the full-size configs/real_faces.yaml list the same methods with the
    same settings, only the size keys differ; the embedded default runs Methods A and B of them (issue 34), with
    G's lr raised for its short length."""
    default = load_params(ROOT / "configs/real.yaml", check_paths=False)
    assert list(default["face_gans"]) == list(FULL_FACES["face_gans"])
    embedded = load_params(ROOT / "params.yaml", check_paths=False)
    assert list(embedded["face_gans"]) == ["dcgan", "dcgan_tricks"]
    for name in embedded["face_gans"]:
        small, real = face_gan_config(embedded, name), face_gan_config(default, name)
        assert {k for k in small if small[k] != real[k]} <= SIZE_KEYS | SHORT_RUN_KEYS[name], name
    for name in default["face_gans"]:
        small, full = face_gan_config(default, name), face_gan_config(FULL_FACES, name)
        assert {k for k in small if small[k] != full[k]} <= SIZE_KEYS | SHORT_RUN_KEYS.get(name, set()) | FIXED.get(name, set()), name
    a, b = face_gan_config(default, "dcgan"), face_gan_config(default, "dcgan_tricks")
    assert a["lr_g"] == b["lr_g"] and a["lr_d"] == b["lr_d"]  # A and B differ only by the tricks


@pytest.mark.parametrize("name", list(FULL_FACES["face_gans"]))
def test_every_face_gan_config_trains_and_samples(name, tmp_path):
    """Each face-GAN method of the full-size config (losses, tricks, StyleGAN2-lite), shrunk to 3 steps of
    batch 4 on random 64x64 faces: finite losses every step, a checkpoint, a generator that samples."""
    from genda.gan.sample import generate, load_generator
    from genda.gan.train import train_gan

    cfg = face_gan_config(FULL_FACES, name)
    cfg.update(steps=3, batch_size=4, ngf=8, ndf=8, log_every=1, checkpoint_every=2)
    x = torch.randint(0, 256, (12, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    hist = train_gan(cfg, x, seed=0, device=torch.device("cpu"), ckpt_dir=tmp_path / "ck",
                     out_model=tmp_path / "G.pt", progress=False)
    assert [r["step"] for r in hist] == [1, 2, 3]
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in hist)
    G, saved = load_generator(tmp_path / "G.pt", torch.device("cpu"))
    assert saved == cfg and (tmp_path / "ck" / "last.pt").exists()
    assert type(G).__name__ == ("StyleGAN2LiteGenerator" if cfg["arch"] == "stylegan2_lite" else "DCGANGenerator")
    imgs = generate(G, cfg, 5, seed=1, device=torch.device("cpu"))
    assert imgs.shape == (5, 3, 64, 64) and imgs.dtype == torch.uint8
    assert torch.equal(imgs, generate(G, cfg, 5, seed=1, device=torch.device("cpu")))


def test_sampling_mode_bn_statistics_and_restores_the_model():
    """bn_mode eval: running statistics; train: each batch's own statistics (the references' sampling). Either
    way dropout is off and the module's flags and BN buffers are unchanged afterwards."""
    from genda.gan.bn_mode import sampling_mode

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5))
    net.train()
    with torch.no_grad():
        net[1].running_mean.fill_(0.3); net[1].running_var.fill_(2.0)
    buffers = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(8, 3, 6, 6) * 3 + 1
    h = net[0](x).detach()
    with torch.no_grad(), sampling_mode(net, "eval"):
        y_eval = net(x)
        assert not net.training and not net[1].training and not net[2].training
    expect_eval = (h - 0.3) / (2.0 + 1e-5) ** 0.5 * net[1].weight[None, :, None, None] + net[1].bias[None, :, None, None]
    assert torch.allclose(y_eval, expect_eval, atol=1e-5)
    with torch.no_grad(), sampling_mode(net, "train"):
        y_train = net(x)
        assert net[1].training and not net[2].training  # BN on batch statistics, dropout off
    mu, var = h.mean(dim=(0, 2, 3), keepdim=True), h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    expect_train = (h - mu) / (var + 1e-5).sqrt() * net[1].weight[None, :, None, None] + net[1].bias[None, :, None, None]
    assert torch.allclose(y_train, expect_train, atol=1e-5)
    assert not torch.allclose(y_train, y_eval, atol=1e-2)
    assert net.training and net[1].training and net[2].training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in buffers.items())  # running stats restored
    with pytest.raises(ValueError, match="eval, train"):
        with sampling_mode(net, "batch"):
            pass
