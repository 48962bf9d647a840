"""Conditional generation library: ACGAN, tag cDCGAN, ContextUnet, DDPM scheduler and samplers."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from genda.cond.diffusion import DDPMScheduler, EpsFromV, ddim_timesteps, sample_ddim, sample_ddpm
from genda.errors import ConfigError, DataError
from genda.cond.models.acgan import ACGANDiscriminator, ACGANGenerator, acgan_aux_loss, attribute_pairs
from genda.cond.models.cdcgan import TagDiscriminator, TagEncoder, TagGenerator, matching_aware_d_loss, one_hot_tags, random_wrong_tags, synthetic_tag_table, tag_aux_loss, tag_grid
from genda.cond.models.context_unet import ContextUnet
from genda.cond.models.film_unet import FiLMUnet, timestep_features


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny tensors: intra-op threads only add overhead, and oversubscribe a shared 2-core machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- ACGAN
@pytest.mark.parametrize("img_size, n_classes", [(28, 10), (64, 2)])
def test_acgan_shapes(img_size, n_classes):
    G = ACGANGenerator(z_dim=16, n_classes=n_classes, img_size=img_size, ngf=8)
    D = ACGANDiscriminator(n_classes=n_classes, img_size=img_size, ndf=8)
    z = torch.randn(4, 16)
    y = torch.arange(4) % n_classes
    x = G(z, y)
    assert x.shape == (4, 3, img_size, img_size)
    assert x.abs().max() <= 1.0
    adv, cls = D(x)
    assert adv.shape == (4,) and cls.shape == (4, n_classes)
    # the generator starts from base x 7 x 7 for 28 and base x 4 x 4 for 64, base = min(512, 8 ngf)
    assert G.base == 64 and G.fc.out_features == 64 * (7 if img_size == 28 else 4) ** 2
    assert ACGANGenerator(n_classes=n_classes, img_size=img_size, ngf=64).base == 512  # the full-size width
    assert ACGANGenerator(n_classes=n_classes, img_size=img_size, ngf=8, base=256).fc.out_features == \
        256 * (7 if img_size == 28 else 4) ** 2


def test_acgan_label_is_multiplied_with_noise():
    G = ACGANGenerator(z_dim=16, n_classes=10, img_size=28, ngf=8).eval()
    z = torch.randn(2, 16)
    a = G(z, torch.tensor([0, 0]))
    b = G(z, torch.tensor([1, 1]))
    assert (a - b).abs().max() > 1e-4  # the label changes the output for the same z
    # multiplicative conditioning: with z = 0 the embedding is wiped out, whatever the label
    z0 = torch.zeros(2, 16)
    torch.testing.assert_close(G(z0, torch.tensor([0, 0])), G(z0, torch.tensor([7, 3])))


def test_acgan_discriminator_norms():
    def has(D, kind):
        return any(isinstance(m, kind) for m in D.modules())

    assert has(ACGANDiscriminator(norm="batch", ndf=8), nn.BatchNorm2d)
    d_none = ACGANDiscriminator(norm="none", ndf=8)
    assert not has(d_none, nn.BatchNorm2d) and not has(d_none, nn.GroupNorm)
    d_layer = ACGANDiscriminator(norm="layer", ndf=8)
    assert not has(d_layer, nn.BatchNorm2d) and has(d_layer, nn.GroupNorm)
    with pytest.raises(ConfigError, match="norm"):
        ACGANDiscriminator(norm="instance")


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_acgan_discriminator_is_per_sample_for_wgan_gp(norm):
    D = ACGANDiscriminator(norm=norm, ndf=8, dropout=0.0)
    x = torch.randn(3, 3, 28, 28, requires_grad=True)
    adv, _ = D(x)
    (g,) = torch.autograd.grad(adv[0], x)
    assert g[0].abs().sum() > 0
    assert g[1:].abs().max() == 0  # no cross-sample dependence: gradient penalty is well defined


def test_acgan_aux_loss_hand_values():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    l0 = -(2.0 - math.log(math.exp(2.0) + 2.0))
    l1 = -(0.0 - math.log(2.0 + math.e))
    assert acgan_aux_loss(logits, labels).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_acgan_aux_loss_trains_discriminator_head():
    # toy problem: class = sign of the image mean; the auxiliary loss must drop
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (32,), generator=gen)
    x = torch.randn(32, 3, 28, 28, generator=gen) * 0.3 + (y.float() * 2 - 1).view(-1, 1, 1, 1) * 0.5
    D = ACGANDiscriminator(n_classes=2, ndf=8, dropout=0.0)
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = acgan_aux_loss(D(x)[1], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_attribute_pairs_same_noise_and_mode_restored():
    G = ACGANGenerator(z_dim=16, n_classes=2, img_size=64, ngf=8)
    G.train()
    z = torch.randn(3, 16)
    off, on = attribute_pairs(G, z)
    assert G.training
    assert off.shape == on.shape == (3, 3, 64, 64)
    G.eval()
    torch.testing.assert_close(off, G(z, torch.zeros(3, dtype=torch.long)))
    torch.testing.assert_close(on, G(z, torch.ones(3, dtype=torch.long)))
    same_a, same_b = attribute_pairs(G, z, attr_off=1, attr_on=1)
    torch.testing.assert_close(same_a, same_b)
    assert (off - on).abs().max() > 1e-4


# --------------------------------------------------------------------------- cDCGAN
def test_one_hot_tags():
    tags = torch.tensor([[0, 2], [3, 0]])
    oh = one_hot_tags(tags, [4, 3])
    expected = torch.tensor([[1, 0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 1, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(oh, expected)
    with pytest.raises(DataError, match="group 1"):
        one_hot_tags(torch.tensor([[0, 3]]), [4, 3])
    with pytest.raises(ValueError):
        one_hot_tags(torch.tensor([[0, 1, 2]]), [4, 3])


def test_random_wrong_tags_always_differ():
    tag_dims = [12, 10, 1]
    tags = synthetic_tag_table(500, tag_dims, seed=3)
    wrong = random_wrong_tags(tags, tag_dims, generator=torch.Generator().manual_seed(0))
    assert wrong.shape == tags.shape and wrong.dtype == torch.long
    assert bool((wrong != tags).any(dim=1).all())
    for g, d in enumerate(tag_dims):
        assert int(wrong[:, g].min()) >= 0 and int(wrong[:, g].max()) < d
    # reproducible with the same seed, different with another
    again = random_wrong_tags(tags, tag_dims, generator=torch.Generator().manual_seed(0))
    other = random_wrong_tags(tags, tag_dims, generator=torch.Generator().manual_seed(1))
    assert torch.equal(wrong, again) and not torch.equal(wrong, other)
    with pytest.raises(ConfigError):
        random_wrong_tags(torch.zeros(2, 1, dtype=torch.long), [1])


def test_synthetic_tag_table_covers_values():
    t = synthetic_tag_table(40, [12, 10], seed=0)
    assert t.shape == (40, 2) and t.dtype == torch.long
    assert set(t[:, 0].tolist()) == set(range(12)) and set(t[:, 1].tolist()) == set(range(10))
    assert torch.equal(t, synthetic_tag_table(40, [12, 10], seed=0))


def test_tag_networks_shapes():
    tag_dims = [12, 10]
    G = TagGenerator(z_dim=16, tag_dims=tag_dims, embed_dim=32, ngf=8)
    D = TagDiscriminator(tag_dims=tag_dims, embed_dim=32, ndf=8)
    tags = one_hot_tags(synthetic_tag_table(4, tag_dims), tag_dims)
    assert TagEncoder(tag_dims, 32)(tags).shape == (4, 32)
    x = G(torch.randn(4, 16), tags)
    assert x.shape == (4, 3, 64, 64) and x.abs().max() <= 1.0
    logits = D(x, tags)
    assert logits.shape == (4,)
    # the discriminator score depends on the tag
    D.eval()
    wrong = one_hot_tags(random_wrong_tags(synthetic_tag_table(4, tag_dims), tag_dims), tag_dims)
    assert (D(x, tags) - D(x, wrong)).abs().max() > 1e-6


class _StubD(nn.Module):
    """Logit = first pixel + 10 * first tag entry: fixed, known values per (image, tag) pair."""

    def forward(self, images, tags):
        return images.flatten(1)[:, 0] + 10.0 * tags[:, 0]


def test_matching_aware_loss_hand_computation():
    B = 3
    real = torch.full((B, 3, 64, 64), 0.5)
    fake = torch.full((B, 3, 64, 64), -0.5)
    wrong_img = torch.full((B, 3, 64, 64), 0.2)
    right = torch.zeros(B, 4)
    right[:, 0] = 0.1
    wrong = torch.zeros(B, 4)
    wrong[:, 0] = -0.1

    def sp(x):  # softplus: bce(logit, 1) = softplus(-logit), bce(logit, 0) = softplus(logit)
        return math.log1p(math.exp(x))

    expected = sp(-(0.5 + 1.0)) + (sp(-0.5 + 1.0) + sp(0.5 - 1.0) + sp(0.2 + 1.0)) / 3
    got = matching_aware_d_loss(_StubD(), real, fake, right, wrong, wrong_img)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_matching_aware_loss_detaches_fake():
    D = _StubD()
    fake = torch.full((2, 3, 64, 64), -0.5, requires_grad=True)
    right, wrong = torch.zeros(2, 4), torch.ones(2, 4)
    real = torch.zeros(2, 3, 64, 64, requires_grad=True)
    matching_aware_d_loss(D, real, fake, right, wrong, real.detach()).backward()
    assert fake.grad is None and real.grad is not None


def test_tag_aux_loss_hand_values_and_head():
    """Mean over groups of each group's CE; the head sees only the image (the tags fed in do not move it)."""
    logits = torch.tensor([[2.0, 0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 3.0]])  # groups of 3 and 2
    tags = torch.tensor([[0, 1], [2, 1]])
    ce_a = (-(2.0 - math.log(math.exp(2.0) + 2.0)) - (0.0 - math.log(2.0 + math.e))) / 2
    ce_b = (-(0.0 - math.log(math.e + 1.0)) - (3.0 - math.log(1.0 + math.exp(3.0)))) / 2
    assert tag_aux_loss(logits, tags, [3, 2]).item() == pytest.approx((ce_a + ce_b) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="expected logits"):
        tag_aux_loss(logits, tags, [2, 2])
    dims = [3, 2]
    D = TagDiscriminator(dims, embed_dim=8, ndf=4, aux=True).eval()
    x, t = torch.randn(2, 3, 64, 64), one_hot_tags(tags, dims)
    logit, aux = D(x, t, return_aux=True)
    assert aux.shape == (2, 5) and torch.equal(logit, D(x, t)) and torch.equal(aux, D.classify(x))
    assert torch.equal(aux, D(x, one_hot_tags(torch.tensor([[1, 0], [0, 0]]), dims), return_aux=True)[1])
    with pytest.raises(ConfigError, match="without the auxiliary tag head"):
        TagDiscriminator(dims, embed_dim=8, ndf=4).classify(x)


