"""StyleGAN2's recipe for stylegan2_lite (issue 34): the R1 penalty with lazy regularisation
(genda.gan.losses.r1_penalty, applied by genda.gan.train on D steps 0, k, 2k, ...), style mixing regularisation
(genda.gan.tricks.style_mixing and the generator's crossover), and the recipe's values in params.yaml. The
trainings run 2-5 steps of batch 4 at tiny widths (seconds)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import ROOT
from genda.config import face_gan_config, load_params, validate
from genda.errors import ConfigError
from genda.gan import train as gan_train
from genda.gan.losses import r1_penalty
from genda.gan.models.stylegan2_lite import (
    ModulatedConv2d, StyleGAN2LiteDiscriminator, StyleGAN2LiteGenerator)
from genda.gan.tricks import style_mixing

pytestmark = pytest.mark.usefixtures("one_thread")

# the real profile runs every face GAN (the embedded default runs Methods A and B only, issue 34)
REAL = load_params(ROOT / "configs/real.yaml", check_paths=False)
FP32 = {"precision": "fp32", "channels_last": False}
BF16 = {"precision": "bf16", "channels_last": False}
X = torch.randint(0, 256, (12, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
TINY = (16, 16, 8, 8, 8)  # widths at 4, 8, 16, 32, 64: a 64x64 StyleGAN2-lite in milliseconds


def tiny_g(z_dim: int = 100) -> StyleGAN2LiteGenerator:
    return StyleGAN2LiteGenerator(z_dim=z_dim, w_dim=32, channels=TINY, attention_at=16)


def method(name: str, **over) -> dict:
    cfg = face_gan_config(REAL, name)
    cfg.update(steps=2, batch_size=4, ngf=8, ndf=8, log_every=1, checkpoint_every=100, ema_bn_batches=1,
               compute=FP32)
    cfg.update(over)
    return cfg


def train(cfg: dict, tmp_path, seed: int = 0) -> list[dict]:
    return gan_train.train_gan(cfg, X, seed=seed, device=torch.device("cpu"), ckpt_dir=tmp_path / "ck",
                               out_model=tmp_path / "G.pt", progress=False)


def tiny_stylegan(monkeypatch) -> None:
    """The trainer builds StyleGAN2-lite G and D at the TINY widths (the recipe's code paths, smaller convs)."""
    monkeypatch.setattr(gan_train, "build_generator", lambda cfg: tiny_g(cfg["z_dim"]))
    monkeypatch.setattr(gan_train, "build_discriminator", lambda cfg: StyleGAN2LiteDiscriminator(channels=TINY))


# ----------------------------------------------------------------------------- R1: the formula
A = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # ‖a‖² = 30


def test_r1_penalty_of_a_linear_critic_is_gamma_half_norm_a_squared_times_every():
    """D(x) = Σ a·x: ∇_x D = a for every sample, so R1 = γ/2 · ‖a‖² · k = 0.1/2 · 30 · 16 = 24, whatever x is;
    its gradient w.r.t. a is γ·k·a = 1.6·a (the penalty trains the critic)."""
    a = nn.Parameter(A.clone())
    critic = lambda x: (x * a).sum(dim=1)  # noqa: E731
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    pen = r1_penalty(critic, x, gamma=0.1, every=16)
    assert pen.dtype == torch.float32 and pen.item() == pytest.approx(24.0, rel=1e-6)
    assert r1_penalty(critic, x, gamma=0.1).item() == pytest.approx(1.5, rel=1e-6)  # every = 1: 0.05 · 30
    pen.backward()
    torch.testing.assert_close(a.grad, 1.6 * A, rtol=1e-6, atol=0)
    assert not x.requires_grad  # the caller's batch is left alone


def test_r1_penalty_is_the_batch_mean_of_per_sample_squared_norms():
    """D(x) = ½ Σ x²: ∇_x D = x, so R1 = γ/2 · k · mean_b ‖x_b‖² = 2/2 · 1 · (5 + 25)/2 = 15 for x = [[1, 2], [3, 4]];
    on images [B, C, H, W] the norm runs over C·H·W."""
    critic = lambda x: 0.5 * x.pow(2).flatten(1).sum(1)  # noqa: E731
    assert r1_penalty(critic, torch.tensor([[1.0, 2.0], [3.0, 4.0]]), gamma=2.0).item() == pytest.approx(15.0)
    img = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2).repeat(2, 3, 1, 1)  # ‖x_b‖² = 3 · 30 = 90
    assert r1_penalty(critic, img, gamma=1.0, every=4).item() == pytest.approx(0.5 * 4 * 90)


