"""Fast A/B of conditional-generator knobs on the prepared embedded digits, in one process per arm and seed.

Trains ``cond_gens.NAME`` with genda's own trainer (:func:`genda.cond.train.train_cond`, the function
``stages/train_cond.py`` calls) on a base params file plus ``key=value`` overrides of ``cond_gens.NAME`` (JSON
values), keeps a curve point every ``curve_every`` steps and scores it with the pipeline's digit classifier
(:func:`genda.metrics.cond_eval.write_curve`), then prints one JSON line per seed:

    python benchmarks/ab/cond_ab_embedded.py acgan steps=800 curve_every=200 curve_per_class=20 aux_fake_d=false \\
        --seeds 0 1 2 [--g-base 512]

``--keep DIR`` copies each trained model to ``DIR/<name>_seed<S>.pt`` (e.g. to sweep sampling knobs afterwards).
``--compute precision=bf16 channels_last=false``: override keys of the ``compute`` the trainer runs under (default:
the base params file's, with the ``cond`` / ``cond_gens.NAME`` overrides). ``--g-base``: ACGAN generator's first
feature-map width (default ``min(512, 8 ngf)``; 512 = the generator used until 2026-11-30). Needs
``data/prepared/digits`` and ``models/classifier`` (``dvc repro train_classifier``). One thread per process (run two at a time on 2 cores). Results: ``benchmarks/results/ab_acgan_embedded.json``.
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    ap.add_argument("--base", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--g-base", type=int, default=None)
    ap.add_argument("--compute", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override keys of the base params' compute section (precision, channels_last)")
    ap.add_argument("--keep", type=Path, default=None, help="copy each trained model to KEEP/<name>_seed<S>.pt")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import genda.cond.models.acgan as acgan

    if a.g_base:
        acgan.ACGANGenerator = functools.partial(acgan.ACGANGenerator, base=a.g_base)
    from genda.config import load_params
    from genda.config import cond_config
    from genda.metrics.cond_eval import write_curve
    from genda.cond.train import load_cond_data, train_cond

    over = {k: json.loads(v) for k, v in (o.split("=", 1) for o in a.overrides)}
    params = load_params(a.base)
    params["cond_gens"][a.name] = {**params["cond_gens"][a.name], **over}
    cfg = cond_config(params, a.name)
    cfg["compute"] = {**cfg["compute"], **{k: json.loads(v) if v in ("true", "false") else v
                                           for k, v in (o.split("=", 1) for o in a.compute)}}  # train_cond reads it
    cpu = torch.device("cpu")
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            data = load_cond_data(cfg, a.name, root=ROOT, seed=seed)
            t = time.time()
            train_cond(cfg, data, seed=seed, device=cpu, ckpt_dir=out / "ck", out_model=out / "model.pt", progress=False,
                       out_timing=out / "timing.json")
            df = write_curve(out / "model.pt", a.name, out / "curve.csv", root=ROOT, device=cpu,
                             timing=out / "timing.json")
            if a.keep:
                a.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(out / "model.pt", a.keep / f"{a.name}_seed{seed}.pt")
        print(json.dumps({"name": a.name, "seed": seed, "g_base": a.g_base, **over, "compute": cfg["compute"],
                          "total_s": round(time.time() - t, 1),
                          "curve": [[int(r.step), round(r.wall_s, 1), round(r.accuracy, 3)] for r in df.itertuples()]}),
              flush=True)


if __name__ == "__main__":
    main()
