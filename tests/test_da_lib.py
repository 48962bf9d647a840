"""Tests of the domain-adaptation library: GRL, adversarial loss, networks, methods, backbones."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genda.da.adversarial import DomainAdversarialLoss
from genda.da.grl import (
    GradientReverseFunction,
    GradientReverseLayer,
    WarmStartGradientReverseLayer,
    annealed_lr,
    grl_lambda,
)
from genda.da.methods import METHODS, DAMethod, build_method
from genda.data.augment import AugmentConfig, augment_batch, intensity_jitter, random_affine
from genda.da.methods.base import to_floats
from genda.da.methods.dsn import difference_loss, simse
from genda.da.methods.mean_teacher import class_balance_loss, confidence_mask, consistency_loss
from genda.errors import ConfigError, DataError
from genda.da.models.backbones import imagenet_weights_file, resnet_backbone
from genda.da.models.dann import DANNClassifier, DANNDomainHead, DANNFeatures, DANNNet
from genda.da.models.self_ensembling import SelfEnsemblingFeatures, SelfEnsemblingNet

N_CLASSES = 4


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """Point the torch hub cache at an empty folder so no real ImageNet weights are found."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def two_domain_batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class-dependent blobs in [-1, 1]: the class sets the blob position; the target domain is
    the source with inverted intensities and a random background colour. Returns xs, ys, xt, yt."""
    g = torch.Generator().manual_seed(seed)

    def domain(target: bool) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % N_CLASSES
        ang = y.float() * (2 * math.pi / N_CLASSES)
        cx = 14 + 7 * torch.cos(ang) + torch.randn(n, generator=g)
        cy = 14 + 7 * torch.sin(ang) + torch.randn(n, generator=g)
        yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
        blob = torch.exp(-((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2) / 18.0)
        img = blob[:, None].repeat(1, 3, 1, 1) * 2 - 1
        if target:
            img = -0.7 * img + 0.5 * (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1)
        return img + 0.05 * torch.randn(img.shape, generator=g), y

    xs, ys = domain(False)
    xt, yt = domain(True)
    return xs, ys, xt, yt


def method_kwargs(name: str) -> dict:
    """Small, seeded configurations; ResNet variants without ImageNet weights."""
    if name.startswith("resnet"):
        return {"require_pretrained": False, "input_size": 32, "bottleneck_dim": 32}
    if name == "mean_teacher":
        return {"seed": 0}
    return {}


EMBED_DIM = {
    "source_only": 800,
    "dann": 800,
    "dsn": 100,
    "mean_teacher": 800,
    "resnet_source_only": 32,  # bottleneck_dim of method_kwargs
    "resnet_dann": 32,
}


# --------------------------------------------------------------------------------------------- GRL
def test_grl_forward_is_identity_and_backward_is_minus_lambda_grad():
    torch.manual_seed(0)
    x = torch.randn(4, 7, requires_grad=True)
    g = torch.randn(4, 7)
    y = GradientReverseLayer()(x, 0.37)
    assert torch.equal(y, x)
    y.backward(g)
    assert torch.equal(x.grad, -0.37 * g)

    x2 = torch.randn(3, 2, 5, requires_grad=True)
    GradientReverseFunction.apply(x2, 2.5).sum().backward()
    assert torch.equal(x2.grad, torch.full_like(x2, -2.5))


def test_warm_start_grl_schedule_backward_and_state():
    layer = WarmStartGradientReverseLayer(alpha=10.0, lo=0.2, hi=0.8, max_iters=100)
    assert layer.coeff == pytest.approx(0.2, abs=1e-12)
    for _ in range(50):
        layer.step()
    expected_mid = 2 * 0.6 / (1 + math.exp(-5.0)) - 0.6 + 0.2
    assert layer.coeff == pytest.approx(expected_mid, abs=1e-12)
    for _ in range(50):
        layer.step()
    assert layer.coeff == pytest.approx(0.2 + 0.6 * math.tanh(5.0), abs=1e-12)
    assert abs(layer.coeff - 0.8) < 1e-3
    layer.step()  # past max_iters: clamped at p = 1
    assert layer.coeff == pytest.approx(0.2 + 0.6 * math.tanh(5.0), abs=1e-12)

    x = torch.randn(5, 3, requires_grad=True)
    layer(x).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, -layer.coeff), rtol=0, atol=1e-7)

    auto = WarmStartGradientReverseLayer(max_iters=10, auto_step=True)
    auto(torch.zeros(2))
    auto(torch.zeros(2))
    assert auto.iter_num == 2
    restored = WarmStartGradientReverseLayer(max_iters=10)
    restored.load_state_dict(auto.state_dict())
    assert restored.iter_num == 2 and restored.coeff == auto.coeff


def test_grl_lambda_and_annealed_lr_values():
    assert grl_lambda(0.0) == 0.0
    assert grl_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1, abs=1e-15)
    assert grl_lambda(0.5, gamma=4.0) == pytest.approx(2 / (1 + math.exp(-2)) - 1, abs=1e-15)
    assert grl_lambda(0.1) < grl_lambda(0.2) < grl_lambda(0.9) < 1.0
    assert grl_lambda(1.5) == grl_lambda(1.0)  # progress clipped to [0, 1]

    assert annealed_lr(0.01, 0.0) == pytest.approx(0.01)
    assert annealed_lr(0.01, 1.0) == pytest.approx(0.01 / 11**0.75)
    assert annealed_lr(0.01, 1.0) == pytest.approx(0.0016556, rel=1e-4)
    assert annealed_lr(1.0, 0.5, alpha=2.0, beta=1.0) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------- networks
def test_dann_network_shapes_and_parameter_counts():
    feats = DANNFeatures()
    assert feats(torch.randn(5, 3, 28, 28)).shape == (5, 800)
    assert feats.out_dim == 800
    conv1 = 3 * 64 * 25 + 64
    bn1 = 2 * 64
    conv2 = 64 * 50 * 25 + 50
    bn2 = 2 * 50
    assert n_params(feats) == conv1 + bn1 + conv2 + bn2 == 85142

    deep = DANNClassifier(800, 10, hidden=(100, 100))
    assert n_params(deep) == (800 * 100 + 100) + 200 + (100 * 100 + 100) + 200 + (100 * 10 + 10)
    shallow = DANNClassifier(800, 10, hidden=(100,))
    assert n_params(shallow) == (800 * 100 + 100) + 200 + (100 * 10 + 10)
    head = DANNDomainHead()
    assert n_params(head) == (800 * 100 + 100) + 200 + (100 * 2 + 2)
    deep.eval()
    head.eval()
    assert deep(torch.randn(3, 800)).shape == (3, 10)
    assert head(torch.randn(3, 800)).shape == (3, 2)


def test_self_ensembling_network_shapes_and_parameter_counts():
    feats = SelfEnsemblingFeatures()
    assert feats(torch.randn(5, 3, 28, 28)).shape == (5, 128) and feats.out_dim == 128
    assert feats(torch.randn(2, 3, 32, 32)).shape == (2, 128)  # global pooling: any size >= 8
    convs = [(3, 32), (32, 32), (32, 64), (64, 64), (64, 64), (64, 128), (128, 128), (128, 128)]
    assert len([m for m in feats.modules() if isinstance(m, nn.Conv2d)]) == len(convs)
    assert n_params(feats) == sum(i * o * 9 + o + 2 * o for i, o in convs) == 472_800
    net = SelfEnsemblingNet(10)  # French et al.'s head: dropout, 128->128, ReLU, 128->10
    assert n_params(net.classifier) == (128 * 128 + 128) + (128 * 10 + 10)
    assert n_params(SelfEnsemblingNet(10, hidden=(128, 128)).classifier) == n_params(net.classifier) + 128 * 128 + 128
    net.eval()
    assert net(torch.randn(3, 3, 28, 28)).shape == (3, 10)


def test_network_option_builds_the_named_digit_network_and_the_default_is_unchanged():
    torch.manual_seed(0)
    default = build_method("source_only", n_classes=10)
    torch.manual_seed(0)
    direct = DANNNet(10, hidden=(100, 100), dropout=0.5)  # what build_digit_net made before the option existed
    assert type(default.net) is DANNNet
    a, b = default.net.state_dict(), direct.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("source_only", "dann", "mean_teacher"):
        m = build_method(name, n_classes=10, network="gp", classifier_layers=1, **method_kwargs(name))
        m.eval()
        assert m.embed(torch.randn(2, 3, 28, 28)).shape == (2, 128)
    dann = build_method("dann", n_classes=10, network="gp")
    assert dann.domain_adv.domain_discriminator.net[0].in_features == 128  # the domain head follows the features
    with pytest.raises(ConfigError, match=r"option network must be dann or gp, got 'vgg'"):
        build_method("mean_teacher", network="vgg")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) network"):
        build_method("dsn", network="gp")  # DSN has its own encoders


# ----------------------------------------------------------------------------- adversarial loss
def test_domain_adversarial_loss_reverses_feature_gradient_only():
    torch.manual_seed(0)
    disc = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    f_s0, f_t0 = torch.randn(5, 6), torch.randn(3, 6)

    def grads(loss_fn: DomainAdversarialLoss, lambd):
        f_s, f_t = f_s0.clone().requires_grad_(), f_t0.clone().requires_grad_()
        disc.zero_grad()
        loss = loss_fn(f_s, f_t, lambd)
        loss.backward()
        return loss.detach(), f_s.grad, f_t.grad, [p.grad.clone() for p in disc.parameters()]

    l_rev, gs_rev, gt_rev, gd_rev = grads(DomainAdversarialLoss(disc), 0.5)
    l_plain, gs_plain, gt_plain, gd_plain = grads(DomainAdversarialLoss(disc, grl=nn.Identity()), None)
    assert torch.equal(l_rev, l_plain)
    assert torch.allclose(gs_rev, -0.5 * gs_plain, rtol=0, atol=1e-7)
    assert torch.allclose(gt_rev, -0.5 * gt_plain, rtol=0, atol=1e-7)
    assert gs_plain.abs().sum() > 0
    for a, b in zip(gd_rev, gd_plain):  # the discriminator itself is trained normally
        assert torch.allclose(a, b, rtol=0, atol=1e-7)

    # value: mean of per-domain cross-entropies, label 0 = source, 1 = target
    with torch.no_grad():
        expected = 0.5 * (
            F.cross_entropy(disc(f_s0), torch.zeros(5, dtype=torch.long))
            + F.cross_entropy(disc(f_t0), torch.ones(3, dtype=torch.long))
        )
    assert l_rev.item() == pytest.approx(expected.item(), rel=1e-6)

    # reduction "sum" (Ganin et al. eq. 9): twice the loss, twice the reversed gradient
    l_sum, gs_sum, gt_sum, _ = grads(DomainAdversarialLoss(disc, reduction="sum"), 0.5)
    assert l_sum.item() == pytest.approx(2 * l_rev.item(), rel=1e-6)
    assert torch.allclose(gs_sum, 2 * gs_rev, rtol=0, atol=1e-7) and torch.allclose(gt_sum, 2 * gt_rev, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="average, sum"):
        DomainAdversarialLoss(disc, reduction="mean")


def test_domain_accuracy_and_single_logit_discriminator():
    sign_disc = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        sign_disc.weight.copy_(torch.tensor([[1.0, 0.0]]))  # logit > 0 <=> "target"
    loss_fn = DomainAdversarialLoss(sign_disc)
    assert math.isnan(loss_fn.domain_accuracy)
    f_s = torch.tensor([[-1.0, 0.0], [-2.0, 1.0]])
    f_t = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.5, 2.0]])
    loss = loss_fn(f_s, f_t, 1.0)
    assert loss_fn.domain_accuracy == 1.0
    expected = 0.5 * (
        F.binary_cross_entropy_with_logits(torch.tensor([-1.0, -2.0]), torch.zeros(2))
        + F.binary_cross_entropy_with_logits(torch.tensor([1.0, 3.0, 0.5]), torch.ones(3))
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss_fn(f_t[:2], f_s, 1.0)  # domains swapped: every prediction wrong
    assert loss_fn.domain_accuracy == 0.0
    torch.manual_seed(1)
    loss_fn(torch.randn(6, 2), torch.randn(6, 2), 1.0)
    assert 0.0 <= loss_fn.domain_accuracy <= 1.0


def _train_2d(seed: int, adapt: bool, steps: int = 300) -> float:
    """Source: feature 0 = noisy class signal, feature 1 = clean class signal (spurious);
    target: feature 1 is constant. Returns target accuracy."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)

    def data(target: bool):
        y = torch.randint(0, 2, (256,), generator=g)
        sgn = y.float() * 2 - 1
        signal = sgn + 0.5 * torch.randn(256, generator=g)
        nuisance = (torch.ones(256) if target else sgn) + 0.1 * torch.randn(256, generator=g)
        return torch.stack([signal, nuisance], 1), y

    xs, ys = data(False)
    xt, yt = data(True)
    feat = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 8), nn.ReLU())
    clf = nn.Linear(8, 2)
    adv = DomainAdversarialLoss(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2)))
    opt = torch.optim.Adam([*feat.parameters(), *clf.parameters(), *adv.parameters()], lr=1e-2)
    for i in range(steps):
        fs, ft = feat(xs), feat(xt)
        loss = F.cross_entropy(clf(fs), ys)
        if adapt:
            loss = loss + adv(fs, ft, grl_lambda(i / steps))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (clf(feat(xt)).argmax(1) == yt).float().mean().item()


