"""Side probe: how high do the target-only bound and the mean teacher get with a larger digit network than DANN's?

Trains one setting (``target_only`` by default, ``source_only``, ``dann`` or ``mean_teacher``) on one pair with genda's own trainer
(:func:`genda.da.train.train_da`, the function ``stages/train_da.py`` calls) on the real profile's params for that
setting (target-only: 2,500 x 64, SGD 0.01 annealed, colour jitter 0.3; mean teacher: 20,000 steps) and the network
under test, and prints one JSON line: the target test accuracy along training. A probe, not a record.

    cd real && python ../benchmarks/ab/da_network_probe.py --arch gp --seed 0
    cd real && python ../benchmarks/ab/da_network_probe.py --arch gp --setting mean_teacher --seed 0
    cd real && python ../benchmarks/ab/da_network_probe.py --arch gp --setting dann --option passes=separate --work W

Networks (RGB 28x28 input): ``dann`` (ours, Ganin et al.'s; the ``network: dann`` option), ``gp`` (French et al.
2018's ``grey-32-64-128-gp``, the ``network: gp`` option with ``classifier_layers: 1``: 3 blocks of 2-3 conv-BN 3x3
layers with 32 / 64 / 128 channels, max pooling after each, global average pooling, dropout, fc 128, fc C) and
``french`` (their MNIST<->USPS net, not a genda option, target-only only: conv-BN 32 5x5, pool, 64 3x3, 64 3x3, pool,
dropout, fc 256, fc C). Needs the real profile's prepared digits (``real/data/prepared/digits``). Results:
``benchmarks/results/probe_da_network_usps_cpu.json``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import yaml
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=["dann", "french", "gp"], required=True)
    ap.add_argument("--setting", choices=["target_only", "source_only", "dann", "mean_teacher"], default="target_only")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="override one of the setting's options (YAML value), e.g. --option passes=separate")
    ap.add_argument("--pair", default="mnistm-usps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="default: the profile's for the setting (the lr schedule follows)")
    ap.add_argument("--eval-every", type=int, default=None, help="default: the profile's (target-only 500)")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep checkpoints here, so a rerun resumes (default: a temporary folder)")
    a = ap.parse_args()
    if a.arch == "french" and a.setting not in ("target_only", "source_only"):
        ap.error("--arch french is a probe-only network: target_only / source_only only")
    import genda.da.methods.source_only as source_only
    from genda.config import da_setting_config, effective_compute, load_params
    from genda.da.train import train_da
    from genda.data.store import digits_path, load_prepared

    if a.arch == "french":
        source_only.build_digit_net = lambda n_classes, options: french(n_classes)
    params = load_params()
    da, options = da_setting_config(params, a.setting, a.pair)
    # --arch names the network whatever the profile's options (or their by_pair entry for --pair) say
    options = {k: v for k, v in options.items() if k not in ("network", "classifier_layers")}
    if a.arch == "gp":
        options = {**options, "network": "gp", "classifier_layers": 1}
    for kv in a.option:
        key, _, value = kv.partition("=")
        options = {**options, key: yaml.safe_load(value)}
    if a.steps:
        da = {**da, "steps": a.steps}
    eval_every = a.eval_every or (500 if a.setting in ("target_only", "source_only") else da["eval_every"])
    src_name, tgt_name = a.pair.split("-")
    src, tgt = load_prepared(digits_path(src_name)), load_prepared(digits_path(tgt_name))
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = a.work or Path(tmp)
        train_da(a.setting, options, {**da, "eval_every": eval_every}, src, tgt, seed=a.seed,
                 device=torch.device("cpu"), ckpt_dir=out / "ckpt", out_model=out / "model.pt", tracker=None,
                 compute=effective_compute(params, params["da"].get("compute")))
        curve = torch.load(out / "model.pt", weights_only=True)["curve"]
    print(json.dumps({"arch": a.arch, "setting": a.setting, "pair": a.pair, "seed": a.seed, "steps": da["steps"], "options": options,
                      "train_s": round(time.time() - t0, 1),
                      "curve_step_target_acc": [[r["step"], round(r["target_acc"], 4)] for r in curve]}), flush=True)


if __name__ == "__main__":
    main()