def test_tag_cdcgan_aux_weight_trains_the_tag_head():
    """tag_aux_weight > 0: the D step's loss is the matching loss + λ CE on the real tags, the G step's + λ CE on
    the fakes' tags; both are reported and the head learns tags that are visible in the image."""
    from genda.cond.methods import build_method

    dims = [2, 3]
    cfg = {"z_dim": 8, "embed_dim": 8, "ngf": 4, "ndf": 4, "lr_g": 2e-4, "lr_d": 2e-3, "betas": [0.5, 0.999],
           "ema_decay": None, "d_steps": 1, "lr_schedule": "none", "steps": 40, "tag_aux_weight": 1.0}
    meta = {"tag_dims": dims, "channels": 3, "img_size": 64}
    gen = torch.Generator().manual_seed(0)
    tags = torch.stack([torch.randint(2, (16,), generator=gen), torch.randint(3, (16,), generator=gen)], 1)
    # group 0 = the sign of the image (visible), group 1 = noise: the head can only learn group 0
    x = (torch.randn(16, 3, 64, 64, generator=gen) * 0.2 + (tags[:, :1].float() * 2 - 1).view(-1, 1, 1, 1) * 0.5)
    cfg["method"] = "tag_cdcgan"
    m = build_method(cfg, meta, torch.device("cpu"), gen)
    assert m.D.aux_head is not None
    first = m.training_step([(x, tags)], 0)
    assert set(first) >= {"aux_d", "aux_g"} and float(first["aux_d"]) > 0
    for step in range(1, 25):
        m.training_step([(x, tags)], step)
    with torch.no_grad():
        pred0 = m.D.classify(x)[:, :2].argmax(1)
    assert (pred0 == tags[:, 0]).float().mean() >= 0.9
    plain = build_method({**cfg, "tag_aux_weight": 0.0}, meta, torch.device("cpu"), gen)
    assert plain.D.aux_head is None and "aux_d" not in plain.training_step([(x, tags)], 0)