def test_r1_penalty_runs_in_fp32_inside_bf16_autocast():
    """A linear layer with weights that bf16 cannot hold: under the trainers' bf16 autocast the penalty still equals
    the fp32 hand value γ/2·‖a‖²·k, while the same critic's input gradient in bf16 is visibly off."""
    a = torch.tensor([[1.001, 2.003, 3.007, 4.011]])
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(a)
    critic = lambda x: lin(x).flatten()  # noqa: E731
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    want = 0.5 * 0.2 * 16 * float(a.pow(2).sum())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pen = r1_penalty(critic, x, gamma=0.2, every=16)
        xb = x.clone().requires_grad_(True)
        (g_bf16,) = torch.autograd.grad(lin(xb).float().sum(), xb)
    assert pen.dtype == torch.float32 and pen.item() == pytest.approx(want, rel=1e-6)
    bf16_pen = 0.5 * 0.2 * 16 * float(g_bf16.pow(2).sum(1).mean())
    assert abs(bf16_pen - want) / want > 1e-4  # what autocast alone would have given


# ----------------------------------------------------------------------------- R1: the lazy schedule
class LinearCritic(nn.Module):
    """D(x) = Σ a·x with a fixed (a buffer, a[c, h, w] = 0.01·(c + 1)) and a parameter of zero gradient for the
    optimiser: D never changes, ∇_x D = a, so each R1 term is γ/2·k·‖a‖² exactly."""

    def __init__(self):
        super().__init__()
        self.register_buffer("a", 0.01 * torch.arange(1.0, 4.0).view(3, 1, 1).expand(3, 64, 64).clone())
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return (x * self.a).flatten(1).sum(1) + 0 * self.w


A_SQ = float((0.01 * torch.arange(1.0, 4.0)).pow(2).sum() * 64 * 64)  # ‖a‖² = 1e-4 · 14 · 4096


@pytest.mark.parametrize("steps, d_steps, every, want", [(5, 1, 2, [0, 2, 4]), (3, 2, 4, [0, 4]),
                                                         (4, 2, 3, [0, 3, 6]), (3, 1, 16, [0])])
def test_r1_is_applied_exactly_on_d_steps_0_k_2k(steps, d_steps, every, want, tmp_path, monkeypatch):
    cfg = method("dcgan", steps=steps, d_steps=d_steps, r1_gamma=0.5, r1_every=every)
    monkeypatch.setattr(gan_train, "build_discriminator", lambda cfg: LinearCritic())
    d_calls, at = [], []
    real_loss = gan_train.GANLoss

    class Counting(real_loss):
        def d_loss(self, *a, **k):
            d_calls.append(1)
            return super().d_loss(*a, **k)

    monkeypatch.setattr(gan_train, "GANLoss", Counting)
    real_r1 = gan_train.r1_penalty

    def spy(critic, real, gamma, every):
        at.append(len(d_calls) - 1)  # the D step (0-based, over the run) whose loss gets the term
        assert (gamma, every) == (0.5, cfg["r1_every"])
        return real_r1(critic, real, gamma, every)

    monkeypatch.setattr(gan_train, "r1_penalty", spy)
    train(cfg, tmp_path)
    assert len(d_calls) == steps * d_steps and at == want


def test_r1_adds_gamma_half_k_norm_a_squared_to_the_logged_d_loss(tmp_path, monkeypatch):
    """Same seed with and without R1 (k = 2), a fixed linear critic: every logged D loss is the same except on the
    R1 steps 0, 2, 4, where it is larger by γ/2·k·‖a‖² = 0.5/2 · 2 · 5.7344 = 2.8672."""
    monkeypatch.setattr(gan_train, "build_discriminator", lambda cfg: LinearCritic())
    off = train(method("dcgan", steps=5, r1_gamma=0.0, r1_every=2), tmp_path / "off")
    on = train(method("dcgan", steps=5, r1_gamma=0.5, r1_every=2), tmp_path / "on")
    term = 0.5 / 2 * 2 * A_SQ
    assert term == pytest.approx(2.8672)
    diff = [b["loss_d"] - a["loss_d"] for a, b in zip(off, on)]
    assert diff == pytest.approx([term, 0, term, 0, term], rel=1e-5, abs=1e-5)
    assert [a["loss_g"] for a in off] == [b["loss_g"] for b in on]  # D (fixed) and G trained alike


