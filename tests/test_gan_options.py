"""The face-GAN trainer obeys its options (issue 32 item 5): `loss`, `spectral_norm`, `diffaugment` and
`ema_decay` each change what they must inside `genda.gan.train.train_gan` (the losses, the spectral-norm
layer, DiffAugment and the EMA themselves are tested in test_gan_lib.py; a trainer that ignored the option
would pass those).  Each test trains the real profile's method config for 1-3 steps of batch 4 on random faces."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from conftest import ROOT
from genda.config import face_gan_config, load_params
from genda.gan import train as gan_train
from genda.runtime.checkpoint import load_weights

pytestmark = pytest.mark.usefixtures("one_thread")

# the real profile: it runs every face GAN (the embedded default runs Methods A and B only, issue 34)
DEFAULT = load_params(ROOT / "configs/real.yaml", check_paths=False)
FP32 = {"precision": "fp32", "channels_last": False}
X = torch.randint(0, 256, (12, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def method(name: str, **over) -> dict:
    cfg = face_gan_config(DEFAULT, name)
    cfg.update(steps=1, batch_size=4, ngf=8, ndf=8, log_every=1, checkpoint_every=100, ema_bn_batches=1,
               compute=FP32)
    cfg.update(over)
    return cfg


def train(cfg: dict, tmp_path, seed: int = 0) -> list[dict]:
    return gan_train.train_gan(cfg, X, seed=seed, device=torch.device("cpu"), ckpt_dir=tmp_path / "ck",
                               out_model=tmp_path / "G.pt", progress=False)


def capture(monkeypatch, builder: str) -> list[nn.Module]:
    """Record the modules genda.gan.train builds with `builder` (build_generator / build_discriminator)."""
    built: list[nn.Module] = []
    real = getattr(gan_train, builder)

    def spy(cfg):
        m = real(cfg)
        built.append(m)
        return m

    monkeypatch.setattr(gan_train, builder, spy)
    return built


# ----------------------------------------------------------------------------- loss
class ZeroCritic(nn.Module):
    """D(x) = 0 for every image, with a parameter for the optimiser (its gradient is 0, so Adam leaves it):
    the trainer's losses then take hand-computable values."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return (x * 0).flatten(1).sum(1) + 0 * self.w


LN2 = math.log(2)
# D and G losses at D(real) = D(fake) = 0, targets 1 / 0:
#   bce:     L_D = BCE(0, 1) + BCE(0, 0) = 2 ln 2,            L_G = BCE(0, 1) = ln 2
#   lsgan:   L_D = ½·(0 − 1)² + ½·0² = ½,                     L_G = ½·(0 − 1)² = ½
#   hinge:   L_D = relu(1 − 0) + relu(1 + 0) = 2,            L_G = −0 = 0
#   wgan_gp: L_D = −0 + 0 + 10·(‖∇D‖ − 1)² = 10·(0 − 1)² = 10 (gp_weight 10), L_G = 0
HAND = {"dcgan": ("bce", 2 * LN2, LN2), "lsgan": ("lsgan", 0.5, 0.5), "sngan_hinge": ("hinge", 2.0, 0.0),
        "wgan_gp": ("wgan_gp", 10.0, 0.0)}


@pytest.mark.parametrize("name", list(HAND))
def test_trainer_uses_the_configured_loss(name, tmp_path, monkeypatch):
    loss_name, want_d, want_g = HAND[name]
    cfg = method(name)
    assert cfg["loss"] == loss_name and cfg["label_smoothing"] == 0 and cfg["noisy_real"] is None
    monkeypatch.setattr(gan_train, "build_discriminator", lambda cfg: ZeroCritic())
    made = []
    real_loss = gan_train.GANLoss

    def spy(name, **kw):
        made.append(name)
        return real_loss(name, **kw)

    monkeypatch.setattr(gan_train, "GANLoss", spy)
    calls = []
    real_gp = gan_train.gradient_penalty
    monkeypatch.setattr(gan_train, "gradient_penalty", lambda *a, **k: calls.append(1) or real_gp(*a, **k))
    hist = train(cfg, tmp_path)
    assert made == [loss_name]
    assert hist[0]["loss_d"] == pytest.approx(want_d, rel=1e-6, abs=1e-7)
    assert hist[0]["loss_g"] == pytest.approx(want_g, rel=1e-6, abs=1e-7)
    assert hist[0]["d_real"] == hist[0]["d_fake"] == 0.0
    # the gradient penalty: once per critic step, only for wgan_gp
    assert len(calls) == (cfg["d_steps"] if loss_name == "wgan_gp" else 0)


# ----------------------------------------------------------------------------- spectral norm
def _sigmas(d: nn.Module) -> list[float]:
    return [torch.linalg.matrix_norm(c.weight.detach().flatten(1), ord=2).item()
            for c in d.modules() if isinstance(c, nn.Conv2d)]


@pytest.mark.parametrize("name, spectral", [("sngan_hinge", True), ("dcgan", False)])
def test_spectral_norm_option_normalises_the_trained_discriminator(name, spectral, tmp_path, monkeypatch):
    cfg = method(name, steps=2)
    assert cfg["spectral_norm"] is spectral
    built = capture(monkeypatch, "build_discriminator")
    train(cfg, tmp_path)
    (d,) = built
    convs = [c for c in d.modules() if isinstance(c, nn.Conv2d)]
    assert len(convs) == 5 and all(parametrize.is_parametrized(c, "weight") == spectral for c in convs)
    d.train()
    with torch.no_grad():  # a few more power iterations (one per training-mode forward) on the trained weights
        for _ in range(20):
            d(torch.randn(2, 3, 64, 64))
    sig = _sigmas(d)
    if spectral:
        assert sig == pytest.approx([1.0] * 5, abs=2e-2), sig
        raw = [torch.linalg.matrix_norm(c.parametrizations.weight.original.detach().flatten(1), ord=2).item()
               for c in convs]
        assert all(abs(s - 1) > 0.1 for s in raw), raw  # the trained raw weights are not normalised themselves
        # the checkpointed D carries the parametrisation (its unnormalised weight and power-iteration vectors)
        keys = load_weights(tmp_path / "ck" / "last.pt")["state"]["D"].keys()
        assert sum(k.endswith("parametrizations.weight.original") for k in keys) == 5
    else:
        assert all(abs(s - 1) > 0.1 for s in sig), sig


