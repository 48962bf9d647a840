"""Fast A/B of DA recipe knobs on the prepared embedded digits, in one process (no stage per training).

Trains ``SETTING`` on ``PAIR`` for each seed with genda's own trainer (:func:`genda.da.train.train_da`, the function
``stages/train_da.py`` calls) on a base params file plus ``key=value`` overrides, and prints the target test
accuracy after training (and the curve every ``da.eval_every`` steps) per seed, then mean ± std:

    python benchmarks/ab/da_ab_embedded.py mnistm-usps dann da.steps=400 da.methods.dann.domain_weight=0.3 \\
        --base params.yaml --seeds 0 1 2

Needs ``data/prepared/digits`` (``dvc repro prepare``). One thread per process (run two at a time on 2 cores).
Results of the embedded-default A/B: ``benchmarks/results/ab_da_recipe_embedded.json``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks/realdata"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pair")
    ap.add_argument("setting")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    ap.add_argument("--base", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    a = ap.parse_args()
    from da_runs import set_key
    from genda.config import da_setting_config, effective_compute, validate
    from genda.data.store import digits_path, load_prepared
    from genda.da.train import train_da

    torch.set_num_threads(1)
    params = yaml.safe_load(a.base.read_text())
    for o in a.overrides:
        key, _, val = o.partition("=")
        set_key(params, key, yaml.safe_load(val))
    params = validate(params, check_paths=False)  # a mistyped override key stops here, naming the valid keys
    da, options = da_setting_config(params, a.setting, a.pair)
    s, t = a.pair.split("-")
    src, tgt = load_prepared(ROOT / digits_path(s)), load_prepared(ROOT / digits_path(t))
    accs = []
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.time()
            train_da(a.setting, options, da, src, tgt, seed=seed, device=torch.device("cpu"), ckpt_dir=Path(d) / "ck",
                     out_model=Path(d) / "model.pt", progress=False, compute=effective_compute(params, params["da"].get("compute")))
            curve = torch.load(Path(d) / "model.pt", weights_only=True)["curve"]
        accs.append(curve[-1]["target_acc"])
        print(f"seed {seed}: target {[round(r['target_acc'], 3) for r in curve]} "
              f"source {[round(r['source_acc'], 3) for r in curve]} ({time.time() - t0:.0f} s)", flush=True)
    acc = torch.tensor(accs, dtype=torch.float64)
    std = float(acc.std()) if len(accs) > 1 else 0.0
    print(f"RESULT {a.pair} {a.setting} {' '.join(a.overrides)}: {float(acc.mean()):.4f} ± {std:.4f}", flush=True)


if __name__ == "__main__":
    main()