def test_adversarial_training_beats_source_only_on_toy_shift():
    seeds = range(4)
    plain = [_train_2d(s, adapt=False) for s in seeds]
    adapted = [_train_2d(s, adapt=True) for s in seeds]
    assert sum(adapted) / 4 > sum(plain) / 4 + 0.15, (plain, adapted)
    assert all(a >= p - 0.02 for a, p in zip(adapted, plain)), (plain, adapted)


# ------------------------------------------------------------------------------------- methods
def test_registry_lists_the_documented_methods():
    assert set(METHODS) == {"source_only", "dann", "dsn", "mean_teacher", "resnet_source_only", "resnet_dann"}
    assert all(issubclass(cls, DAMethod) and cls.name == name for name, cls in METHODS.items())
    assert not any(cls.uses_target_labels for cls in METHODS.values())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_logs_and_shapes(name, empty_hub):
    torch.manual_seed(0)
    n = 4 if name.startswith("resnet") else 8
    xs, ys, xt, _ = two_domain_batch(n, seed=1)
    method = build_method(name, n_classes=N_CLASSES, **method_kwargs(name))
    opt = torch.optim.Adam(method.trainable_parameters(), lr=2e-3)
    losses, cls_losses = [], []
    # progress 0 -> GRL coefficient 0: the total loss is then a plain minimisation objective
    for _ in range(5 if name.startswith("resnet") else 8):
        loss, logs = method.training_step(xs, ys, xt if method.needs_target else None, 0.0)
        assert set(logs) == set(method.log_keys)
        assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
        assert logs["loss"] == pytest.approx(loss.item(), rel=1e-6)
        losses.append(logs["loss"])
        cls_losses.append(logs["cls"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_optimizer_step()
    assert losses[-1] < 0.8 * losses[0], losses
    assert cls_losses[-1] < 0.8 * cls_losses[0], cls_losses

    method.eval()
    with torch.no_grad():
        assert method.classify(xt[:3]).shape == (3, N_CLASSES)
        assert method.embed(xt[:3]).shape == (3, EMBED_DIM[name])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_state_dict_round_trip(name, empty_hub):
    torch.manual_seed(0)
    a = build_method(name, n_classes=N_CLASSES, **method_kwargs(name))
    torch.manual_seed(1)
    b = build_method(name, n_classes=N_CLASSES, **method_kwargs(name))
    x = two_domain_batch(4, seed=2)[0]
    a.eval()
    b.eval()
    with torch.no_grad():
        assert not torch.allclose(a.classify(x), b.classify(x))
        b.load_state_dict(a.state_dict())
        assert torch.equal(a.classify(x), b.classify(x))


def test_build_method_errors():
    with pytest.raises(ConfigError) as err:
        build_method("nope")
    for name in METHODS:
        assert name in str(err.value)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) lr.*valid options: classifier_layers, domain_reduction, domain_weight"):
        build_method("dann", lr=0.1)
    with pytest.raises(ConfigError, match="domain_weight must be float"):
        build_method("dann", domain_weight="high")
    with pytest.raises(ConfigError, match="must be float"):
        build_method("dann", gamma=True)
    with pytest.raises(ConfigError, match="ema_decay must be in"):
        build_method("mean_teacher", ema_decay=1.5)
    with pytest.raises(ConfigError, match="n_classes"):
        build_method("source_only", n_classes=1)
    assert build_method("dann", domain_weight=2).options["domain_weight"] == 2.0  # int accepted for float
    with pytest.raises(ValueError, match="target batch"):
        build_method("dann").training_step(torch.randn(2, 3, 28, 28), torch.tensor([0, 1]), None, 0.0)


def test_dann_lambda_follows_schedule_times_weight():
    m = build_method("dann", domain_weight=0.5, gamma=5.0)
    xs, ys, xt, _ = two_domain_batch(4, seed=0)
    _, logs = m.training_step(xs, ys, xt, 0.3)
    assert logs["lambda"] == pytest.approx(0.5 * (2 / (1 + math.exp(-1.5)) - 1))
    assert 0.0 <= logs["dom_acc"] <= 1.0


def test_dann_joint_and_separate_passes_differ_only_in_batchnorm_statistics():
    """passes=joint normalises source and target with the statistics of their union; separate, each with its own
    (the reference code). Same weights: in eval mode (running statistics) both give the same features."""
    xs, ys, xt, _ = two_domain_batch(8, seed=0)
    xt = xt * 0.5 + 0.3  # a domain shift the batch statistics see
    joint = build_method("dann", passes="joint")
    sep = build_method("dann", passes="separate")
    sep.load_state_dict(joint.state_dict())
    seen = {}
    for name, m in (("joint", joint), ("separate", sep)):
        torch.manual_seed(1)
        m.train()
        feats = []
        hook = m.net.features.register_forward_hook(lambda mod, i, o: feats.append(o.detach()))
        m.training_step(xs, ys, xt, 0.5)
        hook.remove()
        seen[name] = torch.cat(feats)
    assert seen["joint"].shape == seen["separate"].shape == (16, 800)
    torch.manual_seed(1)
    alone = sep.net.features.train()(xs).detach()  # source on its own batch statistics
    assert torch.allclose(seen["separate"][:8], alone, atol=1e-5)
    assert not torch.allclose(seen["joint"][:8], alone, atol=1e-3)
    joint.eval(); sep.eval()
    fresh = build_method("dann", passes="separate"); fresh.load_state_dict(joint.state_dict()); fresh.eval()
    assert torch.allclose(joint.net.features(xs), fresh.net.features(xs))
    with pytest.raises(ConfigError, match="passes must be joint or separate"):
        build_method("dann", passes="both")
    with pytest.raises(ConfigError, match="domain_reduction must be average or sum"):
        build_method("dann", domain_reduction="mean")


def test_to_floats_keeps_order_and_converts():
    out = to_floats({"a": torch.tensor(1.5), "b": 2, "c": torch.tensor([3.0])})
    assert list(out) == ["a", "b", "c"] and out == {"a": 1.5, "b": 2.0, "c": 3.0}


# ----------------------------------------------------------------------------------------- DSN
def test_simse_is_scale_invariant_mse():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 4, 4)
    assert simse(x, x + 0.7).item() == pytest.approx(0.0, abs=1e-6)  # a global offset costs nothing
    y = torch.randn(3, 3, 4, 4)
    d = (x - y).flatten(1)
    expected = (d.pow(2).mean(1) - d.mean(1).pow(2)).mean()
    assert simse(x, y).item() == pytest.approx(expected.item(), rel=1e-5)
    assert simse(x, y) <= F.mse_loss(y, x)


