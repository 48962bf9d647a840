"""FID / KID reference features of one real data kind, extracted once and shared by every evaluation.

Every ``evaluate_gan@<method>`` compares its samples with the same real test faces, and reports the same
real-vs-real floor (held-out real faces against those test faces); every digit generator likewise against the
real test digits of its domain.  Extracting those real features in each evaluation stage repeated the same
work (two feature passes and a second FID per stage: ~6 s of a ~30 s stage on 2 cores).  The
``fid_reference@<kind>`` stage extracts them once::

    features/fid/<kind>.pt = {"reference": {layer: float32 [M, D]},     # the FID/KID reference split
                              "held_out":  {layer: float32 [K, D]},     # the first K held-out real images
                              "n_held_out_total": int,                  # held-out images available
                              "extractor": str, "weights": str, "is_fallback": bool,
                              "data": str}                              # e.g. "faces:test", "digits:mnistm"

and for faces also ``"face_counts"`` (faces OpenCV's cascade finds in each of the first 500 held-out images) and
``"face_detector"`` (its name and settings): the ``face_rate_real`` every face evaluation reports beside its
samples' rate, detected once here (:func:`real_face_counts`, :func:`load_real_face_rate`);
with ``K`` = the largest sample count the params will evaluate (``sample.n_images``,
``cond_sample.n_images``, ``10 * cond_sample.n_per_class``).  An evaluation loads it as
:class:`~genda.metrics.fidelity.Features` and only extracts its generated images.  A cache made with another
extractor (e.g. Inception weights appeared in the torch hub cache after it was written) or too few held-out
images for a sample set is not used: :func:`load_reference` says why and the evaluation extracts from the
images itself, so a number never silently mixes two extractors.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from genda.runtime.checkpoint import load_weights
from genda.errors import DataError
from genda.metrics.fidelity import ExtractorChoice, Features, extract_features, metric_layers

__all__ = ["build_reference", "save_reference", "load_reference", "floor_size", "real_face_counts",
           "load_real_face_rate", "REAL_FACES"]

REAL_FACES = 500    # held-out real faces whose detection rate (face_rate_real) a face evaluation reports


def floor_size(params: dict) -> int:
    """Held-out images to cache: the largest generated set an evaluation of these params compares."""
    return max(params["sample"]["n_images"], params["cond_sample"]["n_images"],
               10 * params["cond_sample"]["n_per_class"])


def build_reference(reference: Tensor, held_out: Tensor, choice: ExtractorChoice, *, data: str, n_held_out: int,
                    batch_size: int = 100, device: str = "cpu") -> dict:
    """Features (FID and KID layers of ``choice``) of the uint8 ``reference`` images and of the first
    ``n_held_out`` ``held_out`` images, as the dict :func:`save_reference` writes; ``data`` names the real set
    (``"faces:<split>"``, ``"digits:<domain>"``): an evaluation of other data does not use the cache."""
    layers = set(metric_layers(choice, isc=False).values())
    ref = extract_features(reference, choice, layers, batch_size=batch_size, device=device, what="reference")
    held = extract_features(held_out[:n_held_out], choice, layers, batch_size=batch_size, device=device,
                            what="held-out")
    return {"reference": ref.features, "held_out": held.features, "n_held_out_total": int(len(held_out)),
            "extractor": choice.name, "weights": choice.weights, "is_fallback": bool(choice.is_fallback),
            "data": data}


def save_reference(cache: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(cache, tmp)
    tmp.replace(path)


def load_reference(path: Path, choice: ExtractorChoice, n_generated: int, *,
                   data: str) -> tuple[Features, Features] | None:
    """``(reference, held_out)`` :class:`Features` from ``path`` for an evaluation of ``n_generated`` images
    of real set ``data`` with extractor ``choice``; None (and a printed reason) if the cache is missing, is of
    other data, was made with another extractor, or holds fewer held-out images than the floor needs."""
    path = Path(path)
    if not path.exists():
        print(f"[fid_reference] {path} not found: extracting the reference features here")
        return None
    try:
        c = load_weights(path)
        ref = Features(c["reference"], c["extractor"], c["weights"])
        held = Features(c["held_out"], c["extractor"], c["weights"])
        total, have = int(c["n_held_out_total"]), c["data"]
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: not a fid_reference cache ({type(e).__name__}: {e}); rerun `dvc repro "
                        "fid_reference`") from e
    if have != data:
        print(f"[fid_reference] {path} holds {have} features, these samples are compared with {data}: extracting "
              "the reference features here")
        return None
    if not ref.matches(choice):
        print(f"[fid_reference] {path} holds {ref.extractor} ({ref.weights}) features, this evaluation uses "
              f"{choice.name} ({choice.weights}): extracting the reference features here")
        return None
    need = set(metric_layers(choice, isc=False).values())
    if not need <= set(ref.features) or not need <= set(held.features):
        print(f"[fid_reference] {path} lacks feature layer(s) {sorted(need - set(ref.features))}: extracting the "
              "reference features here")
        return None
    if len(held) < min(n_generated, total):
        print(f"[fid_reference] {path} holds {len(held)} held-out images, the floor of {n_generated} samples "
              "needs more: extracting the reference features here")
        return None
    return ref, held


def real_face_counts(held_out: Tensor) -> dict:
    """``{"face_counts": [faces found in each of the first REAL_FACES images], "face_detector": name}`` of the
    uint8 held-out real faces ``[N, 3, H, W]`` (:func:`genda.metrics.facedetect.detect_faces`, default settings),
    to add to the faces cache."""
    from genda.metrics.facedetect import detect_faces, detector_name

    return {"face_counts": detect_faces(held_out[:REAL_FACES]), "face_detector": detector_name()}


def load_real_face_rate(path: Path, n: int, *, data: str) -> float | None:
    """The face-detection rate of the first ``n`` held-out real faces from the cache at ``path`` -- what
    ``face_detection_rate(held_out[:n])`` returns -- or None when the cache is missing, holds other data, has no
    counts or fewer than ``n``, or came from another detector or detector settings (then the caller detects)."""
    from genda.metrics.facedetect import detector_name

    path = Path(path)
    if not path.exists():
        return None
    c = load_weights(path)
    if not isinstance(c, dict):
        return None
    counts = c.get("face_counts")
    if c.get("data") != data or counts is None or len(counts) < n or n < 1 \
            or c.get("face_detector") != detector_name():
        return None
    return float(sum(k >= 1 for k in counts[:n]) / n)
