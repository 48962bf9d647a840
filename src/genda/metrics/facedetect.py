"""Face-detection rate of generated face images, with OpenCV's bundled Haar cascade.

A cheap sanity metric for face generators (e.g. 64x64 CelebA-like samples)::

    face_rate = (1 / N) * sum_i 1[ #faces detected in x_i >= 1 ]

Detector: Viola-Jones cascade ``haarcascade_frontalface_default.xml`` shipped with
``opencv-python-headless`` (4.x; OpenCV 5 moved ``CascadeClassifier`` out of the main package).
Each image is converted to grayscale, given a mirrored border of ``border`` x its side on every edge,
upscaled by ``upscale`` (bicubic; the cascade's smallest window is 24x24 px and a 64x64 sample's face is
barely larger) and histogram-equalised; then ``detectMultiScale(scaleFactor=1.1, minNeighbors=min_neighbors,
minSize=(min_face * upscale,) * 2)``: faces smaller than ``min_face`` = 20 px of the sample are not searched
for (a 64x64 CelebA crop's face is ~40 px).

Why the border: a tight 64x64 crop puts the face box (with the margin the cascade was trained with) at or
beyond the image edge, where no search window fits. Calibration on 500 real CelebA 64x64 crops and three
non-face sets (``python benchmarks/ab/face_rate_calibration.py``, ``benchmarks/results/face_rate_calibration.json``):
without a border, minNeighbors 3 (genda until 2026-12-01) finds 87.2 % of the real faces and fires on 7.3 %
of upside-down faces and 3.7 % of patch-shuffled ones (300 each); a 1/16 border (4 px) with minNeighbors 6
finds 90.6 % of the real faces with 7.7 % and 1.7 % on the two negatives and none on noise (the rule: the most real faces found
without more false positives than before, within the 300-image noise of the negatives). Wider borders find
up to 96 % of the real faces but fire on 19-31 % of the upside-down ones. The real floor of every face
metric is reported beside it (``face_rate_real``). The detector is deterministic; the number depends on the
OpenCV version, which is returned.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from genda.errors import ConfigError, DataError

__all__ = ["CASCADE_FILE", "BORDER", "MIN_NEIGHBORS", "face_detection_rate", "detect_faces"]

CASCADE_FILE = "haarcascade_frontalface_default.xml"


def _cv2():
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("face_detection_rate needs opencv-python-headless<5 "
                          "(pip install 'opencv-python-headless<5')") from e
    if not hasattr(cv2, "CascadeClassifier"):  # pragma: no cover
        raise ImportError(f"OpenCV {cv2.__version__} has no CascadeClassifier (removed in OpenCV 5); "
                          "install 'opencv-python-headless<5'")
    return cv2


_local = threading.local()


def _cascade():
    """This thread's cascade: a ``CascadeClassifier`` must not be shared between threads (shared, its
    ``detectMultiScale`` returns wrong counts under concurrency)."""
    clf = getattr(_local, "clf", None)
    if clf is None:
        cv2 = _cv2()
        path = cv2.data.haarcascades + CASCADE_FILE
        clf = cv2.CascadeClassifier(path)
        if clf.empty():
            raise DataError(f"could not load the OpenCV Haar cascade {path}")
        _local.clf = clf
    return clf


BORDER = 1 / 16       # mirrored border, fraction of the image side (4 px of a 64x64 sample)
MIN_NEIGHBORS = 6


def detect_faces(images: Tensor, *, upscale: int = 2, min_neighbors: int = MIN_NEIGHBORS, min_face: int = 20,
                 border: float = BORDER) -> list[int]:
    """Number of faces detected in each image.

    Args:
        images: uint8 ``[N, 3, H, W]`` RGB (or ``[N, 1, H, W]`` gray), any device.
        upscale: integer upscaling factor applied before detection (>= 1).
        min_neighbors: ``detectMultiScale`` ``minNeighbors`` (higher = fewer false positives).
        min_face: smallest face searched for, in pixels of the (not upscaled) image.
        border: mirrored border added on every edge before detection, as a fraction of the image side
            (0 = none; 1/16 = 4 px of a 64x64 image).

    Returns:
        list of ``N`` ints.
    """
    if not isinstance(upscale, int) or upscale < 1:
        raise ConfigError(f"face detection: upscale must be an int >= 1, got {upscale!r}")
    if not isinstance(min_neighbors, int) or min_neighbors < 0:
        raise ConfigError(f"face detection: min_neighbors must be an int >= 0, got {min_neighbors!r}")
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] not in (1, 3):
        raise DataError("face detection: expected images as a uint8 tensor [N, 3, H, W], got "
                        f"{getattr(images, 'dtype', type(images).__name__)} "
                        f"{tuple(getattr(images, 'shape', ()))}")
    if not isinstance(min_face, int) or min_face < 1:
        raise ConfigError(f"face detection: min_face must be an int >= 1, got {min_face!r}")
    if not isinstance(border, (int, float)) or not 0 <= border <= 0.5:
        raise ConfigError(f"face detection: border must be a fraction in [0, 0.5], got {border!r}")
    size = max(24, min_face * upscale)  # the cascade's window is 24x24
    cv2 = _cv2()
    _cascade()  # fail early (one clear error) if the cascade cannot load
    arr = images.detach().cpu().permute(0, 2, 3, 1).numpy()  # [N, H, W, C]

    def count(img: np.ndarray) -> int:
        img = np.ascontiguousarray(img)
        gray = img[..., 0] if img.shape[-1] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        pad = round(border * max(gray.shape))
        if pad:
            gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        if upscale > 1:
            h, w = gray.shape
            gray = cv2.resize(gray, (w * upscale, h * upscale), interpolation=cv2.INTER_CUBIC)
        gray = cv2.equalizeHist(gray)
        faces = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(size, size))
        return int(len(faces))

    # OpenCV releases the GIL: one image per core, one cascade per thread (order kept)
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        return list(pool.map(count, arr, chunksize=16))


def face_detection_rate(images: Tensor, *, upscale: int = 2, min_neighbors: int = MIN_NEIGHBORS,
                        border: float = BORDER) -> dict:
    """Fraction of images in which at least one face is detected.

    Args:
        images: uint8 ``[N, 3, H, W]`` RGB in ``[0, 255]``.
        upscale, min_neighbors, border: see :func:`detect_faces`.

    Returns:
        ``{"face_rate": float in [0, 1], "n": N,
        "detector": "opencv-haar-frontalface-default <cv2 version> border <border> minNeighbors <min_neighbors>"}``.
    """
    counts = detect_faces(images, upscale=upscale, min_neighbors=min_neighbors, border=border)
    n = len(counts)
    if n == 0:
        raise DataError("face detection: got an empty image batch (N = 0)")
    rate = sum(c >= 1 for c in counts) / n
    return {"face_rate": float(rate), "n": n, "detector": detector_name(min_neighbors=min_neighbors, border=border)}


def detector_name(*, min_neighbors: int = MIN_NEIGHBORS, border: float = BORDER) -> str:
    """The detector and settings :func:`face_detection_rate` records (``"detector"``), e.g. to tell whether cached
    counts (:mod:`genda.metrics.fid_reference`) came from the same one."""
    return f"opencv-haar-frontalface-default {_cv2().__version__} border {border:.4g} minNeighbors {min_neighbors}"