def test_difference_loss_zero_for_orthogonal_codes():
    u = torch.tensor([1.0, -1.0, 1.0, -1.0])
    v = torch.tensor([1.0, 1.0, -1.0, -1.0])  # u ⟂ v, both centred
    w = torch.tensor([1.0, 2.0, 3.0])
    h_c = u[:, None] * w + 5.0  # constant offset is removed by centring
    h_p = v[:, None] * w
    assert difference_loss(h_c, h_p).item() == pytest.approx(0.0, abs=1e-7)
    # identical codes: C^T C = B w w^T / |w|^2, so the mean square is B^2 / K^2
    assert difference_loss(h_p, h_p).item() == pytest.approx(16.0 / 9.0, rel=1e-5)


# ---------------------------------------------------------------------------------- mean teacher
@pytest.mark.parametrize("warmup, decays", [(False, [0.9, 0.9, 0.9]), (True, [0.5, 2 / 3, 0.75])])
def test_mean_teacher_teacher_is_ema_of_student(warmup, decays):
    torch.manual_seed(0)
    m = build_method("mean_teacher", n_classes=N_CLASSES, ema_decay=0.9, ema_warmup=warmup, seed=0)
    assert all(not p.requires_grad for p in m.teacher.parameters())
    teacher_ids = {id(p) for p in m.teacher.parameters()}
    assert not any(id(p) in teacher_ids for g in m.param_groups(0.1) for p in g["params"])

    xs, ys, xt, _ = two_domain_batch(8, seed=3)
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
    for t, d in enumerate(decays, start=1):
        t_before = [p.detach().clone() for p in m.teacher.parameters()]
        loss, _ = m.training_step(xs, ys, xt, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert all(torch.equal(a, b) for a, b in zip(t_before, m.teacher.parameters()))  # optimiser leaves it
        s_now = [p.detach().clone() for p in m.student.parameters()]
        assert not all(torch.equal(a, b) for a, b in zip(t_before, s_now))
        m.after_optimizer_step()
        assert int(m.ema_updates) == t and float(m.ema_decay_now()) == pytest.approx(d, abs=1e-6)
        for t_old, s, t_new in zip(t_before, s_now, m.teacher.parameters()):
            assert torch.allclose(t_new, d * t_old + (1 - d) * s, rtol=0, atol=1e-6)
    # the step count is state: a resumed run continues the ramp where it stopped
    m2 = build_method("mean_teacher", n_classes=N_CLASSES, ema_decay=0.9, ema_warmup=warmup, seed=0)
    m2.load_state_dict(m.state_dict())
    assert int(m2.ema_updates) == len(decays)
    old = {k: v for k, v in m.state_dict().items() if k != "ema_updates"}  # a checkpoint from before the counter
    m2.load_state_dict(old)
    assert int(m2.ema_updates) == 0


def test_weight_ema_copies_first_then_averages_params_and_batchnorm_buffers():
    from genda.da.methods.averaging import WeightEMA

    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    ema = WeightEMA(net, 0.75)
    assert not any(p.requires_grad for p in ema.net.parameters()) and int(ema.updates) == 0
    history = []
    for step in range(3):  # weights w_t = w_0 + 4 t, running_mean m_t set by hand, the counter copied
        with torch.no_grad():
            net[0].weight.add_(4.0 * (step > 0))
            net[1].running_mean.fill_(8.0 * step)
            net[1].num_batches_tracked.fill_(10 + step)
        history.append(net[0].weight[0, 0].item())
        ema.update(net)
    # theta_1 = 1 (copied), then 0.75 * 1 + 0.25 * 5 = 2, then 0.75 * 2 + 0.25 * 9 = 3.75
    assert history == [1.0, 5.0, 9.0]
    assert ema.net[0].weight[0, 0].item() == pytest.approx(3.75, abs=1e-6)
    assert ema.net[0].weight[1, 1].item() == pytest.approx(4 + 2.75, abs=1e-6)  # 4, 4.0*0.75+8*0.25=5, 5*0.75+12*0.25
    # running mean 0, 8, 16: 0 -> 0.25 * 8 = 2 -> 0.75 * 2 + 0.25 * 16 = 5.5; the integer counter is copied
    assert ema.net[1].running_mean.tolist() == pytest.approx([5.5, 5.5])
    assert int(ema.net[1].num_batches_tracked) == 12 and int(ema.updates) == 3
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(net, 1.0)


def test_dann_eval_ema_classifies_with_the_average_and_trains_the_same_weights():
    xs, ys, xt, _ = two_domain_batch(8, seed=5)

    def run(**opts):
        torch.manual_seed(0)
        m = build_method("dann", n_classes=N_CLASSES, passes="separate", **opts)
        opt = torch.optim.SGD(m.trainable_parameters(), lr=0.05, momentum=0.9)
        for i in range(6):
            m.train()
            loss, _ = m.training_step(xs, ys, xt, i / 5)
            opt.zero_grad()
            loss.backward()
            opt.step()
            m.after_optimizer_step()
        return m, opt

    plain, _ = run()
    avg, opt = run(eval_ema=0.5)
    assert plain.ema is None and "ema.updates" not in plain.state_dict()  # off: the model file's keys unchanged
    # the average is not trained and draws nothing: the trained network is the same, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(plain.net.state_dict().values(), avg.net.state_dict().values()))
    assert {id(p) for g in opt.param_groups for p in g["params"]}.isdisjoint(id(p) for p in avg.ema.parameters())
    assert int(avg.ema.updates) == 6
    avg.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.equal(avg.classify(xt), avg.ema.net(xt))
        assert not torch.allclose(avg.classify(xt), plain.classify(xt))
        assert torch.equal(plain.classify(xt), avg.net(xt))
        assert torch.equal(avg.embed(xt), avg.ema.net.features(xt))
    again = build_method("dann", n_classes=N_CLASSES, passes="separate", eval_ema=0.5)
    again.load_state_dict(avg.state_dict())  # the average is in the model file and comes back with it
    again.eval()
    with torch.no_grad():
        assert torch.equal(again.classify(xt), avg.classify(xt))
    with pytest.raises(ConfigError, match="eval_ema"):
        build_method("dann", n_classes=N_CLASSES, eval_ema=1.0)


def test_confidence_mask_and_masked_consistency():
    probs_t = torch.tensor([[0.98, 0.02], [0.6, 0.4], [0.031, 0.969], [0.968, 0.032]])
    mask = confidence_mask(probs_t, 0.968)
    assert mask.tolist() == [1.0, 0.0, 1.0, 0.0]
    probs_s = torch.tensor([[0.5, 0.5], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7]], requires_grad=True)
    loss = consistency_loss(probs_s, probs_t, mask)
    expected = ((0.48**2 + 0.48**2) / 2 + (0.169**2 + 0.169**2) / 2) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.all(probs_s.grad[1] == 0) and torch.all(probs_s.grad[3] == 0)  # excluded samples
    assert torch.all(probs_s.grad[0] != 0) and torch.all(probs_s.grad[2] != 0)


