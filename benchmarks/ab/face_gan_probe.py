"""Probe: one face GAN of the real profile under an override, scored the pipeline's way, with a wall-time curve.

A quick A/B tool (not the record: the record is the real profile's train_gan -> sample_gan -> evaluate_gan stages).
It trains ``face_gans.<gan>`` of ``--params`` with ``--set`` JSON overrides on the prepared faces. With
``--curve-every K`` it scores a snapshot every K steps (and at the end); ``--n`` fixed-seed faces (the profile's
``sample`` seed and BN mode) are scored like ``evaluate_gan`` does: FID / KID / IS with the profile's extractor
against the ``fid_reference@faces`` features, and the OpenCV face-detection rate. A snapshot of an EMA generator gets
its own standing BatchNorm statistics, as the final model does. The curve's ``wall_s`` is training time only
(snapshot scoring excluded), so curves of different methods share one cost axis. Prints one JSON line.
With the profile's recipe, seed 0 and ``--n 1000``, the last point equals the profile's ``evaluate_gan`` result.

    cd real && python ../benchmarks/ab/face_gan_probe.py --gan sngan_hinge --steps 1600 --curve-every 400 \\
        --seed 1 --set '{"ema_decay": 0.999}' --out /tmp/probe.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def score(G, cfg: dict, params: dict, n: int, compute: dict, tmp: Path) -> dict:
    """The evaluate_gan metrics of n fixed-seed samples of G (uint8 PNGs in a scratch folder)."""
    from genda.data.pngs import save_pngs
    from genda.gan.sample import generate
    from genda.metrics.gan_eval import evaluate_face_samples

    s = params["sample"]
    images = generate(G, cfg, n, s["seed"], torch.device("cpu"), bn_mode=s.get("bn_mode", "eval"), compute=compute)
    save_pngs(images, tmp / "images")
    m = evaluate_face_samples(tmp / "images", params["evaluate"], reference_cache=Path("features/fid/faces.pt"))
    keep = ("fid", "kid_mean", "is_mean", "face_rate")
    return {k: (round(m[k], 4) if isinstance(m[k], float) else m[k]) for k in keep} | {"images": images[:32]}


def main() -> None:
    import genda.gan.train as gan_train
    from genda.config import face_gan_config, load_params
    from genda.data.pngs import save_grid
    from genda.data.store import faces_path, load_prepared
    from genda.gan.networks import build_generator
    from genda.gan.sample import load_generator, run_generator
    from genda.gan.tricks import EMA, EMA_BN_BATCHES
    from genda.rng import sample_z

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="run from the profile's folder")
    ap.add_argument("--gan", default="lsgan")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--set", default="{}", help='JSON overrides of the recipe, e.g. {"lr_d": 1e-4}')
    ap.add_argument("--compute", default=None, help='JSON, e.g. {"precision": "fp32"} (default: the recipe\'s)')
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=1000, help="samples scored per point (evaluate_gan: 1000)")
    ap.add_argument("--curve-every", type=int, default=0, help="score a snapshot every K steps (0: the end only)")
    ap.add_argument("--grid", type=Path, help="the final model's first 32 samples")
    ap.add_argument("--out", type=Path, help="append the JSON line to this file")
    a = ap.parse_args()
    # every genda entry point (the trainer's setup, sampling, scoring) sets the thread count from $GENDA_THREADS
    # (default 2): pin it here, or the run switches thread count at its first snapshot and so changes its bits
    os.environ["GENDA_THREADS"] = str(a.threads)
    torch.set_num_threads(a.threads)
    params = load_params(a.params, check_paths=False)
    cfg = face_gan_config(params, a.gan)
    compute = json.loads(a.compute) if a.compute else cfg["compute"]
    cfg.update(json.loads(a.set), steps=a.steps, checkpoint_every=10 ** 9, log_every=50)
    faces = load_prepared(faces_path(), kind="faces")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def snapshot(loop, done: int) -> dict:
            """Score the generator the run would save if it stopped now (EMA copy + standing BN stats)."""
            st = loop._state()
            G = build_generator(cfg)
            if st["ema"]:
                G.load_state_dict(st["ema"]["model"])
                ema = EMA(G, cfg["ema_decay"])
                bs, zd = cfg["batch_size"], cfg["z_dim"]
                ema.standing_bn_stats(lambda net, g: run_generator(net, sample_z(bs, zd, cfg["z_prior"], generator=g), g),
                                      cfg.get("ema_bn_batches", EMA_BN_BATCHES), a.seed)
                G = ema.model
            else:
                G.load_state_dict(st["G"])  # copies the tensors
            G.eval()
            m = score(G, cfg, params, a.n, compute, tmp)
            m.pop("images")
            return m

        loops = []

        class CurveLoop(gan_train.TrainLoop):  # the trainer's loop, plus snapshot scoring (the probe's only addition)
            def run(self, step_fn, row_fn, **kw):
                loops.append(self)
                # every K steps; the last point is filled in below from the saved model (as the stage scores it)
                kw.update(curve_fn=lambda done: snapshot(self, done) if done < self.steps else {},
                          curve_every=a.curve_every or self.steps)
                return super().run(step_fn, row_fn, **kw)

        gan_train.TrainLoop = CurveLoop
        t = time.time()
        hist = gan_train.train_gan(cfg, faces["x_train"], seed=a.seed, device=torch.device("cpu"), ckpt_dir=tmp / "ck",
                                   out_model=tmp / "G.pt", progress=False, compute=compute)
        G, c = load_generator(tmp / "G.pt", torch.device("cpu"))
        final = score(G, c, params, a.n, compute, tmp)
    images = final.pop("images")
    curve = loops[0].curve
    curve[-1].update(final)
    if a.grid:
        save_grid(images, a.grid)
    trace = [(h["step"], round(h["loss_d"], 3), round(h["loss_g"], 3)) for h in hist if h["step"] % 200 == 0]
    rec = {"gan": a.gan, "steps": a.steps, "set": json.loads(a.set), "compute": compute, "seed": a.seed, "n": a.n,
           **final, "train_s": curve[-1]["wall_s"], "curve": curve, "wall_s_total": round(time.time() - t), "loss_trace": trace}
    print(json.dumps(rec))
    if a.out:
        with a.out.open("a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
