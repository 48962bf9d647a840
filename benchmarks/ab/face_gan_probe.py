"""Probe: one face GAN of the real profile for a few hundred steps under an override, then its face rate.

A quick A/B tool (not the record: the record is the real profile's train_gan -> evaluate_gan stages). It trains
``face_gans.<gan>`` of ``--params`` with ``--set`` JSON overrides on the prepared faces, samples 200 fixed-seed
faces and prints the OpenCV face-detection rate, the loss trace and the wall time; ``--grid`` saves the first 32.
Used for benchmarks/results/probe_lsgan_d_norm_celeba_cpu.json (issue 34):

    cd real && python ../benchmarks/ab/face_gan_probe.py --gan lsgan --steps 400 --set '{"d_norm": "none"}'
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    from genda.config import face_gan_config, load_params
    from genda.data.pngs import save_grid
    from genda.data.store import faces_path, load_prepared
    from genda.gan.sample import generate, load_generator
    from genda.gan.train import train_gan
    from genda.metrics.facedetect import face_detection_rate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="run from the profile's folder")
    ap.add_argument("--gan", default="lsgan")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--set", default="{}", help='JSON overrides of the recipe, e.g. {"lr_d": 1e-4}')
    ap.add_argument("--compute", default=None, help='JSON, e.g. {"precision": "fp32"} (default: the recipe\'s)')
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = face_gan_config(load_params(a.params, check_paths=False), a.gan)
    compute = json.loads(a.compute) if a.compute else cfg["compute"]
    cfg.update(json.loads(a.set), steps=a.steps, checkpoint_every=10 ** 9, log_every=50)
    faces = load_prepared(faces_path(), kind="faces")
    t = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        hist = train_gan(cfg, faces["x_train"], seed=a.seed, device=torch.device("cpu"), ckpt_dir=Path(tmp) / "ck",
                         out_model=Path(tmp) / "G.pt", progress=False, compute=compute)
        G, c = load_generator(Path(tmp) / "G.pt", torch.device("cpu"))
        images = generate(G, c, 200, 2024, torch.device("cpu"), compute=compute)
    if a.grid:
        save_grid(images[:32], a.grid)
    trace = [(h["step"], round(h["loss_d"], 3), round(h["loss_g"], 3)) for h in hist if h["step"] % 50 == 0]
    print(json.dumps({"gan": a.gan, "steps": a.steps, "set": json.loads(a.set), "compute": compute, "seed": a.seed,
                      "face_rate": face_detection_rate(images)["face_rate"], "wall_s": round(time.time() - t),
                      "loss_trace": trace}))


if __name__ == "__main__":
    main()