def test_mean_teacher_threshold_controls_mask_rate():
    xs, ys, xt, _ = two_domain_batch(8, seed=4)
    torch.manual_seed(0)
    strict = build_method("mean_teacher", n_classes=N_CLASSES, conf_threshold=0.999, seed=0)
    _, logs = strict.training_step(xs, ys, xt, 0.0)
    assert logs["mask_rate"] == 0.0 and logs["cons"] == 0.0 and logs["bal"] == 0.0
    assert logs["loss"] == pytest.approx(logs["cls"], rel=1e-6)
    torch.manual_seed(0)
    lax = build_method("mean_teacher", n_classes=N_CLASSES, conf_threshold=0.0, seed=0)
    _, logs = lax.training_step(xs, ys, xt, 0.0)
    assert logs["mask_rate"] == 1.0 and logs["cons"] > 0.0 and logs["bal"] > 0.0


def test_class_balance_loss_minimal_for_uniform_predictions():
    c = 4
    uniform = torch.full((6, c), 1.0 / c)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert class_balance_loss(uniform).item() == pytest.approx(c * h, rel=1e-4)
    collapsed = F.one_hot(torch.zeros(6, dtype=torch.long), c).float() * 0.97 + 0.01
    assert class_balance_loss(collapsed) > class_balance_loss(uniform) + 1.0


