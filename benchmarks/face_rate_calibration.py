"""Face-detection rate (genda.metrics.facedetect, OpenCV Haar cascade) on real and non-face images: what a perfect
generator scores and how easily the cascade fires on blurry face-shaped blobs.

    python benchmarks/face_rate_calibration.py [--celeba ../shared/data/faces/celeba_10k.tar] [--n 500]

Sets: the embedded portrait crops at the framing used until 2026-11-30 (face square x 0.8-1.0) and at the current
one (x 1.1-1.3, CelebA-like), the current ones Gaussian-blurred (sigma 3 px: a face-coloured blob), and CelebA
centre 64x64 crops of the aligned 89x109 images when the tar is there. One thread; writes
benchmarks/results/face_rate_calibration.json.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--celeba", type=Path, default=Path("../shared/data/faces/celeba_10k.tar"))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/face_rate_calibration.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    import torchvision.transforms.functional as TF

    import genda.data.embedded as E
    from genda.metrics.facedetect import face_detection_rate
    from genda.runtime import environment

    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    current, _ = E.render_faces(a.n, size=64, generator=g())
    sets = {f"embedded, face square x {E._FACE_SCALE[0]}-{E._FACE_SCALE[1]} (current)": current}
    scale, region = E._FACE_SCALE, E._FACE_REGION
    try:
        E._FACE_SCALE, E._FACE_REGION = (0.8, 1.0), 1.2
        E._face_region.cache_clear()
        sets["embedded, face square x 0.8-1.0 (until 2026-11-30)"] = E.render_faces(a.n, size=64, generator=g())[0]
    finally:
        E._FACE_SCALE, E._FACE_REGION = scale, region
        E._face_region.cache_clear()
    sets["embedded current, Gaussian blur sigma 3 px (a face-shaped blob)"] = \
        TF.gaussian_blur(current.float(), 13, 3.0).round().clamp(0, 255).to(torch.uint8)
    if a.celeba.exists():
        sets["CelebA aligned, centre 64x64 crop"] = celeba_crops(a.celeba, a.n)
    rows = {}
    for name, x in sets.items():
        t = time.time()
        rows[name] = {mn: face_detection_rate(x, min_neighbors=mn)["face_rate"] for mn in (3, 5, 8)}
        print(f"{name}: {rows[name]} ({time.time() - t:.1f} s)", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({
        "what": "face-detection rate (fraction of images with >= 1 face) by OpenCV's Haar cascade, by minNeighbors; "
                "genda uses min_neighbors=3",
        "command": "python benchmarks/face_rate_calibration.py", "n": a.n, "rates": rows, "env": environment(),
        "date": time.strftime("%Y-%m-%d")}, indent=2) + "\n")


if __name__ == "__main__":
    main()