def test_tag_grid_covers_all_combinations():
    tag_dims = [3, 2]
    G = TagGenerator(z_dim=8, tag_dims=tag_dims, embed_dim=16, ngf=4)
    imgs, tags = tag_grid(G, 8, tag_dims, n_per_combo=2, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (12, 3, 64, 64) and tags.shape == (12, 2)
    combos = {tuple(r) for r in tags.tolist()}
    assert combos == set(itertools.product(range(3), range(2)))
    assert torch.equal(tags[0], tags[1]) and not torch.equal(tags[1], tags[2])  # n_per_combo consecutive
    assert (imgs[0] - imgs[1]).abs().max() > 0  # each copy has its own noise
    imgs2, _ = tag_grid(G, 8, tag_dims, n_per_combo=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(imgs, imgs2)
    _, capped = tag_grid(G, 8, tag_dims, generator=torch.Generator().manual_seed(0), max_combos=4)
    assert capped.shape == (4, 2) and len({tuple(r) for r in capped.tolist()}) == 4


# --------------------------------------------------------------------------- scheduler
def test_scheduler_closed_form():
    s = DDPMScheduler(T=400, beta_start=1e-4, beta_end=0.02)
    beta = np.linspace(1e-4, 0.02, 400)
    abar = np.cumprod(1.0 - beta)
    np.testing.assert_allclose(s.betas[1:].numpy(), beta, rtol=1e-6)
    np.testing.assert_allclose(s.alpha_bars[1:].numpy(), abar, rtol=1e-5)
    assert s.alpha_bars[0].item() == 1.0
    np.testing.assert_allclose(s.sqrt_1m_ab[1:].numpy(), np.sqrt(1 - abar), rtol=1e-5)
    np.testing.assert_allclose(s.mab_over_sqrtmab[1:].numpy(), beta / np.sqrt(1 - abar), rtol=1e-5)


def test_add_noise_std():
    s = DDPMScheduler(T=400)
    n = 20000
    for t in (1, 50, 400):
        noise = torch.randn(n, 1, 2, 2, generator=torch.Generator().manual_seed(t))
        x = s.add_noise(torch.zeros(n, 1, 2, 2), noise, torch.full((n,), t))
        expected = math.sqrt(1 - s.alpha_bars[t].item())
        assert x.std().item() == pytest.approx(expected, rel=0.02)
    # x0 term: with zero noise, x_t = sqrt(abar_t) * x0
    x0 = torch.ones(2, 1, 2, 2)
    out = s.add_noise(x0, torch.zeros_like(x0), torch.tensor([1, 400]))
    torch.testing.assert_close(out[1], x0[1] * s.sqrt_ab[400])
    with pytest.raises(ValueError):
        s.add_noise(x0, x0, torch.tensor([1, 401]))


class _Oracle(nn.Module):
    """Exact eps for a known x0: eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t); records its inputs."""

    def __init__(self, sched, x0):
        super().__init__()
        self.s, self.x0, self.calls = sched, x0, []

    def forward(self, x_t, t_norm, c, mask):
        self.calls.append((t_norm.clone(), c.clone(), mask.clone()))
        t = torch.round(t_norm * self.s.T).long()
        ab = self.s.alpha_bars[t].view(-1, *([1] * (x_t.dim() - 1)))
        x0 = self.x0 if self.x0.dim() == x_t.dim() else self.x0.expand_as(x_t)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()


def test_training_loss_oracle_is_zero_and_mask_rate():
    s = DDPMScheduler(T=400)
    x0 = torch.rand(2000, 3, 4, 4) * 2 - 1
    labels = torch.randint(0, 10, (2000,))
    oracle = _Oracle(s, x0)
    loss = s.training_loss(oracle, x0, labels, p_uncond=0.25, generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-8
    t_norm, c, mask = oracle.calls[0]
    t = torch.round(t_norm * 400)
    assert t.min() >= 1 and t.max() <= 400 and t.unique().numel() > 300
    assert torch.equal(c, labels)
    assert mask.mean().item() == pytest.approx(0.25, abs=0.03)
    # a wrong model gets the noise variance as loss (about 1)
    zero = lambda x, t, c, m: torch.zeros_like(x)  # noqa: E731
    assert s.training_loss(zero, x0, labels, generator=torch.Generator().manual_seed(0)).item() == \
        pytest.approx(1.0, abs=0.02)
    with pytest.raises(ConfigError):
        s.training_loss(zero, x0, labels, p_uncond=1.5)


def test_sample_steps_uniform_keeps_the_old_stream_and_logit_normal_favours_the_middle():
    s = DDPMScheduler(T=400)
    # uniform: exactly the draws training_loss made before t_sampling existed
    assert torch.equal(s.sample_steps(500, torch.Generator().manual_seed(3)),
                       torch.randint(1, 401, (500,), generator=torch.Generator().manual_seed(3)))
    t = s.sample_steps(20000, torch.Generator().manual_seed(0), "logit_normal")
    assert t.dtype == torch.long and t.min() >= 1 and t.max() <= 400
    middle = ((t > 100) & (t <= 300)).float().mean().item()
    assert middle == pytest.approx(0.728, abs=0.015)   # P(|u| < ln 3) for u ~ N(0, 1); uniform: 0.5
    assert t.float().mean().item() == pytest.approx(200.5, abs=3.0)
    noisier = s.sample_steps(20000, torch.Generator().manual_seed(0), "logit_normal", logit_mean=1.0)
    assert noisier.float().mean().item() > t.float().mean().item() + 50
    assert torch.equal(t, s.sample_steps(20000, torch.Generator().manual_seed(0), "logit_normal"))
    with pytest.raises(ConfigError, match="t_sampling"):
        s.sample_steps(4, None, "cosine")
    with pytest.raises(ConfigError, match="t_logit_std"):
        s.sample_steps(4, None, "logit_normal", logit_std=0.0)


def test_training_loss_draws_its_steps_from_t_sampling():
    s = DDPMScheduler(T=400)
    x0 = torch.rand(3000, 3, 4, 4) * 2 - 1
    labels = torch.randint(0, 10, (3000,))
    oracle = _Oracle(s, x0)
    loss = s.training_loss(oracle, x0, labels, generator=torch.Generator().manual_seed(5), t_sampling="logit_normal")
    assert loss.item() < 1e-8
    t = torch.round(oracle.calls[0][0] * 400).long()
    assert torch.equal(t, s.sample_steps(3000, torch.Generator().manual_seed(5), "logit_normal"))
    uniform = _Oracle(s, x0)
    s.training_loss(uniform, x0, labels, generator=torch.Generator().manual_seed(5))
    tu = torch.round(uniform.calls[0][0] * 400).long()
    assert ((t > 100) & (t <= 300)).float().mean() > ((tu > 100) & (tu <= 300)).float().mean() + 0.15


class _VOracle(_Oracle):
    """Exact v for a known x0: v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0."""

    def forward(self, x_t, t_norm, c, mask):
        eps = super().forward(x_t, t_norm, c, mask)
        t = torch.round(t_norm * self.s.T).long()
        ab = self.s.alpha_bars[t].view(-1, *([1] * (x_t.dim() - 1)))
        x0 = self.x0 if self.x0.dim() == x_t.dim() else self.x0.expand_as(x_t)
        return ab.sqrt() * eps - (1 - ab).sqrt() * x0


def test_v_prediction_roundtrip_loss_and_sampling():
    s = DDPMScheduler(T=400)
    x0, eps = torch.rand(6, 3, 4, 4) * 2 - 1, torch.randn(6, 3, 4, 4)
    t = torch.tensor([1, 50, 100, 200, 300, 400])
    x_t = s.add_noise(x0, eps, t)
    v = s.velocity(x0, eps, t)
    torch.testing.assert_close(s.eps_from_v(x_t, v, t), eps, atol=1e-5, rtol=1e-5)
    # hand value at t = 400: v = sqrt(abar) eps - sqrt(1 - abar) x0
    ab = s.alpha_bars[400]
    torch.testing.assert_close(v[-1], ab.sqrt() * eps[-1] - (1 - ab).sqrt() * x0[-1])
    # the v oracle has zero v-loss, and the eps oracle does not (the targets differ)
    big = torch.rand(500, 3, 4, 4) * 2 - 1
    labels = torch.randint(0, 10, (500,))
    kw = dict(generator=torch.Generator().manual_seed(0), prediction="v")
    assert s.training_loss(_VOracle(s, big), big, labels, **kw).item() < 1e-8
    assert s.training_loss(_Oracle(s, big), big, labels, **dict(kw, generator=torch.Generator().manual_seed(0))) \
        .item() > 0.1
    with pytest.raises(ConfigError, match="prediction"):
        s.training_loss(_VOracle(s, big), big, labels, prediction="x0")
    # wrapped by EpsFromV, a v network drives the eps samplers to the point mass
    c = _point_mass()
    x, _ = sample_ddim(EpsFromV(_VOracle(s, c), s), s, torch.zeros(3, dtype=torch.long), steps=10,
                       generator=torch.Generator().manual_seed(0), img_shape=c.shape[1:])
    assert (x - c).abs().max().item() < 1e-3


def test_min_snr_weights_and_weighted_loss():
    """Min-SNR-gamma (Hang et al. 2023): w = min(SNR, g) / SNR for eps, min(SNR, g) / (SNR + 1) for v."""
    s = DDPMScheduler(T=400)
    t = torch.tensor([1, 20, 100, 400])
    ab = s.alpha_bars[t]
    snr = ab / (1 - ab)
    torch.testing.assert_close(s.snr(t), snr)
    assert snr[0] > 5 > snr[-1]  # the schedule spans gamma = 5: both branches of the clamp are exercised
    torch.testing.assert_close(s.loss_weights(t, "eps", "min_snr", 5.0), snr.clamp(max=5.0) / snr)
    torch.testing.assert_close(s.loss_weights(t, "v", "min_snr", 5.0), snr.clamp(max=5.0) / (snr + 1))
    assert s.loss_weights(t, "v", "min_snr", 5.0)[-1].item() == pytest.approx((snr[-1] / (snr[-1] + 1)).item())
    torch.testing.assert_close(s.loss_weights(t, "v", "none"), torch.ones(4))
    with pytest.raises(ConfigError, match="weighting"):
        s.loss_weights(t, "v", "p2")
    # with an oracle the weighted loss is still 0; against a zero network it is the weighted mean of per-sample MSEs
    big = torch.rand(300, 3, 4, 4) * 2 - 1
    labels = torch.randint(0, 10, (300,))
    kw = dict(prediction="v", weighting="min_snr", snr_gamma=5.0)
    assert s.training_loss(_VOracle(s, big), big, labels, generator=torch.Generator().manual_seed(0), **kw) < 1e-8
    zero = lambda x, t, c, m: torch.zeros_like(x)  # noqa: E731
    got = s.training_loss(zero, big, labels, generator=torch.Generator().manual_seed(1), **kw)
    g = torch.Generator().manual_seed(1)  # redraw the same t and noise
    tt = torch.randint(1, 401, (300,), generator=g)
    noise = torch.randn(big.shape, generator=g)
    per = s.velocity(big, noise, tt).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(got, (s.loss_weights(tt, "v", "min_snr", 5.0) * per).mean())
    plain = s.training_loss(zero, big, labels, generator=torch.Generator().manual_seed(1), prediction="v")
    assert got.item() < plain.item()  # every weight <= 1 for v, most < 1


def test_training_loss_reproducible_with_generator():
    s = DDPMScheduler(T=50)
    net = ContextUnet(in_channels=1, n_feat=8, n_classes=3, img_size=8)
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    y = torch.tensor([0, 1, 2, 0])
    a = s.training_loss(net, x0, y, generator=torch.Generator().manual_seed(5))
    b = s.training_loss(net, x0, y, generator=torch.Generator().manual_seed(5))
    c = s.training_loss(net, x0, y, generator=torch.Generator().manual_seed(6))
    assert a.item() == b.item() and a.item() != c.item()


# --------------------------------------------------------------------------- samplers
def _point_mass(shape=(3, 4, 4)):
    return torch.linspace(-0.9, 0.9, int(np.prod(shape))).view(1, *shape)


def test_ddim_oracle_recovers_point_mass():
    s = DDPMScheduler(T=400)
    c = _point_mass()
    oracle = _Oracle(s, c)
    labels = torch.zeros(5, dtype=torch.long)
    keep = [400, 200, 0]
    gen = torch.Generator().manual_seed(0)
    x, inter = sample_ddim(oracle, s, labels, steps=20, eta=0.0, guide_w=2.0, generator=gen,
                           img_shape=c.shape[1:], keep_steps=keep)
    assert (x - c).abs().max().item() < 1e-3
    assert sorted(inter) == sorted(keep)
    # DDIM with eta=0 keeps eps fixed, so x_t = sqrt(abar_t) c + sqrt(1 - abar_t) e along the path
    xT = torch.randn((5, *c.shape[1:]), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(inter[400], xT)
    e = (xT - s.sqrt_ab[400] * c) / s.sqrt_1m_ab[400]
    torch.testing.assert_close(inter[200], s.sqrt_ab[200] * c + s.sqrt_1m_ab[200] * e, atol=1e-4, rtol=1e-4)
    # 20 steps + 1 call per step, each batching conditional and unconditional halves
    assert len(oracle.calls) == 20
    t_norm, lab, mask = oracle.calls[0]
    assert t_norm.shape == (10,) and torch.allclose(t_norm, torch.ones(10))
    assert torch.equal(mask, torch.tensor([0.0] * 5 + [1.0] * 5))


def test_ddim_with_eta_one_still_recovers_point_mass():
    s = DDPMScheduler(T=400)
    c = _point_mass()
    x, _ = sample_ddim(_Oracle(s, c), s, torch.zeros(3, dtype=torch.long), steps=10, eta=1.0,
                       generator=torch.Generator().manual_seed(1), img_shape=c.shape[1:])
    assert (x - c).abs().max().item() < 1e-3


def test_ddpm_oracle_recovers_point_mass_and_intermediates():
    s = DDPMScheduler(T=400)
    c = _point_mass()
    labels = torch.tensor([1, 2, 3])
    keep = [400, 300, 10, 0]
    x, inter = sample_ddpm(_Oracle(s, c), s, labels, guide_w=0.5, generator=torch.Generator().manual_seed(0),
                           img_shape=c.shape[1:], keep_steps=keep)
    assert x.shape == (3, 3, 4, 4)
    assert (x - c).abs().max().item() < 1e-3
    assert sorted(inter) == sorted(keep)
    torch.testing.assert_close(inter[0], x)
    # the path approaches the data point as t -> 0
    dist = {t: (inter[t] - c).abs().mean().item() for t in keep}
    assert dist[400] > dist[300] > dist[10] > dist[0]
    with pytest.raises(ConfigError, match="keep_steps"):
        sample_ddpm(_Oracle(s, c), s, labels, img_shape=c.shape[1:], keep_steps=[401])


def test_ddim_timesteps_and_keep_validation():
    assert ddim_timesteps(400, 4) == [400, 300, 200, 100]
    assert ddim_timesteps(10, 10) == list(range(10, 0, -1))
    assert ddim_timesteps(400, 1) == [400]
    s = DDPMScheduler(T=400)
    with pytest.raises(ConfigError, match="keep_steps"):
        sample_ddim(_Oracle(s, _point_mass()), s, torch.zeros(1, dtype=torch.long), steps=4,
                    img_shape=(3, 4, 4), keep_steps=[250])
    with pytest.raises(ConfigError):
        ddim_timesteps(400, 0)


def test_guidance_formula_single_ddim_step():
    # constant eps: conditional a, unconditional b -> guided (1 + w) a - w b; one DDIM step to t = 0
    s = DDPMScheduler(T=100)
    a, b, w = 0.3, -0.2, 2.0
    model = lambda x, t, c, m: torch.where(m.view(-1, 1, 1, 1) > 0, b, a) * torch.ones_like(x)  # noqa: E731
    x, _ = sample_ddim(model, s, torch.zeros(4, dtype=torch.long), steps=1, guide_w=w,
                       generator=torch.Generator().manual_seed(3), img_shape=(1, 2, 2))
    xT = torch.randn(4, 1, 2, 2, generator=torch.Generator().manual_seed(3))
    eps = (1 + w) * a - w * b
    expected = (xT - s.sqrt_1m_ab[100] * eps) / s.sqrt_ab[100]
    torch.testing.assert_close(x, expected)


def test_samplers_reproducible_with_contextunet():
    s = DDPMScheduler(T=20)
    net = ContextUnet(in_channels=3, n_feat=8, n_classes=10, img_size=28).eval()
    labels = torch.tensor([0, 5])
    for fn, kw in ((sample_ddpm, {}), (sample_ddim, {"steps": 5, "eta": 0.5})):
        x1, _ = fn(net, s, labels, generator=torch.Generator().manual_seed(0), **kw)
        x2, _ = fn(net, s, labels, generator=torch.Generator().manual_seed(0), **kw)
        x3, _ = fn(net, s, labels, generator=torch.Generator().manual_seed(1), **kw)
        assert x1.shape == (2, 3, 28, 28)
        assert torch.equal(x1, x2) and not torch.equal(x1, x3)


# --------------------------------------------------------------------------- ContextUnet, FiLMUnet
def _unzeroed(net: nn.Module) -> nn.Module:
    """FiLMUnet starts at eps = 0 (zero-initialised last convolutions); give those weights small values."""
    with torch.no_grad():
        for p in net.parameters():
            if not p.abs().sum():
                p.normal_(0.0, 0.05)
    return net


def test_film_unet_starts_at_zero_and_folds_pixels():
    net = FiLMUnet(in_channels=3, n_feat=16, n_classes=10, img_size=28).eval()
    x = torch.randn(2, 3, 28, 28)
    out = net(x, torch.tensor([0.2, 0.9]), torch.tensor([1, 2]), None)
    assert out.shape == x.shape and out.abs().max().item() == 0.0  # every block starts as the identity
    # every convolution runs at 14x14 or 7x7: none sees the 28x28 grid
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1]))
             for m in net.modules() if isinstance(m, nn.Conv2d)]
    net(x, torch.tensor([0.2, 0.9]), torch.tensor([1, 2]))
    for h in hooks:
        h.remove()
    assert seen and set(seen) <= {14, 7}
    f = timestep_features(torch.tensor([0.0, 0.5]), 8)
    torch.testing.assert_close(f[0], torch.tensor([1.0] * 4 + [0.0] * 4))  # cos(0) = 1, sin(0) = 0
    with pytest.raises(ConfigError):
        FiLMUnet(n_feat=12)
    with pytest.raises(ConfigError):
        FiLMUnet(img_size=30)