def test_r1_off_by_default_and_for_the_other_face_gans(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(gan_train, "r1_penalty", lambda *a, **k: calls.append(1))
    for name in REAL["face_gans"]:
        if name != "stylegan2_lite":
            cfg = face_gan_config(REAL, name)
            assert cfg["r1_gamma"] == 0 and cfg["mixing_prob"] == 0, name
    train(method("dcgan"), tmp_path)
    assert calls == []


# ----------------------------------------------------------------------------- style mixing: the generator
def _old_forward(g: StyleGAN2LiteGenerator, z: torch.Tensor) -> torch.Tensor:
    """StyleGAN2LiteGenerator.forward as it was before style mixing (one w for every layer), kept as the reference."""
    w = g.mapping(z)
    x = g.const.expand(z.shape[0], -1, -1, -1)
    x = g.layers[0](x, w, None)
    rgb = g.to_rgb[0](x, w)
    for i in range(1, len(g.to_rgb)):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = g.layers[2 * i - 1](x, w, None)
        x = g.layers[2 * i](x, w, None)
        key = str(x.shape[-1])
        if key in g.attention:
            x = g.attention[key](x)
        rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
        rgb = rgb + g.to_rgb[i](x, w)
    return torch.tanh(rgb)


@pytest.fixture
def g_and_z():
    torch.manual_seed(0)
    g = tiny_g(16).eval()
    gen = torch.Generator().manual_seed(3)
    return g, torch.randn(2, 16, generator=gen), torch.randn(2, 16, generator=gen)


def test_single_w_forward_is_unchanged(g_and_z):
    g, z, _ = g_and_z
    assert g.num_ws == 10  # 9 StyledLayers + the last ToRGB, as the official 64x64 StyleGAN2
    with torch.no_grad():
        assert torch.equal(g(z), _old_forward(g, z))
        assert torch.equal(g(z), g.synthesis([g.mapping(z)] * g.num_ws))


def test_crossover_picks_w1_before_and_w2_from_the_crossover_layer(g_and_z):
    g, z1, z2 = g_and_z
    with torch.no_grad():
        single1, single2 = g(z1), g(z2)
        assert torch.equal(g(z1, mix_z=z2, crossover=0), single2)  # crossover at layer 0: w2 everywhere
        assert torch.equal(g(z1, mix_z=z2, crossover=g.num_ws), single1)
        for c in range(1, g.num_ws):
            mixed = g(z1, mix_z=z2, crossover=c)
            assert (mixed - single1).abs().max() > 1e-4 and (mixed - single2).abs().max() > 1e-4, c
    with pytest.raises(ValueError, match="crossover"):
        g(z1, mix_z=z2, crossover=g.num_ws + 1)


@pytest.mark.parametrize("c", [1, 4, 9])
def test_each_layer_reads_its_official_style_index(g_and_z, c):
    """StyledLayer j reads ws[j], ToRGB i reads ws[2i+1]: with crossover c, exactly the inputs of index < c see w1."""
    g, z1, z2 = g_and_z
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.affine.register_forward_hook(lambda mod, args, out, n=name: seen.__setitem__(n, args[0]))
             for name, m in g.named_modules() if isinstance(m, ModulatedConv2d)]
    with torch.no_grad():
        w1, w2 = g.mapping(z1), g.mapping(z2)
        g(z1, mix_z=z2, crossover=c)
    for h in hooks:
        h.remove()
    index = {f"layers.{j}.conv": j for j in range(len(g.layers))}
    index |= {f"to_rgb.{i}.conv": 2 * i + 1 for i in range(len(g.to_rgb))}
    assert set(seen) == set(index)
    for name, j in index.items():
        assert torch.equal(seen[name], w1 if j < c else w2), (name, j)


