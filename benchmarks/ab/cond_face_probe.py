"""Probe: one face generator of ``cond_gens`` (attr_acgan / tag_cdcgan) under overrides and another training seed,
trained, sampled and scored exactly as the profile's train_cond -> sample_cond -> evaluate_cond stages do.

A quick A/B tool (not the record: the record is the profile's stages). Run from the profile's folder (it reads
``params.yaml``, ``data/prepared`` and ``features/fid`` there); everything it writes goes to ``--out``. The
training seed is ``--seed``; data, sampling seeds and the attribute classifiers stay the profile's (``seed``), so
arms differ only in the generator. Prints one JSON line with the headline scores:

    cd real && python ../benchmarks/ab/cond_face_probe.py tag_cdcgan --seed 1 --set '{"tag_aux_weight": 1.0}' \\
        --out /tmp/tag_aux_s1

Used for the tag_cdcgan auxiliary-classifier A/B (issue 34, benchmarks/results/ab_tag_cdcgan_aux_celeba_cpu.json).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="a face entry of cond_gens (attr_acgan, tag_cdcgan)")
    ap.add_argument("--seed", type=int, default=0, help="the generator's training seed")
    ap.add_argument("--set", default="{}", help='JSON overrides of cond_gens.<name>, e.g. {"tag_aux_weight": 1.0}')
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from genda.cond.sample import load_cond_model, write_samples
    from genda.cond.train import load_cond_data, train_cond
    from genda.config import cond_config, load_params
    from genda.metrics.cond_eval import evaluate_samples

    params = load_params()
    params["cond_gens"][a.name] = {**params["cond_gens"][a.name], **json.loads(a.set),
                                   **({"steps": a.steps} if a.steps else {})}
    cfg = cond_config(params, a.name)
    cpu = torch.device("cpu")
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = load_cond_data(cfg, a.name, seed=params["seed"])
    train_cond(cfg, data, seed=a.seed, device=cpu, ckpt_dir=a.out / "ckpt", out_model=a.out / "model.pt",
               loss_csv=a.out / "losses.csv", compute=cfg["compute"], progress=False)
    train_s = time.perf_counter() - t0
    method, _, meta = load_cond_model(a.out / "model.pt", cpu)
    write_samples(method, meta, params["cond_sample"], a.out / "samples", compute=params.get("compute"))
    m = evaluate_samples(a.out / "samples", params["evaluate"], params["classifier"], seed=params["seed"],
                         device=cpu, reference_dir=Path("features/fid"))
    keep = ("tag_accuracy", "attr_accuracy", "face_rate", "fid", "kid_mean", "is_mean", "identity_ratio")
    rec = {"name": a.name, "seed": a.seed, "set": json.loads(a.set), "steps": cfg["steps"],
           "train_s": round(train_s, 1), **{k: m[k] for k in keep if k in m}}
    if "tag_groups" in m:
        rec["groups"] = {g: {"accuracy": v["accuracy"], "per_class": v["per_class"],
                             "classifier_real_acc": v["classifier_real_acc"]} for g, v in m["tag_groups"].items()}
    (a.out / "probe.json").write_text(json.dumps(rec, indent=1))
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