@pytest.mark.parametrize("cls", [ContextUnet, FiLMUnet])
def test_context_unet_shape_and_context_mask(cls):
    net = _unzeroed(cls(in_channels=3, n_feat=16, n_classes=10, img_size=28)).eval()
    x = torch.randn(4, 3, 28, 28)
    t = torch.full((4,), 0.5)
    c1, c2 = torch.tensor([0, 1, 2, 3]), torch.tensor([9, 8, 7, 6])
    out = net(x, t, c1, torch.zeros(4))
    assert out.shape == x.shape
    assert (out - net(x, t, c2, torch.zeros(4))).abs().max() > 1e-5  # the label matters
    assert (out - net(x, torch.full((4,), 0.1), c1, torch.zeros(4))).abs().max() > 1e-5  # so does t
    ones = torch.ones(4)
    torch.testing.assert_close(net(x, t, c1, ones), net(x, t, c2, ones))  # mask=1: label ignored
    # a per-sample mask only drops the label of its own sample
    mixed = torch.tensor([1.0, 0.0, 1.0, 0.0])
    o1, o2 = net(x, t, c1, mixed), net(x, t, c2, mixed)
    torch.testing.assert_close(o1[0], o2[0])
    assert (o1[1] - o2[1]).abs().max() > 1e-5
    with pytest.raises(ConfigError):
        cls(n_feat=12)