# ----------------------------------------------------------------------------- style mixing: the draws
def test_style_mixing_draws():
    g = SimpleNamespace(num_ws=10)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert style_mixing(g, 4, 8, "normal", 0.0, gen) == {}
    assert torch.equal(gen.get_state(), state)  # prob 0 draws nothing: the trainer's stream is today's
    outs = [style_mixing(g, 4, 8, "normal", 1.0, gen) for _ in range(200)]
    assert all(o["mix_z"].shape == (4, 8) for o in outs)
    assert {o["crossover"] for o in outs} == set(range(1, 10))  # U{1, ..., num_ws - 1}
    n_mixed = sum(bool(style_mixing(g, 4, 8, "normal", 0.9, gen)) for _ in range(2000))
    assert 0.87 < n_mixed / 2000 < 0.93
    a = style_mixing(g, 4, 8, "normal", 1.0, torch.Generator().manual_seed(5))
    b = style_mixing(g, 4, 8, "normal", 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(a["mix_z"], b["mix_z"]) and a["crossover"] == b["crossover"]
    with pytest.raises(ConfigError, match="style generator"):
        style_mixing(nn.Linear(2, 2), 4, 8, "normal", 0.5, gen)


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_trainer_mixes_every_training_forward_at_prob_1_and_none_at_0(prob, tmp_path, monkeypatch):
    tiny_stylegan(monkeypatch)
    calls = []
    real_build = gan_train.build_generator

    def build(cfg):
        g = real_build(cfg)
        orig = g.forward
        g.forward = lambda z, **kw: calls.append(sorted(kw)) or orig(z, **kw)
        return g

    monkeypatch.setattr(gan_train, "build_generator", build)
    train(method("stylegan2_lite", r1_gamma=0.0, mixing_prob=prob, ema_decay=None), tmp_path)
    assert len(calls) == 4  # 2 steps x (D step + G step)
    want = ["crossover", "mix_z", "noise_generator"] if prob else ["noise_generator"]
    assert all(c == want for c in calls), calls


def test_mixing_option_needs_a_style_generator():
    p = load_params(ROOT / "params.yaml", check_paths=False)
    p["face_gans"]["dcgan"] = {**(p["face_gans"]["dcgan"] or {}), "mixing_prob": 0.5}
    with pytest.raises(ConfigError, match="mixing_prob 0.5 with arch dcgan"):
        face_gan_config(p, "dcgan")


@pytest.mark.parametrize("key, value, expect", [("r1_gamma", -0.1, "gan.r1_gamma"), ("r1_every", 0, "gan.r1_every"),
                                                ("mixing_prob", 1.5, "gan.mixing_prob"),
                                                ("r1_every", 2.0, "gan.r1_every")])
def test_schema_checks_the_new_keys(key, value, expect):
    p = load_params(ROOT / "params.yaml", check_paths=False)
    p["gan"][key] = value
    with pytest.raises(ConfigError, match=expect):
        validate(p, check_paths=False)


# ----------------------------------------------------------------------------- the recipe
def test_stylegan2_lite_recipe_is_stylegan2s():
    """The real profile (configs/real.yaml) and the full-size configs/real_faces.yaml: the non-saturating logistic loss, Adam (0, 0.99) at
    2e-3, EMA of G, style mixing 0.9, lazy R1 every 16 D steps with StyleGAN2-ADA's γ = 0.0002·res²/batch."""
    full = load_params(ROOT / "configs/real_faces.yaml", check_paths=False)
    for params in (REAL, full):
        cfg = face_gan_config(params, "stylegan2_lite")
        assert cfg["arch"] == "stylegan2_lite" and cfg["loss"] == "bce" and cfg["opt_d"] == cfg["opt_g"] == "adam"
        assert (cfg["beta1"], cfg["beta2"], cfg["lr_d"], cfg["lr_g"]) == (0.0, 0.99, 2e-3, 2e-3)
        assert cfg["ema_decay"] == 0.999 and cfg["mixing_prob"] == 0.9 and cfg["r1_every"] == 16
        assert cfg["r1_gamma"] == pytest.approx(0.0002 * params["data"]["face_size"] ** 2 / cfg["batch_size"])
    assert face_gan_config(REAL, "stylegan2_lite")["r1_gamma"] == pytest.approx(0.0512)
    g = StyleGAN2LiteGenerator(z_dim=8, w_dim=8, channels=(8, 8), attention_at=None)
    assert all(layer.lr_mul == 0.01 for layer in g.mapping.layers)  # the mapping network's lr multiplier


@pytest.mark.parametrize("compute", [FP32, BF16], ids=["fp32", "bf16"])
def test_recipe_trains_two_steps_deterministically(compute, tmp_path, monkeypatch):
    """The stylegan2_lite recipe (R1 on D step 0, style mixing 0.9, EMA) at tiny width: finite losses, the same
    weights for the same seed, other weights for another seed."""
    tiny_stylegan(monkeypatch)
    calls = []
    real_r1 = gan_train.r1_penalty
    monkeypatch.setattr(gan_train, "r1_penalty", lambda *a: calls.append(1) or real_r1(*a))
    cfg = method("stylegan2_lite", compute=compute)
    assert cfg["r1_gamma"] > 0 and cfg["mixing_prob"] == 0.9 and cfg["ema_decay"]
    weights = []
    for i, seed in enumerate((0, 0, 1)):
        hist = train(cfg, tmp_path / str(i), seed=seed)
        assert len(hist) == 2 and all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in hist)
        weights.append(torch.load(tmp_path / str(i) / "G.pt", weights_only=False)["G"])
    assert len(calls) == 3  # D step 0 of each run
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
