"""Benchmark: training speed of every face GAN of a params file, fp32 against bf16, on the CelebA faces (issue 34).

Each GAN runs :func:`genda.gan.train.train_gan` (what ``stages/train_gan.py`` runs) with its recipe from the params
file (``face_gan_config``: loss, d_steps, normalisation, DiffAugment, EMA, architecture) at one batch size and width,
on the faces decoded once (64x64). The time of ``warmup + steps`` iterations minus that of ``warmup`` iterations is
the time of ``steps`` iterations (start-up, first-call and checkpoint costs cancel). Reported per GAN and precision:
seconds per iteration (one G update and ``d_steps`` D updates), generated images/s (G updates x batch) and real
images/s seen by D (``d_steps`` x batch per iteration).

    python benchmarks/speed/face_gan_speed.py --params real/params.yaml --gans dcgan lsgan --steps 10 \\
        --threads 2 --out benchmarks/results/face_gan_speed_xeon_amx.json
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


def seconds_per_iter(x: torch.Tensor, cfg: dict, steps: int, warmup: int, compute: dict, tmp: Path) -> float:
    from genda.gan.train import train_gan

    def run(n: int, tag: str) -> float:
        t = time.perf_counter()
        train_gan({**cfg, "steps": n, "checkpoint_every": 10 ** 9, "log_every": 10 ** 9}, x, seed=0,
                  device=torch.device("cpu"), ckpt_dir=tmp / f"ck_{tag}", out_model=tmp / f"g_{tag}.pt",
                  progress=False, compute=compute)
        return time.perf_counter() - t
    return (run(warmup + steps, f"long_{compute['precision']}") - run(warmup, f"short_{compute['precision']}")) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=ROOT / "real/params.yaml",
                    help="the recipes: its face_gans (default: the real profile's, which runs every face GAN)")
    ap.add_argument("--gans", nargs="*", help="default: every face_gans entry of --params")
    ap.add_argument("--faces", type=Path, default=ROOT.parent / "shared/data/faces/celeba_10k.tar")
    ap.add_argument("--batch", type=int, help="default: each recipe's batch_size")
    ap.add_argument("--width", type=int, help="ngf = ndf (default: each recipe's)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from genda.config import face_gan_config, load_params
    from genda.data.sources import load_faces
    from genda.runtime.records import environment

    if not a.faces.exists():
        sys.exit(f"face_gan_speed: {a.faces} not found (the CelebA tarball of ../shared/data)")
    params = load_params(a.params, check_paths=False)
    gans = a.gans or list(params["face_gans"])
    unknown = [g for g in gans if g not in params["face_gans"]]
    if unknown:
        sys.exit(f"face_gan_speed: {unknown} not in {a.params}'s face_gans ({', '.join(params['face_gans'])})")
    x = load_faces("npz", root=a.faces.parent.parent, size=64, crop=64, test_fraction=0.1).x_train
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for g in gans:
            cfg = face_gan_config(params, g)
            if a.batch:
                cfg["batch_size"] = a.batch
            if a.width:
                cfg["ngf"] = cfg["ndf"] = a.width
            for prec in a.precisions:
                compute = {**params["compute"], "precision": prec}
                s = seconds_per_iter(x, cfg, a.steps, a.warmup, compute, Path(tmp) / g)
                b, k = cfg["batch_size"], cfg["d_steps"]
                runs.setdefault(g, {})[prec] = {
                    "s_per_iter": round(s, 4), "g_images_per_s": round(cfg["g_steps"] * b / s, 1),
                    "d_real_images_per_s": round(k * b / s, 1), "batch": b, "ngf": cfg["ngf"], "ndf": cfg["ndf"],
                    "arch": cfg["arch"], "loss": cfg["loss"], "d_steps": k}
                print(g, prec, runs[g][prec], flush=True)
            if len(runs[g]) == 2:
                runs[g]["bf16_speedup"] = round(runs[g]["fp32"]["s_per_iter"] / runs[g]["bf16"]["s_per_iter"], 2)
    res = {"what": __doc__.split("\n\n")[0], "params": str(a.params.resolve().relative_to(ROOT)),
           "steps": a.steps, "warmup": a.warmup, "threads": a.threads, "runs": runs,
           "command": "python benchmarks/speed/face_gan_speed.py " + " ".join(sys.argv[1:]),
           "env": environment("fp32"), "date": time.strftime("%Y-%m-%d %H:%M"), "note": a.note}
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