@pytest.mark.parametrize("cls", [ContextUnet, FiLMUnet])
def test_context_unet_loss_decreases_on_toy_data(cls):
    torch.manual_seed(0)
    s = DDPMScheduler(T=50)
    net = cls(in_channels=1, n_feat=8, n_classes=2, img_size=8)
    y = torch.tensor([0, 1] * 8)
    x0 = torch.where(y.view(-1, 1, 1, 1) == 0, -0.8, 0.8) * torch.ones(16, 1, 8, 8)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        loss = s.training_loss(net, x0, y, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])


# --------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    dev = torch.device("cuda")
    s = DDPMScheduler(T=100)  # stays on the CPU; the samplers move a copy
    c = _point_mass()
    labels = torch.tensor([0, 1, 2])
    kw = dict(steps=10, guide_w=1.0, img_shape=c.shape[1:], keep_steps=[100, 0])
    x_cpu, i_cpu = sample_ddim(_Oracle(s, c), s, labels, generator=torch.Generator().manual_seed(0), **kw)
    s_dev = DDPMScheduler(T=100, device=dev)
    x_gpu, i_gpu = sample_ddim(_Oracle(s_dev, c.to(dev)), s, labels.to(dev),
                               generator=torch.Generator().manual_seed(0), **kw)
    assert x_gpu.device.type == "cuda" and s.device.type == "cpu"
    torch.testing.assert_close(i_gpu[100], i_cpu[100])  # same starting noise from the same seed
    torch.testing.assert_close(x_gpu.cpu(), x_cpu, atol=1e-4, rtol=1e-4)
    x_ddpm, _ = sample_ddpm(_Oracle(s_dev, c.to(dev)), s_dev, labels.to(dev),
                            generator=torch.Generator().manual_seed(0), img_shape=c.shape[1:])
    assert (x_ddpm.cpu() - c).abs().max().item() < 1e-3

    net = ContextUnet(in_channels=3, n_feat=16, n_classes=10).eval()
    x = torch.randn(2, 3, 28, 28)
    args = (torch.tensor([0.3, 0.7]), torch.tensor([1, 4]), torch.tensor([0.0, 1.0]))
    ref = net(x, *args)
    out = net.to(dev)(x.to(dev), *[a.to(dev) for a in args])
    torch.testing.assert_close(out.cpu(), ref, atol=1e-2, rtol=1e-2)
    loss = s_dev.training_loss(net, x.to(dev), args[1].to(dev), generator=torch.Generator().manual_seed(0))
    assert loss.device.type == "cuda" and torch.isfinite(loss)

    G = ACGANGenerator(z_dim=16, n_classes=2, img_size=64, ngf=8).to(dev)
    off, on = attribute_pairs(G, torch.randn(2, 16, device=dev))
    assert off.device.type == "cuda" and off.shape == (2, 3, 64, 64)
    adv, cls = ACGANDiscriminator(n_classes=2, img_size=64, ndf=8).to(dev)(off)
    assert adv.shape == (2,) and cls.shape == (2, 2)

    tag_dims = [3, 2]
    tags = synthetic_tag_table(8, tag_dims).to(dev)
    wrong = random_wrong_tags(tags, tag_dims, generator=torch.Generator().manual_seed(0))
    assert wrong.device.type == "cuda" and bool((wrong != tags).any(dim=1).all())
    TG = TagGenerator(z_dim=8, tag_dims=tag_dims, embed_dim=16, ngf=4).to(dev)
    imgs, grid_tags = tag_grid(TG, 8, tag_dims, generator=torch.Generator().manual_seed(0), device=dev)
    assert imgs.device.type == "cuda" and imgs.shape == (6, 3, 64, 64)
    TD = TagDiscriminator(tag_dims=tag_dims, embed_dim=16, ndf=4).to(dev)
    oh = one_hot_tags(grid_tags, tag_dims)
    loss = matching_aware_d_loss(TD, imgs, imgs, oh, oh.flip(0), imgs.flip(0))
    assert loss.device.type == "cuda" and torch.isfinite(loss)