def test_augmentations_are_seeded_and_batched():
    x = two_domain_batch(4, seed=5)[0]
    assert torch.allclose(random_affine(x, 0.0, 0.0), x, atol=1e-5)  # identity warp
    assert torch.equal(intensity_jitter(x, 0.0, 0.0, invert_prob=1.0), -x)
    cfg = AugmentConfig()
    a = augment_batch(x, cfg, torch.Generator().manual_seed(7))
    b = augment_batch(x, cfg, torch.Generator().manual_seed(7))
    c = augment_batch(x, cfg, torch.Generator().manual_seed(8))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, c)
    assert (a - x).abs().mean() > 0.05
    m1 = build_method("mean_teacher", seed=3)
    m2 = build_method("mean_teacher", seed=3)
    assert torch.equal(m1.augment(x), m2.augment(x))
    assert not torch.equal(m1.augment(x), m1.augment(x))  # two views differ


# -------------------------------------------------------------------------------------- ResNet
def test_resnet_backbone_missing_weights_names_where_to_put_them(empty_hub):
    expected_file = empty_hub / "checkpoints" / "resnet18-f37072fd.pth"
    assert imagenet_weights_file("resnet18") == "resnet18-f37072fd.pth"
    with pytest.raises(ConfigError) as err:
        resnet_backbone("resnet18")
    msg = str(err.value)
    assert str(expected_file) in msg and "weights_path" in msg and "require_pretrained" in msg
    with pytest.raises(ConfigError, match="does-not-exist.pth"):
        resnet_backbone("resnet18", weights_path="/nowhere/does-not-exist.pth")
    with pytest.raises(ConfigError, match="valid backbones"):
        resnet_backbone("resnet7")
    with pytest.raises(ConfigError, match=str(expected_file)):
        build_method("resnet_dann")
    b = resnet_backbone("resnet18", require_pretrained=False)
    assert not b.pretrained and b.out_dim == 512
    assert b.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_resnet_backbone_loads_local_weights(empty_hub, tmp_path):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    (empty_hub / "checkpoints").mkdir(parents=True)
    cached = empty_hub / "checkpoints" / "resnet18-f37072fd.pth"
    torch.save(reference.state_dict(), cached)  # includes fc.* keys, like torchvision's file
    b = resnet_backbone("resnet18")
    assert b.pretrained and b.weights_source == str(cached)
    assert torch.equal(b.body.conv1.weight, reference.conv1.weight)
    assert torch.equal(b.body.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)

    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="broken.pth"):
        resnet_backbone("resnet18", weights_path=str(bad))


