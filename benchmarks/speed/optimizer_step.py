"""Benchmark: one optimiser step and one EMA update of each trainer's networks, torch's default CPU path against
the multi-tensor ("foreach") path genda uses (:mod:`genda.train.optim`; same bits, ``tests/test_optim.py``), and the
fused CPU kernel for reference (not used: its rounding differs, so every committed metric would move).

For each network (built as its trainer builds it, gradients filled with noise) and each arm, ``--steps`` timed
``step()`` calls after 5 warm-up ones; best of ``--repeats``. Also ``EMA.update`` as a per-parameter loop
against the two foreach calls genda makes. No dataset needed::

    python benchmarks/speed/optimizer_step.py --threads 2 --out benchmarks/results/optimizer_step_<cpu>.json
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def networks() -> dict[str, tuple[torch.nn.Module, str, dict]]:
    """name -> (module, optimiser, hyper-parameters) as the pipeline's defaults build them."""
    from genda.config import load_params
    from genda.config import cond_config
    from genda.da.methods import build_method as build_da
    from genda.metrics.digit_classifier import DigitClassifier
    from genda.gan.models.dcgan import DCGANDiscriminator, DCGANGenerator
    from genda.cond.methods import build_method as build_cond

    params = load_params(ROOT / "params.yaml")
    meta = {"channels": 3, "img_size": 28, "n_classes": 10, "kind": "digits"}
    cpu = torch.device("cpu")
    acgan = build_cond(cond_config(params, "acgan"), {**meta, "method": "acgan"}, cpu, torch.Generator())
    ddpm = build_cond(cond_config(params, "ddpm"), {**meta, "method": "ddpm"}, cpu, torch.Generator())
    adam_gan = {"lr": 2e-4, "betas": (0.5, 0.999)}
    return {
        "da_dann": (build_da("dann", n_classes=10), "adam", {"lr": 1e-3}),
        "classifier": (DigitClassifier(10, params["classifier"]["width"]), "adamw", {"lr": 2e-3, "weight_decay": 5e-4}),
        "acgan_G": (acgan.G, "adam", adam_gan),
        "acgan_D": (acgan.D, "adam", adam_gan),
        "ddpm_film_unet": (ddpm.net, "adam", {"lr": 1e-3}),
        "face_dcgan_G_ngf16": (DCGANGenerator(100, params["gan"]["ngf"]), "adam", adam_gan),
        "face_dcgan_D_ndf16": (DCGANDiscriminator(params["gan"]["ndf"]), "adam", adam_gan),
    }


def _time(fn, steps: int, repeats: int) -> float:
    for _ in range(5):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        best = min(best, (time.perf_counter() - t) / steps)
    return round(best * 1000, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from genda.train.optim import OPTIMIZERS
    from genda.runtime.records import environment

    rows = []
    for name, (net, opt_name, hyper) in networks().items():
        ps = [p for p in net.parameters() if p.requires_grad]
        for p in ps:
            p.grad = torch.randn_like(p)
        row = {"network": name, "optimizer": opt_name, "tensors": len(ps), "parameters": sum(p.numel() for p in ps)}
        for arm, kw in (("default_cpu_ms", {"foreach": False}), ("foreach_ms", {"foreach": True}),
                        ("fused_ms", {"fused": True})):
            opt = OPTIMIZERS[opt_name](ps, **hyper, **kw)
            row[arm] = _time(opt.step, a.steps, a.repeats)
        ema, src = [p.detach().clone() for p in ps], [p.detach() for p in ps]

        def ema_loop():
            for e, s in zip(ema, src):
                e.mul_(0.999).add_(s, alpha=0.001)

        def ema_foreach():
            torch._foreach_mul_(ema, 0.999)
            torch._foreach_add_(ema, src, alpha=0.001)

        row["ema_loop_ms"], row["ema_foreach_ms"] = _time(ema_loop, a.steps, a.repeats), _time(ema_foreach, a.steps, a.repeats)
        row["optimizer_speedup_foreach"] = round(row["default_cpu_ms"] / row["foreach_ms"], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = {"what": __doc__.split("\n\n")[0], "threads": a.threads, "steps": a.steps, "repeats": a.repeats,
           "command": "python benchmarks/speed/optimizer_step.py " + " ".join(
               f"--{k} {v}" for k, v in (("threads", a.threads), ("steps", a.steps), ("repeats", a.repeats))),
           "note": a.note, "env": environment(), "rows": rows}
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
