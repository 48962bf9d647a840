"""Course-style prediction: a folder of target-domain digit images -> `image_name,label` CSV.

    python -m genda.da.predict models/da/mnistm-usps/dann/seed0.pt path/to/images out.csv [--size 28]

Images (PNG/JPG, grey or colour, any size) are converted to RGB and resized to the training size.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genda.errors import DataError, GendaError

EXTS = {".png", ".jpg", ".jpeg", ".bmp"}


def load_folder(folder: Path, size: int) -> tuple[torch.Tensor, list[str]]:
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTS)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(EXTS))}) in {folder}")
    arrs = []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                arrs.append(np.asarray(im))
        except Exception as e:
            raise DataError(f"cannot read image {f}: {e}") from None
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous(), [f.name for f in files]


def predict_folder(model_path: Path, folder: Path, out_csv: Path, size: int = 28) -> int:
    from genda.runtime.device import get_device
    from genda.da.train import load_da_model
    from genda.data.tensors import predict_labels

    device = get_device()
    model = load_da_model(model_path, device)
    x, names = load_folder(folder, size)
    pred = predict_labels(model, x, device, head="classify")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_name", "label"])
        w.writerows(zip(names, pred.tolist()))
    return len(names)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("images", type=Path)
    ap.add_argument("out_csv", type=Path)
    ap.add_argument("--size", type=int, default=28)
    a = ap.parse_args(argv)
    try:
        n = predict_folder(a.model, a.images, a.out_csv, a.size)
    except GendaError as e:
        print(f"genda: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {n} predictions to {a.out_csv}")


if __name__ == "__main__":
    main()
