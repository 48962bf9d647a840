"""PNG folders in the course format, and sample grids (torchvision.utils)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genda.errors import DataError


def save_pngs(images: torch.Tensor, folder: str | Path, names: list[str] | None = None) -> list[Path]:
    """uint8 [N,3,H,W] -> folder/<name>.png (default names 0000.png ...). The folder is emptied first."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    names = names or [f"{i:04d}" for i in range(len(images))]
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    paths = []
    for a, name in zip(arr, names):
        p = folder / f"{name}.png"
        Image.fromarray(a).save(p, compress_level=1)
        paths.append(p)
    return paths


def read_pngs(folder: str | Path) -> tuple[torch.Tensor, list[str]]:
    """All *.png of a folder (sorted) -> (uint8 [N,3,H,W], file stems). DataError naming a bad file."""
    folder = Path(folder)
    files = sorted(folder.glob("*.png"))
    if not files:
        raise DataError(f"no PNG images in {folder}")
    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                out.append(np.asarray(im.convert("RGB")))
        except Exception as e:
            raise DataError(f"cannot read image {f}: {e}") from None
    shapes = {a.shape for a in out}
    if len(shapes) != 1:
        raise DataError(f"images in {folder} have different sizes: {sorted(shapes)[:3]}")
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous(), [f.stem for f in files]


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """uint8 [N,3,H,W] -> one PNG grid via torchvision.utils.make_grid."""
    from torchvision.utils import make_grid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = make_grid(images.float() / 255.0, nrow=nrow, padding=padding, pad_value=1.0)
    Image.fromarray((grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()).save(path)
    return path
