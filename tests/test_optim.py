"""genda.train.optim: the foreach optimisers give the same weights, bit for bit, as torch's default CPU path; so does
the multi-tensor EMA update of genda.gan.tricks.EMA."""
import copy

import pytest
import torch
from torch import nn

from genda.train import optim
from genda.errors import ConfigError
from genda.gan.tricks import EMA
from genda.train.optim import make_optimizer

CASES = [
    ("adam", dict(lr=1e-3, betas=(0.5, 0.999))),
    ("adam", dict(lr=1e-3, weight_decay=1e-4)),
    ("adamw", dict(lr=2e-3, weight_decay=5e-4)),
    ("sgd", dict(lr=0.01, momentum=0.9, weight_decay=5e-4)),
    ("rmsprop", dict(lr=1e-3)),
]


def _train(make, steps: int = 25) -> list[torch.Tensor]:
    torch.manual_seed(0)
    ps = [torch.randn(s, requires_grad=True) for s in [(16, 3, 5, 5), (16,), (300, 200), (10,)]]
    opt = make([{"params": ps[:2]}, {"params": ps[2:], "lr": 1e-4}])  # two groups, as the DA backbones use
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
        sch.step()
    return [p.detach() for p in ps]


@pytest.mark.parametrize("name,hyper", CASES)
def test_foreach_optimizer_matches_the_single_tensor_path_bit_for_bit(name, hyper):
    ref = _train(lambda groups: optim.OPTIMIZERS[name](groups, foreach=False, **hyper))
    ours = _train(lambda groups: optim.build(name, groups, **hyper))
    assert all(torch.equal(a, b) for a, b in zip(ref, ours))
    assert not torch.equal(ref[2], _train(lambda groups: optim.build(name, groups, **hyper), steps=24)[2])


def test_build_uses_foreach_and_rejects_unknown_names():
    opt = make_optimizer([nn.Parameter(torch.zeros(3))], "adam", 1e-3)
    assert opt.param_groups[0]["foreach"] is True
    with pytest.raises(ConfigError, match="adamw"):
        optim.build("adamx", [nn.Parameter(torch.zeros(3))], lr=1e-3)


def test_ema_update_equals_the_per_parameter_formula():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 4))
    ema = EMA(net, decay=0.9)
    ref = copy.deepcopy(ema.model)
    for n in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net(torch.randn(32, 8))  # moves the BatchNorm running statistics
        ema.update(net)
        d = min(0.9, (1.0 + n) / (10.0 + n))
        with torch.no_grad():
            for p_ref, p in zip(ref.parameters(), net.parameters()):
                p_ref.mul_(d).add_(p, alpha=1.0 - d)
    for (name, a), b in zip(ema.model.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), name
    assert torch.equal(ema.model[1].running_mean, net[1].running_mean)
