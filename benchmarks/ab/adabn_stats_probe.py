"""Side probe: which BatchNorm statistics does a trained DA model's classifier expect on the target domain?

``evaluate_da`` reports each model's target test accuracy twice: with the BatchNorm running statistics it kept from
training, and after AdaBN (:func:`genda.da.adabn.adapt_bn`: statistics of the unlabelled target training images).
On the real profile's MNIST-M -> USPS DANN on the ``gp`` network (``passes: separate``) AdaBN *lowers* the accuracy
(96.4 -> 86.3 %). This probe scores the committed models of one pair under four choices of statistics:

* ``running``: the model's own running statistics (what ``target_acc`` reports);
* ``adabn``: target training images, the whole set (what ``target_acc_adabn`` reports);
* ``target_batch64``: each test batch of 64 normalised by its own statistics (the regime of the target pass in
  training with ``passes: separate``): shows whether AdaBN's estimate, rather than target statistics as such,
  is at fault;
* ``mixed``: AdaBN over source and target training images, half each (the running statistics of a
  ``separate`` run are a momentum average of alternating source and target passes).

It prints one JSON line per model and writes them with ``--out``. A probe, not a record.

    cd real && python ../benchmarks/ab/adabn_stats_probe.py --pair mnistm-usps --settings dann source_only \
        --out ../benchmarks/results/probe_adabn_stats_mnistm_usps_cpu.json
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch import nn


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Target accuracy in the module's current mode (genda.data.tensors.predict_labels would put the batch-statistics
    copy below back in eval mode)."""
    from genda.data.tensors import to_float_images

    with torch.no_grad():
        pred = torch.cat([model.classify(to_float_images(x[i:i + batch])).argmax(1) for i in range(0, len(x), batch)])
    return float((pred == y).float().mean())


def _batch_stats_copy(model: nn.Module) -> nn.Module:
    """Eval-mode copy whose BatchNorm layers normalise every batch by its own statistics (dropout off)."""
    m = copy.deepcopy(model).eval()
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.train()
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", default="mnistm-usps")
    ap.add_argument("--settings", nargs="+", default=["dann", "source_only"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from genda.da.adabn import adapt_bn
    from genda.da.train import load_da_model
    from genda.data.store import digits_path, load_prepared
    from genda.runtime.device import cpu_info

    src_name, tgt_name = a.pair.split("-")
    src, tgt = load_prepared(digits_path(src_name)), load_prepared(digits_path(tgt_name))
    g = torch.Generator().manual_seed(0)
    n = min(len(src["x_train"]), len(tgt["x_train"]))
    mixed = torch.cat([src["x_train"][torch.randperm(len(src["x_train"]), generator=g)[:n]],
                       tgt["x_train"][torch.randperm(len(tgt["x_train"]), generator=g)[:n]]])
    mixed = mixed[torch.randperm(len(mixed), generator=g)]  # batches of adapt_bn hold both domains
    order = torch.randperm(len(tgt["y_test"]), generator=g)
    xt, yt = tgt["x_test"], tgt["y_test"]
    rows, cpu = [], torch.device("cpu")
    for setting in a.settings:
        for seed in a.seeds:
            path = Path(f"models/da/{a.pair}/{setting}/seed{seed}.pt")
            model = load_da_model(path, cpu).eval()
            t0 = time.time()
            row = {"pair": a.pair, "setting": setting, "seed": seed,
                   "running": _accuracy(model, xt, yt),
                   "adabn": _accuracy(adapt_bn(model, tgt["x_train"], cpu), xt, yt),
                   "target_batch64": _accuracy(_batch_stats_copy(model), xt[order], yt[order], batch=64),
                   "mixed": _accuracy(adapt_bn(model, mixed, cpu), xt, yt)}
            row = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            row["seconds"] = round(time.time() - t0, 1)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if a.out:
        info = cpu_info()
        a.out.write_text(json.dumps({"command": f"cd real && python ../benchmarks/ab/adabn_stats_probe.py --pair {a.pair} "
                                                f"--settings {' '.join(a.settings)}",
                                     "machine": f"{info['cpu']} ({info['cpu_isa']}), 1 thread",
                                     "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
