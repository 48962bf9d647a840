"""Turn the configured dataset source into prepared tensor files (see :mod:`genda.data.store`)."""
from __future__ import annotations

from pathlib import Path

import torch

from genda.data.imageio import reframe_uint8
from genda.data.sources import DigitSplits, load_digits, load_faces, npz_face_attributes
from genda.data.face_attrs import face_attrs_path
from genda.data.store import digits_path, faces_path, save_prepared
from genda.runtime.records import write_json


def mnist_framed(s: DigitSplits, size: int) -> DigitSplits:
    """USPS in MNIST's framing: each digit (which fills its frame) shrunk to a 20/28 box, centred on black."""
    box = round(size * 20 / 28)
    return DigitSplits(reframe_uint8(s.x_train, box), s.y_train, reframe_uint8(s.x_test, box), s.y_test,
                       s.description + f"; MNIST framing: shrunk to {box}x{box}, centred on {size}x{size}")


def prepare_all(data: dict, *, root: str, seed: int, out: Path | None = None, face_attrs: str | None = None) -> dict:
    """Prepare every domain in `data["domains"]` and the face set; returns the manifest it writes.

    ``face_attrs`` (``data.face_attrs`` resolved): an attribute table for the ``npz`` faces, written row for row
    with the prepared faces to ``face_attrs.pt`` (:func:`genda.data.store.load_face_attributes` reads it first)."""
    out = out or Path(".")
    manifest = {"source": data["source"], "digits": {}, "faces": {}}
    for domain in data["domains"]:
        s = load_digits(data["source"], domain, root=root, size=data["digit_size"], seed=seed,
                        max_train=data["max_train"], max_test=data["max_test"])
        if domain == "usps" and data.get("usps_frame", "fill") == "mnist":
            s = mnist_framed(s, data["digit_size"])
        save_prepared({"x_train": s.x_train.contiguous(), "y_train": s.y_train, "x_test": s.x_test.contiguous(),
                       "y_test": s.y_test, "description": s.description}, digits_path(domain, out))
        manifest["digits"][domain] = {
            "train": len(s.y_train), "test": len(s.y_test), "shape": list(s.x_train.shape[1:]),
            "class_counts_train": torch.bincount(s.y_train, minlength=10).tolist(),
            "description": s.description}
        print(f"[prepare] {domain}: {len(s.y_train)} train / {len(s.y_test)} test  {tuple(s.x_train.shape[1:])}")
    if not data.get("faces", True):
        write_json(manifest, out / "data/prepared/manifest.json")
        return manifest
    f = load_faces(data["source"], root=root, size=data["face_size"], crop=data["face_crop"], seed=seed,
                   max_train=data["max_faces"], test_fraction=data["face_test_fraction"])
    save_prepared({"x_train": f.x_train.contiguous(), "x_test": f.x_test.contiguous(), "attrs_train": f.attrs_train,
                   "attrs_test": f.attrs_test, "attr_names": list(f.attr_names), "description": f.description},
                  faces_path(out))
    manifest["faces"] = {"train": len(f.x_train), "test": len(f.x_test), "shape": list(f.x_train.shape[1:]),
                         "attr_names": list(f.attr_names), "description": f.description}
    print(f"[prepare] faces: {len(f.x_train)} train / {len(f.x_test)} test  {tuple(f.x_train.shape[1:])}")
    if face_attrs:
        a = npz_face_attributes(face_attrs, root=root, seed=seed, max_train=data["max_faces"],
                                test_fraction=data["face_test_fraction"])
        if len(a["attrs_train"]) != len(f.x_train) or len(a["attrs_test"]) != len(f.x_test):
            raise AssertionError("face attributes and faces differ in length")  # one split function: cannot happen
        save_prepared(a, face_attrs_path(out))
        manifest["faces"]["attrs_table"] = a["table"]
        manifest["faces"]["attr_names"] = a["attr_names"]
        print(f"[prepare] face attributes: {len(a['attr_names'])} from {a['table']}")
    write_json(manifest, out / "data/prepared/manifest.json")
    return manifest
