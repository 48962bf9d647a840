"""Evaluate a folder of generated faces the course's way: FID and IS (and KID) against real faces."""
from __future__ import annotations

from pathlib import Path

from genda.config import resolve_path
from genda.data.store import faces_path, load_prepared
from genda.images import read_pngs
from genda.runtime import get_device
from genda.stage import write_json


def evaluate_face_samples(folder: Path, ev: dict, out: Path | None = None) -> dict:
    from genda.metrics.facedetect import face_detection_rate
    from genda.metrics.fidelity import compute_fidelity

    gen, _ = read_pngs(folder)
    faces = load_prepared(faces_path(), kind="faces")
    ref = faces["x_test"] if ev["fid_reference"] == "test" else faces["x_train"]
    weights = str(resolve_path(ev["inception_weights"])) if ev["inception_weights"] else None
    device = get_device()
    m = compute_fidelity(gen, ref, inception_weights=weights, allow_fallback=ev["allow_fallback_extractor"],
                         batch_size=ev["batch_size"], device=str(device),
                         kid_subset_size=min(ev["kid_subset_size"], len(gen), len(ref)))
    try:
        m.update(face_detection_rate(gen))
    except ImportError as e:  # e.g. OpenCV 5 without the Haar cascade: record why, keep the other metrics
        m.update(face_rate=None, detector=f"unavailable: {e}")
    m["fid_reference"] = ev["fid_reference"]
    if out:
        write_json(m, out)
    print("[evaluate] " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()))
    return m