# ----------------------------------------------------------------------------- DiffAugment
def _d_inputs(cfg: dict, tmp_path, monkeypatch) -> list[torch.Tensor]:
    built = capture(monkeypatch, "build_discriminator")
    seen: list[torch.Tensor] = []
    real_build = gan_train.build_discriminator

    def with_hook(c):
        d = real_build(c)
        d.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
        return d

    monkeypatch.setattr(gan_train, "build_discriminator", with_hook)
    train(cfg, tmp_path)
    assert len(built) == 1
    return seen


def _real_batch(cfg: dict, seed: int = 0) -> torch.Tensor:
    from genda.data.store import BatchStream
    from genda.data.tensors import to_float_images

    return to_float_images(X[BatchStream(len(X), cfg["batch_size"], seed, torch.device("cpu")).indices(0)])


def test_diffaugment_alters_every_batch_the_discriminator_sees(tmp_path, monkeypatch):
    base = method("dcgan_diffaug_ema", hflip=False, ema_decay=None)
    assert base["diffaugment"] == "color,translation,cutout"
    real = _real_batch(base)
    # without DiffAugment D sees the real batch itself, then the fakes, then G's batch
    plain = _d_inputs({**base, "diffaugment": ""}, tmp_path / "plain", monkeypatch)
    assert len(plain) == 3 and torch.equal(plain[0], real)
    assert all((x == 0).sum() == 0 for x in plain[1:])  # tanh outputs: no exact zeros
    # the default's policy: the real batch is changed before D sees it (the images stay the batch's size)
    aug = _d_inputs(base, tmp_path / "aug", monkeypatch)
    assert len(aug) == 3 and aug[0].shape == real.shape
    assert (aug[0] - real).abs().mean() > 0.05
    # cutout alone: each image D sees (real, fake and G's batch) is the un-augmented one with one zeroed square
    cut = _d_inputs({**base, "diffaugment": "cutout"}, tmp_path / "cut", monkeypatch)
    assert torch.all((cut[0] == real) | (cut[0] == 0))
    for x in cut:
        zero = (x == 0).all(dim=1).flatten(1).float().mean(dim=1)  # share of erased pixels per image
        assert torch.all(zero > 0) and torch.all(zero <= 0.25), zero


# ----------------------------------------------------------------------------- EMA of G
def test_ema_option_saves_the_ema_generator_not_the_trained_one(tmp_path, monkeypatch):
    cfg = method("dcgan_tricks", steps=3)
    assert cfg["ema_decay"] == 0.999
    gens = capture(monkeypatch, "build_generator")
    snapshots: list[dict] = []  # G's parameters at each EMA update
    real_ema = gan_train.EMA

    class SpyEMA(real_ema):
        def __init__(self, model, decay):
            super().__init__(model, decay)
            snapshots.append({k: v.detach().clone() for k, v in model.named_parameters()})

        def update(self, model):
            snapshots.append({k: v.detach().clone() for k, v in model.named_parameters()})
            super().update(model)

    monkeypatch.setattr(gan_train, "EMA", SpyEMA)
    train(cfg, tmp_path)
    g = gens[0]
    saved = load_weights(tmp_path / "G.pt")["G"]
    state = load_weights(tmp_path / "ck" / "last.pt")["state"]
    assert len(snapshots) == 1 + 3 * cfg["g_steps"]
    # the EMA by hand: e <- d e + (1 - d) g with the warm-up decay d = min(0.999, (1 + n) / (10 + n))
    ema = dict(snapshots[0])
    for n, snap in enumerate(snapshots[1:]):
        d = min(0.999, (1 + n) / (10 + n))
        ema = {k: d * ema[k] + (1 - d) * snap[k] for k in ema}
    for k, v in g.named_parameters():
        torch.testing.assert_close(saved[k], ema[k], rtol=0, atol=1e-6)
        assert torch.equal(state["G"][k], v.detach())  # the checkpoint's G is the trained one ...
    diff = max((saved[k] - v.detach()).abs().max().item() for k, v in g.named_parameters())
    assert diff > 1e-5, "the saved generator is the trained G, not its EMA"
    # ... the saved generator is the checkpoint's EMA copy (BatchNorm statistics recomputed for it included)
    assert saved.keys() == state["ema"]["model"].keys()
    assert all(torch.equal(saved[k], state["ema"]["model"][k]) for k in saved)
    bn = [k for k in saved if k.endswith("running_mean")]
    assert bn and any(not torch.equal(saved[k], state["G"][k]) for k in bn)


def test_without_ema_the_saved_generator_is_the_trained_one(tmp_path, monkeypatch):
    cfg = method("dcgan", steps=2)
    assert cfg["ema_decay"] is None
    gens = capture(monkeypatch, "build_generator")
    train(cfg, tmp_path)
    saved = load_weights(tmp_path / "G.pt")["G"]
    live = gens[0].state_dict()
    assert saved.keys() == live.keys() and all(torch.equal(saved[k], live[k]) for k in saved)
    assert load_weights(tmp_path / "ck" / "last.pt")["state"]["ema"] == {}
