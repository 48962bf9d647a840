"""Side probe: how high is the target-only bound on USPS with a larger digit network than DANN's?

Trains ``target_only`` with genda's own trainer (:func:`genda.da.train.train_da`, the function ``stages/train_da.py``
calls) on the real profile's params (2,500 x 64, SGD 0.01 annealed, colour jitter 0.3) with
``genda.da.methods.source_only.build_digit_net`` replaced by the network under test, and prints one JSON line: the
target (USPS) test accuracy every 500 steps. A probe, not a record: the networks are not genda options.

    cd real && python ../benchmarks/ab/da_network_probe.py --arch gp --seed 0

Networks (RGB 28x28 input): ``dann`` (ours, Ganin et al.'s), ``french`` (French et al. 2018's MNIST<->USPS net: conv-BN
32 5x5, pool, 64 3x3, 64 3x3, pool, dropout, fc 256, fc C) and ``gp`` (their ``grey-32-64-128-gp``: 3 blocks of 2-3
conv-BN 3x3 layers with 32 / 64 / 128 channels, max pooling after each, global average pooling, dropout, fc 128, fc C).
Needs the real profile's prepared digits (``real/data/prepared/digits``). Results:
``benchmarks/results/probe_da_network_usps_cpu.json``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


class _Net(nn.Module):
    """``features`` [B, 3, 28, 28] -> [B, d], then dropout, fc ``hidden``, ReLU, fc C (the DANNNet interface)."""

    def __init__(self, features: nn.Module, out_dim: int, n_classes: int, hidden: int) -> None:
        super().__init__()
        self.features = features
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(out_dim, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _conv(i: int, o: int, k: int, pad: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, k, padding=pad), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


def french(n_classes: int) -> nn.Module:
    f = nn.Sequential(*_conv(3, 32, 5, 0), nn.MaxPool2d(2), *_conv(32, 64, 3, 0), *_conv(64, 64, 3, 0),
                      nn.MaxPool2d(2), nn.Flatten())
    return _Net(f, 64 * 4 * 4, n_classes, 256)


def gp(n_classes: int) -> nn.Module:
    f = nn.Sequential(*_conv(3, 32, 3, 1), *_conv(32, 32, 3, 1), nn.MaxPool2d(2),
                      *_conv(32, 64, 3, 1), *_conv(64, 64, 3, 1), *_conv(64, 64, 3, 1), nn.MaxPool2d(2),
                      *_conv(64, 128, 3, 1), *_conv(128, 128, 3, 1), *_conv(128, 128, 3, 1), nn.MaxPool2d(2),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return _Net(f, 128, n_classes, 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=["dann", "french", "gp"], required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=500)
    a = ap.parse_args()
    import genda.da.methods.source_only as source_only
    from genda.config import da_setting_config, effective_compute, load_params
    from genda.da.train import train_da
    from genda.data.store import digits_path, load_prepared

    if a.arch != "dann":
        net = {"french": french, "gp": gp}[a.arch]
        source_only.build_digit_net = lambda n_classes, options: net(n_classes)
    params = load_params()
    da, options = da_setting_config(params, "target_only")
    src, tgt = load_prepared(digits_path("mnistm")), load_prepared(digits_path("usps"))
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        train_da("target_only", options, {**da, "eval_every": a.eval_every}, src, tgt, seed=a.seed,
                 device=torch.device("cpu"), ckpt_dir=out / "ckpt", out_model=out / "model.pt", tracker=None,
                 compute=effective_compute(params, params["da"].get("compute")))
        curve = torch.load(out / "model.pt", weights_only=True)["curve"]
    print(json.dumps({"arch": a.arch, "seed": a.seed, "train_s": round(time.time() - t0, 1),
                      "curve_step_target_acc": [[r["step"], round(r["target_acc"], 4)] for r in curve]}), flush=True)


if __name__ == "__main__":
    main()
