"""Benchmark: genda's DANN training loop vs a conventional per-sample Dataset + DataLoader loop.

Both train the same DANN network (genda.da.methods "dann"), same optimiser, lr annealing, batch size and
number of steps on the same prepared data, then report seconds per source epoch and target test accuracy.

* conventional: a torch Dataset that turns each uint8 image into a PIL image and applies torchvision
  transforms (ColorJitter, ToTensor, Normalize) — the way the course references do it — fed through a
  DataLoader (shuffle, drop_last, `--workers` worker processes), NCHW fp32. ``--conventional reference``
  (default) trains as the common PyTorch DANN port does: a source pass and a separate target pass, class and
  domain losses as NLL on log-softmax, Adam (lr 1e-3); ``joint_sgd`` runs genda's own step (one joint
  source+target pass, cross-entropy, SGD with genda's lr annealing) in that loop, to isolate the data path.
* genda: whole splits on the device as uint8, batches by indexing, ColorJitter-like jitter in batch on the
  device (src/genda/da/train.py).

The conventional loop runs first, in the fresh process with glibc's default allocator as a plain script has;
genda's trainer then sets its own (:mod:`genda.runtime.allocator`). ``--conventional-keep-heap`` gives the conventional
loop genda's allocator setting too; ``--genda-first`` restores the order used before 2026-12-01 session 7. The
result records both (``malloc``).

    python benchmarks/speed/da_speed.py --pair mnistm-usps --epochs 1            # on data/prepared (run `dvc repro prepare` first)
    python benchmarks/speed/da_speed.py --pair mnistm-usps --epochs 1 --out benchmarks/results/da_speed_cpu.json
    python benchmarks/speed/da_speed.py --pair mnistm-usps --epochs 0.3 --channels-last   # genda as the default runs it
    python benchmarks/speed/da_speed.py --pair mnistm-usps --epochs 0.3 --channels-last --precision auto
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def conventional_loader(x: torch.Tensor, y: torch.Tensor, batch: int, seed: int, workers: int, jitter: float):
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    tf = transforms.Compose([transforms.ColorJitter(jitter, jitter, jitter), transforms.ToTensor(),
                             transforms.Normalize((0.5,) * 3, (0.5,) * 3)])

    class Digits(Dataset):
        def __init__(self):
            self.x = x.permute(0, 2, 3, 1).numpy()
            self.y = y.numpy()

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return tf(Image.fromarray(self.x[i])), int(self.y[i])

    g = torch.Generator().manual_seed(seed)
    return DataLoader(Digits(), batch_size=batch, shuffle=True, drop_last=True, num_workers=workers, generator=g,
                      persistent_workers=workers > 0)


def reference_step(model, xs, ys, xt, p: float) -> torch.Tensor:
    """One iteration of the common PyTorch DANN port on genda's DANN network: separate source and target
    passes, each through the gradient reversal into the domain head; NLL on log-softmax for every loss, summed."""
    import torch.nn.functional as F

    lam = model.lambd(p)
    head, grl = model.domain_adv.domain_discriminator, model.domain_adv.grl
    fs = model.net.features(xs)
    cls = F.nll_loss(F.log_softmax(model.net.classifier(fs), dim=1), ys)
    dom_s = F.nll_loss(F.log_softmax(head(grl(fs, lam)), dim=1), torch.zeros_like(ys))
    ft = model.net.features(xt)
    dom_t = F.nll_loss(F.log_softmax(head(grl(ft, lam)), dim=1), torch.ones(len(xt), dtype=torch.long,
                                                                             device=xt.device))
    return cls + dom_s + dom_t


def run_conventional(src, tgt, steps, batch, lr, device, workers, jitter, seed=0, style="reference"):
    from genda.da.methods import build_method
    from genda.da.grl import annealed_lr as annealed
    from genda.data.tensors import predict_labels

    torch.manual_seed(seed)
    model = build_method("dann", n_classes=10).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3) if style == "reference" else torch.optim.SGD(params, lr=lr, momentum=0.9)
    ls = conventional_loader(src["x_train"], src["y_train"], batch, seed, workers, jitter)
    lt = conventional_loader(tgt["x_train"], tgt["y_train"], batch, seed + 1, workers, jitter)
    it_s, it_t = iter(ls), iter(lt)
    t0 = time.perf_counter()
    for step in range(steps):
        try:
            xs, ys = next(it_s)
        except StopIteration:
            it_s = iter(ls); xs, ys = next(it_s)
        try:
            xt, _ = next(it_t)
        except StopIteration:
            it_t = iter(lt); xt, _ = next(it_t)
        p = step / max(1, steps - 1)
        model.train()
        if style == "reference":
            loss = reference_step(model, xs.to(device), ys.to(device), xt.to(device), p)
        else:
            for gr in opt.param_groups:
                gr["lr"] = annealed(lr, p, 10.0, 0.75)
            loss, _ = model.training_step(xs.to(device), ys.to(device), xt.to(device), p)
        opt.zero_grad(); loss.backward(); opt.step(); model.after_optimizer_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    acc = float((predict_labels(model, tgt["x_test"], device, head="classify") == tgt["y_test"]).float().mean())
    return secs, acc


def run_genda(src, tgt, steps, batch, lr, device, jitter, seed=0, tmp=Path("/tmp/genda_bench"), compute=None):
    import shutil

    from genda.da.train import train_da, load_da_model
    from genda.data.tensors import predict_labels

    shutil.rmtree(tmp, ignore_errors=True)
    da = {"batch_size": batch, "optimizer": "sgd", "lr": lr, "momentum": 0.9, "weight_decay": 0.0, "steps": steps,
          "lr_anneal": True, "anneal_alpha": 10.0, "anneal_beta": 0.75, "color_jitter": jitter,
          "checkpoint_every": 10 ** 9, "log_every": 10 ** 9}
    t0 = time.perf_counter()
    train_da("dann", {}, da, src, tgt, seed=seed, device=device, ckpt_dir=tmp / "ck", out_model=tmp / "m.pt",
             progress=False, compute=compute)
    if device.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    model = load_da_model(tmp / "m.pt", device)
    acc = float((predict_labels(model, tgt["x_test"], device, head="classify") == tgt["y_test"]).float().mean())
    return secs, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", default="mnistm-usps")
    ap.add_argument("--epochs", type=float, default=1.0, help="source epochs to train (both loops)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--jitter", type=float, default=0.3)
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--channels-last", action="store_true",
                    help="genda with compute.channels_last (the default since 2026-12-01); the conventional loop "
                         "stays NCHW, as the references run")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"),
                    help="genda's compute.precision (auto: bf16 where it pays, src/genda/runtime/precision.py); the "
                         "conventional loop stays fp32, as the references run")
    ap.add_argument("--conventional", default="reference", choices=("reference", "joint_sgd"),
                    help="the conventional loop's step (see the module docstring)")
    ap.add_argument("--conventional-keep-heap", action="store_true",
                    help="the conventional loop also with genda.runtime.allocator.keep_heap (default: glibc's allocator as "
                         "a plain script has; genda's trainers keep their buffers in the heap)")
    ap.add_argument("--genda-first", action="store_true",
                    help="train genda first and the conventional loop after it in the same process (default: the "
                         "conventional loop first, in a fresh process as a plain script runs)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from genda.data.store import load_prepared
    from genda.runtime.device import get_device

    device = get_device()
    s, t = a.pair.split("-")
    src = load_prepared(Path(a.prepared) / "digits" / f"{s}.pt")
    tgt = load_prepared(Path(a.prepared) / "digits" / f"{t}.pt")
    steps = max(1, int(a.epochs * len(src["y_train"]) // a.batch))
    per_epoch = len(src["y_train"]) // a.batch
    compute = {"precision": a.precision, "channels_last": a.channels_last}
    from genda.runtime.allocator import applied, keep_heap

    if a.conventional_keep_heap:
        keep_heap()
    # the conventional loop first: genda's trainer tunes the process's allocator (genda.runtime.allocator), for good
    conv_malloc = "keep_heap" if applied() else "default"
    if a.genda_first:  # the order before 2026-12-01 session 7 (the conventional loop ran in genda's used process)
        g_secs, g_acc = run_genda(src, tgt, steps, a.batch, a.lr, device, a.jitter, compute=compute)
        conv_malloc = "keep_heap" if applied() else "default"
    c_secs, c_acc = run_conventional(src, tgt, steps, a.batch, a.lr, device, a.workers, a.jitter,
                                     style=a.conventional)
    if not a.genda_first:
        g_secs, g_acc = run_genda(src, tgt, steps, a.batch, a.lr, device, a.jitter, compute=compute)
    from genda.runtime.precision import active
    from genda.runtime.records import environment

    genda_precision = active()  # what train_da resolved compute.precision to

    res = {"pair": a.pair, "steps": steps, "batch": a.batch, "device": str(device),
           "genda_compute": {**compute, "precision_used": genda_precision},
           "command": "python benchmarks/speed/da_speed.py " + " ".join(sys.argv[1:]), "env": environment(genda_precision),
           "machine": f"{platform.node()} {platform.processor() or platform.machine()} "
                      f"{torch.get_num_threads()} threads" + (f" {torch.cuda.get_device_name()}" if device.type == "cuda" else ""),
           "n_source_train": len(src["y_train"]), "workers_conventional": a.workers, "conventional": a.conventional,
           "malloc": {"genda": "keep_heap" if applied() else "default", "conventional": conv_malloc},
           "genda_sec_per_epoch": g_secs / steps * per_epoch, "conventional_sec_per_epoch": c_secs / steps * per_epoch,
           "speedup": c_secs / g_secs, "genda_target_acc": g_acc, "conventional_target_acc": c_acc}
    print(json.dumps(res, indent=2))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
