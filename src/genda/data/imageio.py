"""Small image helpers shared by the dataset sources: decode, crop, resize, subset.

Every function works on uint8 data and returns uint8 data, so a loaded dataset is stored exactly
as it will be fed to the models (the float conversion happens per batch, later).

Resizing uses antialiased bilinear interpolation on float32 followed by rounding:

.. math::  y = \\operatorname{round}(\\operatorname{interp}_{aa}(x)) \\in \\{0, \\dots, 255\\}

which is what ``torchvision.transforms.v2.Resize(antialias=True)`` does on uint8 tensors.
"""
from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from genda.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")

_RESIZE_CHUNK = 2048  # images per interpolate call: bounds the float32 copy (~2048*3*64*64*4 B)


# --------------------------------------------------------------------------- tensors
def nhwc_to_nchw3(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[N,H,W,C]`` with ``C in {1,3}`` -> contiguous uint8 ``[N,3,H,W]`` (grey is replicated)."""
    t = torch.as_tensor(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    t = t.permute(0, 3, 1, 2)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t.contiguous()


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 ``[N,C,H,W]`` to ``[N,C,size,size]`` (antialiased bilinear, rounded).

    Returns ``x`` itself when it already has the target size; works in chunks so that a large
    dataset never needs one float32 copy of itself.
    """
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise TypeError(f"resize_uint8 expects uint8 [N,C,H,W], got {x.dtype} {tuple(x.shape)}")
    if x.shape[-2:] == (size, size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8, device=x.device)
    for i in range(0, x.shape[0], _RESIZE_CHUNK):
        chunk = x[i:i + _RESIZE_CHUNK].float()
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        out[i:i + _RESIZE_CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def reframe_uint8(x: torch.Tensor, box: int) -> torch.Tensor:
    """Shrink uint8 ``[N,C,S,S]`` images to ``box``x``box`` and centre them on a zero background of the
    original size ``S`` (e.g. USPS, whose digits fill their 16x16 frame, into MNIST's 20-in-28 framing)."""
    size = x.shape[-1]
    if not 0 < box <= size:
        raise ValueError(f"reframe box {box} must be in 1..{size}")
    out = torch.zeros_like(x)
    top = (size - box) // 2
    out[..., top:top + box, top:top + box] = resize_uint8(x, box)
    return out


def center_crop_box(height: int, width: int, crop: int) -> tuple[int, int, int]:
    """Top, left and side of the centred ``crop``x``crop`` square of an ``height``x``width`` image.

    When the image is smaller than ``crop`` in either dimension the largest centred square
    (side ``min(height, width)``) is used instead.
    """
    side = crop if (height >= crop and width >= crop) else min(height, width)
    return (height - side) // 2, (width - side) // 2, side


def derive_seed(seed: int, *parts: str) -> int:
    """A stable 63-bit seed for ``(seed, *parts)``: independent streams per purpose, and (unlike
    ``hash()``) the same in every Python process."""
    key = "/".join([str(int(seed)), *parts]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def subset_indices(n: int, k: int | None, seed: int) -> torch.Tensor:
    """Sorted int64 indices of a seeded random subset of size ``min(k, n)`` of ``range(n)``.

    ``k=None`` (or ``k >= n``) keeps everything.  The subset is the first ``k`` entries of one
    seeded permutation, so for a fixed seed a smaller ``k`` gives a subset of a larger one.
    """
    if k is None or k >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g)[:k].sort().values


def check_positive(name: str, value, *, allow_none: bool = False) -> None:
    """ConfigError unless ``value`` is an int >= 1 (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer{' or None' if allow_none else ''}, "
                          f"got {value!r}")


# --------------------------------------------------------------------------- decoding
def decode_rgb(data: bytes | str | os.PathLike, name: str) -> np.ndarray:
    """Decode one PNG/JPEG (bytes or a path) into uint8 ``[H,W,3]`` RGB.

    Raises DataError naming ``name`` when PIL cannot read it.
    """
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        with Image.open(src) as im:
            im.load()
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.array(im, dtype=np.uint8)  # a writable copy (torch.from_numpy needs one)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot decode image {name}: {e}") from None


def decode_crop(data: bytes | str | os.PathLike, name: str, crop: int | None) -> np.ndarray:
    """Decode and centre-crop (see :func:`center_crop_box`) -> uint8 ``[side,side,3]``.

    ``crop=None`` keeps the whole image (``[H,W,3]``)."""
    img = decode_rgb(data, name)
    if crop is None:
        return img
    top, left, side = center_crop_box(img.shape[0], img.shape[1], crop)
    return img[top:top + side, left:left + side]


def load_images(items: Sequence, read: Callable[[object], tuple[bytes | str, str]], *,
                crop: int | None, size: int, threads: int | None = None,
                chunk: int = 1024) -> torch.Tensor:
    """Decode, centre-crop and resize many images -> uint8 ``[N,3,size,size]`` (in ``items`` order).

    ``read(item)`` returns ``(bytes_or_path, display_name)``; it runs in the calling thread (so it
    may read from a shared tar file), in chunks of ``chunk`` items.  Decoding runs in a small
    thread pool (PIL releases the GIL while it decodes); crops of equal shape are resized together.
    """
    n = len(items)
    out = torch.empty((n, 3, size, size), dtype=torch.uint8)
    if n == 0:
        return out
    threads = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for start in range(0, n, chunk):
            payloads = [read(item) for item in items[start:start + chunk]]
            crops = list(pool.map(lambda p: decode_crop(p[0], p[1], crop), payloads))
            _resize_into(out, start, crops, size)
    return out


def _resize_into(out: torch.Tensor, start: int, crops: list[np.ndarray], size: int) -> None:
    """Write HWC crops (possibly of different shapes) into ``out[start:...]``, resizing those that
    are not ``size``x``size`` (grouped by shape so each group is one interpolate call)."""
    by_shape: dict[tuple, list[int]] = {}
    for i, c in enumerate(crops):
        if c.shape[:2] == (size, size):
            out[start + i].copy_(torch.from_numpy(c).permute(2, 0, 1))
        else:
            by_shape.setdefault(c.shape, []).append(i)
    for idx in by_shape.values():
        resized = resize_uint8(nhwc_to_nchw3(np.stack([crops[i] for i in idx])), size)
        out[torch.tensor(idx) + start] = resized


def list_image_files(folder: Path) -> list[Path]:
    """All PNG/JPEG files under ``folder`` (recursive), sorted by relative path."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def is_tarball(path: Path) -> bool:
    """True for ``.tar``, ``.tar.gz`` and ``.tgz`` file names."""
    return path.name.lower().endswith(TAR_SUFFIXES)
