"""Evaluate a folder of generated faces the course's way: FID and IS (and KID) against real faces, beside
the real-vs-real floor (as many held-out real faces against the same reference) that bounds what a perfect
generator could score with this extractor and sample size."""
from __future__ import annotations

from pathlib import Path

from genda.runtime.paths import resolve_path
from genda.data.store import faces_path, load_prepared
from genda.data.pngs import read_pngs
from genda.runtime.device import get_device
from genda.runtime.records import write_metrics


def face_reference(faces: dict, fid_reference: str) -> tuple:
    """(reference, held-out real) faces: the split FID is computed against (``"test"`` or ``"train"``) and
    the other split, whose images make the real-vs-real floor."""
    return ((faces["x_test"], faces["x_train"]) if fid_reference == "test"
            else (faces["x_train"], faces["x_test"]))


def evaluate_face_samples(folder: Path, ev: dict, out: Path | None = None,
                          reference_cache: Path | None = None) -> dict:
    """Metrics of the PNGs in ``folder``: FID / IS / KID against the real faces (``ev["fid_reference"]`` split),
    the real-vs-real floor, the face-detection rate of the samples and (``face_rate_real``) of up to 500 held-out
    real faces (counted once by the ``fid_reference@faces`` stage when ``reference_cache`` has them), the rate a
    perfect generator would score (OpenCV's cascade also fires on some blurry face-like
    blobs, so read the rate beside FID).  ``reference_cache``: the ``fid_reference@faces`` stage's
    features (:mod:`genda.metrics.fid_reference`), used when they match this evaluation's extractor."""
    from genda.metrics.facedetect import face_detection_rate
    from genda.metrics.fid_reference import REAL_FACES, load_real_face_rate
    from genda.metrics.fidelity import choose_extractor, fidelity_with_floor

    gen, _ = read_pngs(folder)
    weights = str(resolve_path(ev["inception_weights"])) if ev["inception_weights"] else None
    choice = choose_extractor(weights, allow_fallback=ev["allow_fallback_extractor"])
    cached = None
    if reference_cache is not None:
        from genda.metrics.fid_reference import load_reference

        cached = load_reference(reference_cache, choice, len(gen), data=f"faces:{ev['fid_reference']}")
    real_ref, real_held_out = face_reference(load_prepared(faces_path(), kind="faces"), ev["fid_reference"])
    ref, held_out = cached if cached else (real_ref, real_held_out)
    kw = dict(extractor=choice, batch_size=ev["batch_size"], device=str(get_device()),
              kid_subset_size=max(2, min(ev["kid_subset_size"], len(gen), len(ref))))
    m = fidelity_with_floor(gen, ref, held_out, **kw)
    try:
        m.update(face_detection_rate(gen))
        n_real = min(len(gen), REAL_FACES)
        rate = (load_real_face_rate(reference_cache, n_real, data=f"faces:{ev['fid_reference']}")
                if reference_cache is not None else None)
        m["face_rate_real"] = face_detection_rate(real_held_out[:n_real])["face_rate"] if rate is None else rate
    except ImportError as e:  # e.g. OpenCV 5 without the Haar cascade: record why, keep the other metrics
        m.update(face_rate=None, detector=f"unavailable: {e}")
    m["fid_reference"] = ev["fid_reference"]
    if out:
        write_metrics(m, out)
    print("[evaluate] " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()))
    return m
