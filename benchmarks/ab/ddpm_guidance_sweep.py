"""Score trained conditional DDPMs under several sampling settings (guidance weight, DDIM steps), no retraining.

Each model file (written by :func:`genda.cond.train.train_cond`, e.g. ``models/cond/ddpm.pt`` or one kept by
``benchmarks/ab/cond_ab_embedded.py --keep DIR``) samples ``--per-class`` digits per class from fixed noise with
:meth:`DDPMMethod.sample` -- the call ``stages/sample_cond.py`` makes -- and the pipeline's digit classifier
(``models/classifier/<domain>.pt``) scores them. One JSON line per (model, guide_w, ddim_steps):

    python benchmarks/ab/ddpm_guidance_sweep.py /work/ddpm_ab/keep_b32_5k/ddpm_seed0.pt --guide 2 4 6 10 15 --steps 10
    python benchmarks/ab/ddpm_guidance_sweep.py real/models/cond/ddpm/model.pt --classifier real/models/classifier/mnistm.pt \
        --guide 3 4 5 --steps 25 --per-class 100 --seed 2024 1 2

``--precision fp32 bf16`` samples each model under each autocast precision (:mod:`genda.runtime.precision`; default fp32),
e.g. to tell whether a bf16-trained model loses accuracy in training or in bf16 sampling, whose guided noise
estimate ``(1 + w) eps(x, c) - w eps(x)`` scales the two passes' rounding errors by up to ``1 + 2w``.

One thread. Results: ``benchmarks/results/ab_ddpm_embedded.json`` ("guidance" rows).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--guide", nargs="+", type=float, default=[2.0])
    ap.add_argument("--steps", nargs="+", type=int, default=[10], help="DDIM steps")
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--seed", type=int, nargs="+", default=[2024], help="seeds of the starting noise (one run each)")
    ap.add_argument("--classifier", type=Path, default=None,
                    help="the scoring classifier (default: the default run's models/classifier/<domain>.pt; the "
                         "real profile's is real/models/classifier/mnistm.pt)")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                    help="autocast precision of the sampling passes")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from genda.metrics.digit_classifier import load_classifier
    from genda.data.tensors import predict_labels
    from genda.runtime.precision import Compute
    from genda.data.tensors import to_uint8_images
    from genda.cond.sample import load_cond_model

    cpu = torch.device("cpu")
    for path in a.models:
        method, cfg, meta = load_cond_model(path, cpu)
        clf = load_classifier(a.classifier or ROOT / "models" / "classifier" / f"{meta['domain']}.pt", cpu)
        labels = torch.arange(meta["n_classes"]).repeat(a.per_class)
        for precision in a.precision:
            for w in a.guide:
                for steps, seed in ((st, sd) for st in a.steps for sd in a.seed):
                    t = time.time()
                    with Compute({"precision": precision}, cpu).autocast():
                        x = method.sample(labels, torch.Generator().manual_seed(seed),
                                          {"sampler": "ddim", "ddim_steps": steps, "ddim_eta": 0.0, "guide_w": w})
                    acc = float((predict_labels(clf, to_uint8_images(x.float()), cpu, batch=500) == labels).float().mean())
                    print(json.dumps({"model": str(path), "train_steps": cfg["steps"], "batch_size": cfg["batch_size"],
                                      "train_compute": cfg.get("compute"), "sample_precision": precision,
                                      "guide_w": w, "ddim_steps": steps, "seed": seed, "n": len(labels), "accuracy": round(acc, 4),
                                      "sample_s": round(time.time() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