def test_resnet_param_groups_scale_backbone_lr(empty_hub):
    m = build_method("resnet_source_only", n_classes=N_CLASSES, **method_kwargs("resnet_source_only"))
    groups = m.param_groups(0.01)
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.01])
    n_backbone = sum(p.numel() for p in groups[0]["params"])
    assert n_backbone == n_params(m.net.backbone)
    assert n_backbone + sum(p.numel() for p in groups[1]["params"]) == n_params(m)


# --------------------------------------------------------------------------------------------- AdaBN
def test_adabn_statistics_and_invariance_to_a_target_intensity_shift():
    from genda.da.adabn import adapt_bn

    torch.manual_seed(0)
    model = build_method("source_only", n_classes=N_CLASSES).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(3)
    k = torch.randint(20, 100, (600, 3, 28, 28), generator=g, dtype=torch.uint8)
    xs, xt = 2 * k, k + 60  # target = 0.5 * source + offset, exactly, in float [-1, 1] space
    cpu = torch.device("cpu")
    a_s, a_t = adapt_bn(model, xs, cpu, batch=200), adapt_bn(model, xt, cpu, batch=200)
    # the model itself is untouched; the copies are in eval mode
    assert all(torch.equal(before[k_], v) for k_, v in model.state_dict().items())
    assert not a_t.training and not any(m.training for m in a_t.modules())
    # first BatchNorm's running mean = the channel mean of the first conv's outputs over all images
    conv, bn = model.net.features.body[0], a_s.net.features.body[1]
    with torch.no_grad():
        mean = conv(xs.float() / 127.5 - 1).mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean, mean, atol=1e-4, rtol=1e-4)
    assert int(bn.num_batches_tracked) == 3
    with torch.no_grad():
        ls, lt = a_s.classify(xs.float() / 127.5 - 1), a_t.classify(xt.float() / 127.5 - 1)
        stale = a_s.classify(xt.float() / 127.5 - 1)  # target images, source statistics
    # a per-channel affine shift of the input is undone exactly by target statistics, not by source ones
    assert (ls - lt).abs().max() < 1e-2 * ls.abs().max()
    assert (ls - stale).abs().max() > 0.3 * ls.abs().max()
    with pytest.raises(ValueError, match="no images"):
        adapt_bn(model, xs[:0], cpu)


