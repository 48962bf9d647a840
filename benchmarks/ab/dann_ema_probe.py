"""Side probe: would an EMA (Polyak) copy of DANN's weights score the target better than the final weights?

The real profile's MNIST -> MNIST-M DANN ends at 84.95 +- 2.8 % (3 seeds; the issue's bar is 85 %), and its target
accuracy swings by +-2 points between the last evaluations of one seed (every 1,000 of 20,000 steps), so the final
weights are a noisy draw from a plateau. An exponential moving average of the weights is the usual remedy (Polyak &
Juditsky 1992; the mean teacher's teacher is one). This probe trains the profile's DANN exactly as its stage does
(``genda.da.train.train_da`` with the resolved ``real/params.yaml`` options, one thread) and, beside it, keeps EMA
copies of the whole state (weights and BatchNorm buffers) at the given decays, updated after every optimizer step.
Every evaluation point of the curve then also scores each EMA copy on the same test sets, in eval mode, as
``evaluate_da`` scores a model. Training is untouched (the EMA reads the weights, draws no random number), so the
raw curve must equal the committed record's seed for seed: the probe checks that against
``real/models/da/<pair>/dann/seed<N>.pt`` where that file is present and was scored on raw weights (no ``eval_ema``).

One seed per process (run two at a time on two cores); ``--merge`` collects the per-seed files. A probe, not a
record: the option it led to is DANN's ``eval_ema`` (``genda.da.methods.averaging``), in the real profile's
MNIST -> MNIST-M DANN since 2026-12-08 (``configs/real.yaml``).

    cd real && GENDA_THREADS=1 python ../benchmarks/ab/dann_ema_probe.py --seed 0 --out ../benchmarks/results/probe_dann_ema_seed0.json
    python benchmarks/ab/dann_ema_probe.py --merge benchmarks/results/probe_dann_ema_seed*.json \
        --out benchmarks/results/probe_dann_ema_mnist_mnistm_cpu.json
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch


def _ema_update(ema: dict[str, torch.Tensor], state: dict[str, torch.Tensor], decay: float) -> None:
    for k, v in state.items():
        if v.dtype.is_floating_point:
            ema[k].mul_(decay).add_(v.detach(), alpha=1.0 - decay)
        else:
            ema[k].copy_(v)


def run_seed(pair: str, seed: int, decays: list[float], shrink: dict | None = None) -> dict:
    import genda.da.train as da_train
    from genda.config import da_setting_config, effective_compute, load_params
    from genda.da.methods.dann import DANN
    from genda.data.store import digits_path, load_prepared

    params = load_params()
    da, options = da_setting_config(params, "dann", pair)
    options.pop("eval_ema", None)  # the probe's own arms score the raw weights and their averages
    da.update(shrink or {})  # a quick check of the probe itself (--steps / --eval-every)
    src_name, tgt_name = pair.split("-")
    src, tgt = load_prepared(digits_path(src_name)), load_prepared(digits_path(tgt_name))
    emas: dict[float, dict[str, torch.Tensor]] = {}
    shadow: dict[str, torch.nn.Module] = {}
    rows: list[dict] = []
    original_step, original_predict = DANN.after_optimizer_step, da_train.predict_labels

    def after_optimizer_step(self) -> None:
        original_step(self)
        state = self.state_dict()
        for d in decays:
            if d not in emas:  # from the first step on, as a mean teacher's teacher
                emas[d] = {k: v.detach().clone() for k, v in state.items()}
            _ema_update(emas[d], state, d)

    def predict_labels(model, x, device, **kw):
        out = original_predict(model, x, device, **kw)
        if x is tgt["x_test"] or x is src["x_test"]:
            dom = "target" if x is tgt["x_test"] else "source"
            y = tgt["y_test"] if dom == "target" else src["y_test"]
            row = {"domain": dom, "raw": float((out == y).float().mean())}
            if emas and "m" not in shadow:  # one eval copy, its state replaced per decay
                shadow["m"] = copy.deepcopy(model)
            for d, state in emas.items():
                m = shadow["m"]
                m.load_state_dict(state)
                row[f"ema{d}"] = float((original_predict(m, x, device, **kw) == y).float().mean())
            rows.append(row)
        return out

    DANN.after_optimizer_step, da_train.predict_labels = after_optimizer_step, predict_labels
    t0 = time.time()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            da_train.train_da("dann", options, {**da, "checkpoint_every": 10 ** 9}, src, tgt, seed=seed,
                              device=torch.device("cpu"), ckpt_dir=Path(tmp) / "ck", out_model=Path(tmp) / "m.pt",
                              progress=False, compute=effective_compute(params, params["da"].get("compute")))
            curve = torch.load(Path(tmp) / "m.pt", weights_only=True)["curve"]
    finally:
        DANN.after_optimizer_step, da_train.predict_labels = original_step, original_predict
    target = [r for r in rows if r["domain"] == "target"]
    points = [{"step": c["step"], **{k: round(v, 4) for k, v in r.items() if k != "domain"}}
              for c, r in zip(curve, target)]
    out = {"pair": pair, "seed": seed, "options": options, "steps": da["steps"], "decays": decays,
           "target_curve": points, "final": points[-1], "train_and_eval_s": round(time.time() - t0, 1)}
    committed = Path(f"models/da/{pair}/dann/seed{seed}.pt")
    rec_ck = torch.load(committed, weights_only=True) if committed.exists() else None
    if rec_ck is not None and not rec_ck["options"].get("eval_ema"):  # a record scored on raw weights
        rec = rec_ck["curve"]
        out["raw_equals_committed_curve"] = [round(c["target_acc"], 6) for c in rec] == \
                                            [round(c["target_acc"], 6) for c in curve]
    return out


def merge(paths: list[Path]) -> dict:
    seeds = [json.loads(p.read_text()) for p in paths]
    arms = [k for k in seeds[0]["final"] if k != "step"]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    std = lambda xs: (sum((x - mean(xs)) ** 2 for x in xs) / max(1, len(xs) - 1)) ** 0.5  # noqa: E731
    final = {a: [s["final"][a] for s in seeds] for a in arms}
    last5 = {a: [mean([p[a] for p in s["target_curve"][-5:]]) for s in seeds] for a in arms}
    return {"final_target_acc": {a: {"per_seed": v, "mean": round(mean(v), 4), "std": round(std(v), 4)}
                                 for a, v in final.items()},
            "mean_of_last_5_points": {a: {"per_seed": [round(x, 4) for x in v], "mean": round(mean(v), 4)}
                                      for a, v in last5.items()},
            "seeds": seeds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", default="mnist-mnistm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--decays", nargs="+", type=float, default=[0.999, 0.9995])
    ap.add_argument("--steps", type=int, help="fewer steps than the profile's (a check of the probe, not a result)")
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--merge", nargs="+", type=Path, help="per-seed files to combine into --out")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    from genda.runtime.device import cpu_info

    info = cpu_info()
    if a.merge:
        res = merge(a.merge)
    else:
        torch.set_num_threads(1)
        shrink = {k: v for k, v in (("steps", a.steps), ("eval_every", a.eval_every)) if v}
        res = run_seed(a.pair, a.seed, a.decays, shrink)
    res = {"what": __doc__.split("\n\n")[0], "machine": f"{info['cpu']} ({info['cpu_isa']}), 1 thread per seed",
           "date": time.strftime("%Y-%m-%d"), **res}
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res.get("final_target_acc") or res["final"]))


if __name__ == "__main__":
    main()
