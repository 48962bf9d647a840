"""Face-detection rate (genda.metrics.facedetect, OpenCV Haar cascade) on real and non-face images: how many real
faces the detector finds and how often it fires on things that are not upright faces, by border and minNeighbors.

    python benchmarks/ab/face_rate_calibration.py [--celeba ../shared/data/faces/celeba_10k.tar] [--n 500]

Sets: the embedded portrait crops (current framing, face square x 1.1-1.3) and the same Gaussian-blurred (sigma 3 px:
a face-coloured blob); when the tar is there, CelebA centre 64x64 crops of the aligned 89x109 images (the positives),
the same crops upside down and cut into 4x4 patches shuffled (the negatives, first 300), and uniform noise. For each
(border, minNeighbors) of a grid it records every set's rate and applies genda's rule: among the settings whose
false-positive rate on each negative set is at most the no-border minNeighbors-3 baseline's plus one image-count
standard error, take the one that finds the most real CelebA faces (ties: fewer false positives).
One thread; writes benchmarks/results/face_rate_calibration.json.
"""
from __future__ import annotations

import argparse
import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import torch


def celeba_crops(tar_path: Path, n: int) -> torch.Tensor:
    from PIL import Image

    out = []
    with tarfile.open(tar_path) as tf:
        for m in tf:
            if not m.name.endswith(".jpg"):
                continue
            im = np.asarray(Image.open(io.BytesIO(tf.extractfile(m).read())).convert("RGB"))
            h, w = im.shape[:2]
            y0, x0 = (h - 64) // 2, (w - 64) // 2
            out.append(torch.from_numpy(im[y0:y0 + 64, x0:x0 + 64].copy()).permute(2, 0, 1))
            if len(out) == n:
                break
    return torch.stack(out)


def shuffled_patches(x: torch.Tensor, generator: torch.Generator, grid: int = 4) -> torch.Tensor:
    """[N, C, H, W] -> every image cut into grid x grid patches, put back in a random order."""
    n, c, h, w = x.shape
    ph, pw = h // grid, w // grid
    p = x[:, :, :ph * grid, :pw * grid].reshape(n, c, grid, ph, grid, pw).permute(0, 2, 4, 1, 3, 5)
    p = p.reshape(n, grid * grid, c, ph, pw)
    idx = torch.stack([torch.randperm(grid * grid, generator=generator) for _ in range(n)])
    p = p[torch.arange(n)[:, None], idx]
    return p.reshape(n, grid, grid, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, ph * grid, pw * grid)


GRID = [(0.0, mn) for mn in (3, 4, 5, 6)] + [(b, mn) for b in (1 / 16, 1 / 8) for mn in (3, 4, 5, 6)]
BASELINE = (0.0, 3)
NEGATIVES = ("CelebA upside down", "CelebA 4x4 patches shuffled", "uniform noise")


def choose(rates: dict, n_neg: int) -> tuple[float, int]:
    """genda's rule (module doc) on ``rates[(border, mn)][set] -> rate``."""
    se = lambda r: (max(r, 1 / n_neg) * (1 - r) / n_neg) ** 0.5  # noqa: E731
    base = rates[BASELINE]
    ok = [k for k in rates if all(rates[k][s] <= base[s] + se(base[s]) for s in NEGATIVES)]
    return max(ok, key=lambda k: (rates[k]["CelebA aligned, centre 64x64 crop"], -sum(rates[k][s] for s in NEGATIVES)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--celeba", type=Path, default=Path("../shared/data/faces/celeba_10k.tar"))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/face_rate_calibration.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    import torchvision.transforms.functional as TF

    import genda.data.embedded as E
    from genda.metrics import facedetect
    from genda.runtime.records import environment

    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    current, _ = E.render_faces(a.n, size=64, generator=g())
    sets = {f"embedded, face square x {E._FACE_SCALE[0]}-{E._FACE_SCALE[1]}": current,
            "embedded, Gaussian blur sigma 3 px (a face-shaped blob)":
                TF.gaussian_blur(current.float(), 13, 3.0).round().clamp(0, 255).to(torch.uint8)}
    if not a.celeba.exists():
        raise SystemExit(f"{a.celeba} not found: the calibration needs the real CelebA crops")
    real = celeba_crops(a.celeba, a.n)
    n_neg = min(300, a.n)
    sets["CelebA aligned, centre 64x64 crop"] = real
    sets["CelebA upside down"] = real[:n_neg].flip(2).contiguous()
    sets["CelebA 4x4 patches shuffled"] = shuffled_patches(real[:n_neg], g())
    sets["uniform noise"] = torch.randint(0, 256, (n_neg, 3, 64, 64), generator=g(), dtype=torch.uint8)
    rates, t = {}, time.time()
    for border, mn in GRID:
        rates[(border, mn)] = {name: facedetect.face_detection_rate(x, min_neighbors=mn, border=border)["face_rate"]
                               for name, x in sets.items()}
        print(f"border {border:.4g} minNeighbors {mn}: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                                     rates[(border, mn)].items()), flush=True)
    chosen = choose(rates, n_neg)
    print(f"chosen: border {chosen[0]:.4g}, minNeighbors {chosen[1]}; genda uses border "
          f"{facedetect.BORDER:.4g}, minNeighbors {facedetect.MIN_NEIGHBORS}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({
        "what": "face-detection rate (fraction of images with >= 1 face) of OpenCV's Haar cascade by mirrored border "
                "(fraction of the side) and minNeighbors, on real faces (CelebA crops), non-faces made from them "
                "(upside down, patch-shuffled), noise and the embedded portraits; 'chosen' by the rule in the script",
        "command": "python benchmarks/ab/face_rate_calibration.py", "n": a.n, "n_negatives": n_neg,
        "rates": {f"border={b:.4g} minNeighbors={mn}": r for (b, mn), r in rates.items()},
        "baseline": f"border={BASELINE[0]:.4g} minNeighbors={BASELINE[1]} (genda until 2026-12-01)",
        "chosen": f"border={chosen[0]:.4g} minNeighbors={chosen[1]}",
        "genda_default": f"border={facedetect.BORDER:.4g} minNeighbors={facedetect.MIN_NEIGHBORS}",
        "seconds": round(time.time() - t, 1), "env": environment(), "date": time.strftime("%Y-%m-%d")},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
