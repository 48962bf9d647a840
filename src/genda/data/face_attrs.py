"""The face set's attribute table as the pipeline reads it: ``data/prepared/face_attrs.pt`` when the params name a
table (``data.face_attrs``, e.g. CelebA's ``list_attr_celeba.txt``), else the attributes inside ``faces.pt`` (a table
found beside the faces, or the embedded faces' own).

    face_attrs.pt  {"attrs_train": float32 [N_train, K] of 0/1, "attrs_test": [N_test, K], "attr_names": [K],
                    "table": the name of the file it came from}

rows in the order of ``faces.pt``'s ``x_train`` / ``x_test`` (both written by the prepare stage).
"""
from __future__ import annotations

from pathlib import Path

import torch

from genda.data.store import PREPARED, faces_path, load_prepared
from genda.errors import DataError
from genda.runtime.checkpoint import load_weights


def face_attrs_path(root: Path | None = None) -> Path:
    return (root or Path(".")) / PREPARED / "face_attrs.pt"


def load_face_attributes(root: Path | None = None, faces: dict | None = None) -> dict:
    """``{"attrs_train", "attrs_test", "attr_names", "source"}`` of the prepared faces under ``root``; the attrs are
    None (and ``attr_names`` empty) when the face set has no table. ``faces``: ``faces.pt`` already loaded.

    DataError naming the file when a table's shape does not fit the images or its names."""
    root = root or Path(".")
    faces = faces if faces is not None else load_prepared(faces_path(root), "faces")
    path = face_attrs_path(root)
    if path.exists():
        d, source = load_weights(path), str(path)
    else:
        d, source = faces, str(faces_path(root))
    out = {"attrs_train": d.get("attrs_train"), "attrs_test": d.get("attrs_test"),
           "attr_names": list(d.get("attr_names") or []), "source": source}
    for split in ("train", "test"):
        a, x = out[f"attrs_{split}"], faces[f"x_{split}"]
        if a is None:
            continue
        if not torch.is_tensor(a) or a.ndim != 2 or len(a) != len(x) or a.shape[1] != len(out["attr_names"]):
            raise DataError(f"{source}: attrs_{split} is {tuple(getattr(a, 'shape', ()))} but there are {len(x)} "
                            f"{split} faces and {len(out['attr_names'])} attr_names; rerun `dvc repro prepare`")
    if not out["attr_names"] or out["attrs_train"] is None or out["attrs_train"].shape[1] == 0:
        out.update(attrs_train=None, attrs_test=None, attr_names=[])
    return out


def tag_groups(attrs: torch.Tensor, names: list[str], groups: dict[str, list[str]] | None, *,
               where: str = "tag_groups") -> dict:
    """Tags from a 0/1 attribute table ``attrs`` [N, K] (columns ``names``), one long index per group.

    ``groups`` maps a group name to attributes: one attribute makes a 2-way group (0 = off, 1 = on); several
    make a k-way group whose value is the index of the one attribute that is on (e.g. hair colour:
    ``[Black_Hair, Blond_Hair, Brown_Hair, Gray_Hair]``); a face with none or several of them on has no value
    there and is left out (``keep``). ``groups`` None: every attribute its own 2-way group.

    Returns ``{"tags": long [N, G], "keep": bool [N], "dims": [G], "names": [G group names],
    "values": [G lists of value names]}``. ConfigError naming ``where`` for an unknown attribute or an empty group."""
    from genda.errors import ConfigError

    if groups is None:
        groups = {n: [n] for n in names}
    tags, keep, dims, values = [], torch.ones(len(attrs), dtype=torch.bool), [], []
    on = attrs.float() > 0.5
    for g, members in groups.items():
        if not members:
            raise ConfigError(f"params: '{where}.{g}' lists no attribute")
        unknown = [a for a in members if a not in names]
        if unknown:
            raise ConfigError(f"params: '{where}.{g}' names {', '.join(map(repr, unknown))}, not an attribute of the "
                              f"faces; available: {', '.join(names)}")
        cols = on[:, [names.index(a) for a in members]]
        if len(members) == 1:
            tags.append(cols[:, 0].long()); dims.append(2); values.append([f"no {members[0]}", members[0]])
        else:
            keep &= cols.sum(1) == 1
            tags.append(cols.long().argmax(1)); dims.append(len(members)); values.append(list(members))
    return {"tags": torch.stack(tags, 1), "keep": keep, "dims": dims, "names": list(groups), "values": values}