def _color_jitter_stepwise(x, strength, generator):
    """The definition of genda.data.augment.color_jitter, one operation at a time (the test oracle)."""
    n = x.shape[0]

    def u():
        return (torch.rand(n, generator=generator) * 2 * strength + 1 - strength).view(n, 1, 1, 1)

    y = (x + 1) * 0.5 * u()
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * u() + mean
    if y.shape[1] == 3:
        gray = 0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]
        y = (y - gray) * u() + gray
    return y.clamp(0, 1) * 2 - 1


@pytest.mark.parametrize("channels", [3, 1])
def test_color_jitter_matches_its_stepwise_definition(channels):
    """The fused colour-matrix jitter (one baddbmm) = brightness, contrast, saturation applied one by one."""
    from genda.data.augment import color_jitter

    x = torch.rand(32, channels, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    got = color_jitter(x, 0.3, torch.Generator().manual_seed(1))
    want = _color_jitter_stepwise(x, 0.3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, want, atol=2e-6, rtol=0)
    assert got.shape == x.shape and got.min() >= -1 and got.max() <= 1
    assert (got - x).abs().mean() > 0.05  # it does jitter
    # channels_last input gives the same values; strength 0 is the identity
    cl = color_jitter(x.contiguous(memory_format=torch.channels_last), 0.3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(cl, want, atol=2e-6, rtol=0)
    assert color_jitter(x, 0.0, torch.Generator().manual_seed(1)) is x


def test_color_jitter_factors_act_as_named():
    """Saturation leaves a grey image grey; contrast keeps the mean; brightness b (the first factor drawn) scales
    the mean of y = (x + 1) / 2 -- in a range where nothing clamps."""
    from genda.data.augment import color_jitter

    g = torch.Generator().manual_seed(3)
    grey = (torch.rand(8, 1, 6, 6, generator=g) * 0.4 - 0.2).expand(8, 3, 6, 6).contiguous()
    out = color_jitter(grey, 0.3, torch.Generator().manual_seed(4))
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 1], out[:, 2])
    b = torch.rand(8, generator=torch.Generator().manual_seed(4)) * 0.6 + 0.7
    y_mean = ((grey + 1) / 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(((out + 1) / 2).mean(dim=(1, 2, 3)), b * y_mean, atol=1e-5, rtol=0)
    assert (b - 1).abs().max() > 0.1  # the factors are not all ~1: the check has teeth


def test_mean_teacher_resumes_its_augmentation_draws(tmp_path):
    """An interrupted mean-teacher training resumed from its checkpoint ends with the same weights as an
    uninterrupted one: the augmentation generator (seeded from the global RNG on first use) is checkpointed
    (before, a resumed run re-drew its seed and diverged)."""
    import torch

    from conftest import real_params
    from genda.config import da_setting_config
    from genda.da.train import train_da
    from genda.data.embedded import embedded_digits

    def dom(name):
        xtr, ytr, xte, yte, _ = embedded_digits(name)
        return {"x_train": xtr[:256], "y_train": ytr[:256], "x_test": xte[:64], "y_test": yte[:64]}

    src, tgt = dom("mnistm"), dom("usps")
    da, options = da_setting_config(real_params(), "mean_teacher")
    da.update(steps=6, batch_size=16, checkpoint_every=3, log_every=1, eval_every=0)
    run = dict(seed=0, device=torch.device("cpu"), progress=False, compute={"precision": "fp32", "channels_last": False})

    train_da("mean_teacher", options, da, src, tgt, ckpt_dir=tmp_path / "a", out_model=tmp_path / "a.pt", **run)

    class Interrupt(Exception):
        pass

    class StopAfterStep4:  # a tracker that interrupts the run once the step-3 checkpoint is written
        def log_metrics(self, metrics, step=None):
            if step is not None and step >= 4:
                raise Interrupt

        def __getattr__(self, name):
            return lambda *a, **k: None

    with pytest.raises(Interrupt):
        train_da("mean_teacher", options, da, src, tgt, ckpt_dir=tmp_path / "b", out_model=tmp_path / "b.pt",
                 tracker=StopAfterStep4(), **run)
    assert not (tmp_path / "b.pt").exists() and any((tmp_path / "b").iterdir())
    train_da("mean_teacher", options, da, src, tgt, ckpt_dir=tmp_path / "b", out_model=tmp_path / "b.pt", **run)
    a, b = (torch.load(tmp_path / f"{n}.pt", weights_only=True)["model"] for n in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_da_keeps_a_finished_seed_of_an_interrupted_stage_run_byte_identical(tmp_path, capsys):
    """With keep_finished (the stage resumes an interrupted run of itself) a seed whose checkpoint is finished is not
    retrained: no step runs, and the model file it writes is byte-identical; without it the seed retrains."""
    from genda.da.train import train_da
    from genda.data.embedded import embedded_digits

    def dom(name):
        xtr, ytr, xte, yte, _ = embedded_digits(name)
        return {"x_train": xtr[:256], "y_train": ytr[:256], "x_test": xte[:64], "y_test": yte[:64]}

    src, tgt = dom("mnistm"), dom("usps")
    da = {"steps": 6, "batch_size": 16, "checkpoint_every": 3, "log_every": 1, "eval_every": 3, "optimizer": "adam",
          "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "lr_anneal": False, "anneal_alpha": 10.0,
          "anneal_beta": 0.75, "color_jitter": 0.0}
    run = dict(seed=0, device=torch.device("cpu"), progress=False, compute={"precision": "fp32", "channels_last": False},
               ckpt_dir=tmp_path / "ck", out_model=tmp_path / "m.pt", out_timing=tmp_path / "timing.json")
    from genda.runtime.checkpoint import StageRun

    StageRun(tmp_path / "stage").begin()  # the stage run that finishes this seed and is then interrupted
    train_da("dann", {}, da, src, tgt, **run)
    first = (tmp_path / "m.pt").read_bytes()
    seconds = json.loads((tmp_path / "timing.json").read_text())["m.pt"]["train_seconds"]
    (tmp_path / "m.pt").unlink()  # DVC removes a stage's outputs before it reruns the stage

    class CountSteps:
        steps = 0

        def log_metrics(self, metrics, step=None):
            if any(k.endswith("loss") for k in metrics):
                CountSteps.steps += 1

        def __getattr__(self, name):
            return lambda *a, **k: None

    capsys.readouterr()
    stage = StageRun(tmp_path / "stage")
    assert stage.begin() is True  # the rerun resumes the interrupted stage run
    train_da("dann", {}, da, src, tgt, tracker=CountSteps(), keep_finished=True, **run)
    assert CountSteps.steps == 0 and (tmp_path / "m.pt").read_bytes() == first
    assert "of an interrupted stage run; kept" in capsys.readouterr().out
    assert json.loads((tmp_path / "timing.json").read_text())["m.pt"]["train_seconds"] >= seconds
    stage.end()
    train_da("dann", {}, da, src, tgt, tracker=CountSteps(), **run)  # the stage's own rerun: retrains from step 0
    assert CountSteps.steps == 6 and (tmp_path / "m.pt").read_bytes() == first
