"""Accuracy of trained DA models on the source and target test splits, and features for t-SNE."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genda.runtime.checkpoint import load_weights
from genda.da.adabn import adapt_bn
from genda.data.store import digits_path, load_prepared
from genda.runtime.device import get_device
from genda.runtime.records import write_metrics
from genda.da.train import embed, load_da_model
from genda.data.tensors import predict_labels


def evaluate_pair(pair: str, settings: list[str], seeds: list[int], tsne_points: int, *, out_json: Path,
                  features_dir: Path | None = None, out_curves: Path | None = None) -> dict:
    """Every setting of one pair (the test splits loaded once): ``{setting: metrics}`` -> ``out_json``,
    t-SNE features -> ``features_dir/<setting>.npz``, the training curves saved with the models (test accuracy
    vs step, see ``da.eval_every``) -> ``out_curves`` (CSV, one row per seed and point)."""
    src_name, tgt_name = pair.split("-")
    src, tgt = load_prepared(digits_path(src_name)), load_prepared(digits_path(tgt_name))
    out = {s: evaluate_setting(pair, s, seeds, tsne_points, src=src, tgt=tgt,
                               out_features=features_dir / f"{s}.npz" if features_dir else None)
           for s in settings}
    write_metrics(out, out_json)
    if out_curves is not None:
        write_curves(pair, settings, seeds, out_curves)
    return out


# no wall_s: the wall times live in the trainings' timing files (genda.train.timing), which the report joins,
# so this table, like the models it is read from, is the same on every rerun
CURVE_COLUMNS = ["pair", "setting", "seed", "step", "target_acc", "source_acc"]


def write_curves(pair: str, settings: list[str], seeds: list[int], out_csv: Path) -> pd.DataFrame:
    """The ``curve`` rows of every ``models/da/<pair>/<setting>/seed<k>.pt`` in one long table (empty, with
    the header, when training ran with ``eval_every: 0``)."""
    rows = [{"pair": pair, "setting": s, "seed": seed, **r}
            for s in settings for seed in seeds
            for r in load_weights(Path(f"models/da/{pair}/{s}/seed{seed}.pt")).get("curve", [])]
    df = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False, float_format="%.6g")
    return df


def evaluate_setting(pair: str, setting: str, seeds: list[int], tsne_points: int, *, src: dict, tgt: dict,
                     out_features: Path | None = None) -> dict:
    """Target / source test accuracy of ``models/da/<pair>/<setting>/seed<k>.pt`` over ``seeds`` (mean, sample
    std, per seed), and the target accuracy after AdaBN (``target_acc_adabn``: BatchNorm statistics re-estimated
    on the unlabelled target *training* images, :func:`genda.da.adabn.adapt_bn`); the first seed's test features of ``tsne_points`` images per domain -> ``out_features``."""
    device = get_device()
    per_seed, train_compute = {}, None
    for seed in seeds:
        path = Path(f"models/da/{pair}/{setting}/seed{seed}.pt")
        model = load_da_model(path, device)
        if train_compute is None:  # the numerics it was trained in (da.compute over compute); env is evaluation's
            train_compute = load_weights(path).get("compute")
        t_acc = float((predict_labels(model, tgt["x_test"], device, head="classify") == tgt["y_test"]).float().mean())
        s_acc = float((predict_labels(model, src["x_test"], device, head="classify") == src["y_test"]).float().mean())
        ada = adapt_bn(model, tgt["x_train"], device)
        t_ada = float((predict_labels(ada, tgt["x_test"], device, head="classify") == tgt["y_test"]).float().mean())
        per_seed[str(seed)] = {"target_acc": t_acc, "source_acc": s_acc, "target_acc_adabn": t_ada}
        if out_features is not None and seed == seeds[0]:
            g = torch.Generator().manual_seed(0)
            si = torch.randperm(len(src["y_test"]), generator=g)[:tsne_points]
            ti = torch.randperm(len(tgt["y_test"]), generator=g)[:tsne_points]
            fs, ft = embed(model, src["x_test"][si], device), embed(model, tgt["x_test"][ti], device)
            out_features.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(out_features, features=torch.cat([fs, ft]).numpy(),
                                labels=torch.cat([src["y_test"][si], tgt["y_test"][ti]]).numpy(),
                                domains=np.r_[np.zeros(len(si), np.int64), np.ones(len(ti), np.int64)])
    m = {"pair": pair, "setting": setting, "n_seeds": len(seeds), "train_compute": train_compute}
    for key in ("target_acc", "source_acc", "target_acc_adabn"):
        v = np.array([r[key] for r in per_seed.values()])
        m[key], m[key + "_std"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
    m["per_seed"] = per_seed
    print(f"[evaluate_da] {pair} {setting}: target acc {m['target_acc']:.4f} ± {m['target_acc_std']:.4f} "
          f"(AdaBN {m['target_acc_adabn']:.4f}), source acc {m['source_acc']:.4f}")
    return m
