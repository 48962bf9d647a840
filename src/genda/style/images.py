"""The style images, the training content and the held-out photos: every one made from files the installed packages
ship (no download), deterministically.

Style images (:data:`STYLES`, :func:`style_image`; each a centre square crop, resized to the requested side):

============  ==========================================================================================
``pencil``    scikit-learn's ``china.jpg`` through OpenCV's own pencil-sketch filter,
              ``cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)``, its grey sketch
              (the first output) replicated to RGB: the seed's "pencil sketch" style
``cartoon``   matplotlib's sample photo ``grace_hopper.jpg`` through OpenCV's edge-preserving stylisation,
              ``cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)`` (flat colour regions, dark edges)
``relief``    matplotlib's sample elevation model ``jacksboro_fault_dem.npz``, shaded relief:
              ``matplotlib.colors.LightSource(azdeg=315, altdeg=45).shade(z, cmap=gist_earth,
              vert_exag=0.05, blend_mode="overlay")`` (a colour-mapped, hill-shaded terrain texture)
============  ==========================================================================================

Content (:func:`training_content`): the prepared face set's train split (``data/prepared/faces.pt``: the embedded
portrait crops by default, CelebA in the real profile) resized to the training side, plus ``photo_crops`` random
square crops (side 128-320 px) of ``china.jpg`` drawn from ``seed``.

Held out (:func:`heldout_content`, never trained on): ``flower.jpg`` (centre square) and the first ``n_faces``
faces of the face set's test split, resized to the evaluation side.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image
import torch

from genda.choices import STYLES
from genda.data.imageio import resize_uint8

__all__ = ["STYLES", "style_image", "training_content", "heldout_content"]


@lru_cache(maxsize=4)
def _sample_photo(name: str) -> np.ndarray:
    """scikit-learn's sample photo ``name`` (china.jpg, flower.jpg): uint8 RGB ``[427, 640, 3]``."""
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


def _centre_square(rgb: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` -> its centre square as uint8 ``[1, 3, s, s]``, s = min(H, W)."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return torch.from_numpy(rgb[top:top + s, left:left + s].copy()).permute(2, 0, 1)[None].contiguous()


def _pencil() -> np.ndarray:
    import cv2

    bgr = cv2.cvtColor(_sample_photo("china.jpg"), cv2.COLOR_RGB2BGR)
    grey, _colour = cv2.pencilSketch(bgr, sigma_s=60, sigma_r=0.07, shade_factor=0.05)
    return np.repeat(grey[..., None], 3, axis=2)


def _cartoon() -> np.ndarray:
    import cv2

    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:  # not a held-out photo (flower.jpg is)
        rgb = np.asarray(Image.open(f).convert("RGB"))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(cv2.stylization(bgr, sigma_s=60, sigma_r=0.45), cv2.COLOR_BGR2RGB)


def _relief() -> np.ndarray:
    from matplotlib import cbook, colormaps
    from matplotlib.colors import LightSource

    with cbook.get_sample_data("jacksboro_fault_dem.npz") as dem:
        z = np.asarray(dem["elevation"], dtype=np.float64)
    rgba = LightSource(azdeg=315, altdeg=45).shade(z, cmap=colormaps["gist_earth"], vert_exag=0.05,
                                                   blend_mode="overlay")
    return (np.clip(rgba[..., :3], 0, 1) * 255).round().astype(np.uint8)


_MAKERS = {"pencil": _pencil, "cartoon": _cartoon, "relief": _relief}
assert set(_MAKERS) == set(STYLES)


@lru_cache(maxsize=16)
def style_image(name: str, size: int) -> torch.Tensor:
    """Style ``name`` (module docstring) as uint8 ``[1, 3, size, size]``."""
    if name not in _MAKERS:
        raise ValueError(f"unknown style {name!r}; valid: {', '.join(STYLES)}")
    return resize_uint8(_centre_square(_MAKERS[name]()), size)


def _photo_crops(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random square crops (side 128-320 px) of china.jpg, resized: uint8 ``[n, 3, size, size]``."""
    photo = torch.from_numpy(_sample_photo("china.jpg").copy()).permute(2, 0, 1)
    h, w = photo.shape[1:]
    out = torch.empty((n, 3, size, size), dtype=torch.uint8)
    for i in range(n):
        s = int(torch.randint(128, 321, (), generator=generator))
        top = int(torch.randint(0, h - s + 1, (), generator=generator))
        left = int(torch.randint(0, w - s + 1, (), generator=generator))
        out[i] = resize_uint8(photo[None, :, top:top + s, left:left + s].contiguous(), size)[0]
    return out


def training_content(faces_train: torch.Tensor, photo_crops: int, size: int, seed: int) -> torch.Tensor:
    """The training content pool, uint8 ``[N_faces + photo_crops, 3, size, size]`` (module docstring)."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([resize_uint8(faces_train, size), _photo_crops(photo_crops, size, g)])


def heldout_content(faces_test: torch.Tensor, n_faces: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """(uint8 ``[1 + n_faces, 3, size, size]``, names): flower.jpg, then test faces ``face0``, ``face1``, ..."""
    flower = resize_uint8(_centre_square(_sample_photo("flower.jpg")), size)
    faces = resize_uint8(faces_test[:n_faces], size)
    return torch.cat([flower, faces]), ["flower"] + [f"face{i}" for i in range(len(faces))]
