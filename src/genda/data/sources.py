"""Dataset sources: turn a dataset on disk (or the embedded one) into in-memory uint8 tensors.

Two entry points, one per kind of data:

* :func:`load_digits` -> :class:`DigitSplits`: ``x`` uint8 ``[N,3,S,S]`` (grey is replicated to
  three channels, the course's 28x28x3 convention), ``y`` int64 ``[N]`` in ``0..9``.
* :func:`load_faces` -> :class:`FaceSplits`: ``x`` uint8 ``[N,3,S,S]`` after a centre
  ``crop``x``crop`` crop, optional 0/1 attributes float32 ``[N,K]``.

Sources (``source=``):

============  ===================================================================================
embedded      built from data shipped with scikit-learn / matplotlib (:mod:`genda.data.embedded`);
              ``root`` is ignored.  No download.
npz           ``root/digits/{domain}_{train,test}.npz`` (``x`` uint8 N x H x W x C, ``y`` int) and
              ``root/faces/`` holding a tarball or a folder of JPG/PNG (``/work/shared/data``'s
              format); the files may also sit directly in ``root``.
course        NTU DLCV HW2 layout: ``root/hw2_data/digits/{domain}/{data/*.png, train.csv,
              test.csv}`` and ``root/hw2_data/face/{train,test}/*.png`` (+ optional CSVs).
torchvision   ``torchvision.datasets`` MNIST / USPS / SVHN downloaded into ``root``; SVHN's
              ``{train,test}_32x32.mat`` are read directly when present.  CelebA for faces.
============  ===================================================================================

Resizing is antialiased bilinear on float followed by rounding back to uint8
(:func:`genda.data.imageio.resize_uint8`).  ``max_train``/``max_test`` keep a seeded random
subset (sorted, so file order is kept); the subset is drawn *before* decoding, so a small cap on
a large image folder is cheap.

Bad data never gives a silently wrong result: a missing file, a malformed array, a label outside
``0..9``, an undecodable image or a CSV row naming a missing image raises
:class:`~genda.errors.DataError` whose message names the offending path.  A bad option raises
:class:`~genda.errors.ConfigError` listing the valid choices.
"""
from __future__ import annotations

import csv
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genda.data.embedded import embedded_digits, embedded_faces
from genda.data.imageio import (IMAGE_SUFFIXES, check_positive, derive_seed, is_tarball,
                                list_image_files, load_images, resize_uint8, subset_indices)
from genda.errors import ConfigError, DataError

DIGIT_DOMAINS = ("mnist", "mnistm", "usps", "svhn")
SOURCES = ("embedded", "npz", "course", "torchvision")
SPLITS = ("train", "test")
ATTR_TABLES = ("list_attr_celeba.csv", "list_attr_celeba.txt")


@dataclass
class DigitSplits:
    """One digit domain, both splits.  ``x_*`` uint8 ``[N,3,S,S]``, ``y_*`` int64 ``[N]`` in 0..9."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    description: str


@dataclass
class FaceSplits:
    """Face images, both splits.  ``x_*`` uint8 ``[N,3,S,S]``; ``attrs_*`` float32 ``[N,K]`` of 0/1
    (column ``k`` named ``attr_names[k]``) or ``None`` when the source has no attribute table."""

    x_train: torch.Tensor
    x_test: torch.Tensor
    attrs_train: torch.Tensor | None
    attrs_test: torch.Tensor | None
    attr_names: list[str] = field(default_factory=list)
    description: str = ""


# =========================================================================== public API
def load_digits(source: str, domain: str, *, root: str | os.PathLike | None, size: int = 28,
                seed: int = 0, max_train: int | None = None,
                max_test: int | None = None) -> DigitSplits:
    """Load one digit domain from ``source`` as uint8 ``[N,3,size,size]`` plus int64 labels.

    ``seed`` fixes the embedded rendering and the ``max_train``/``max_test`` subsets.
    """
    _check_choice("data source", source, SOURCES)
    _check_choice("digit domain", domain, DIGIT_DOMAINS)
    check_positive("size", size)
    check_positive("max_train", max_train, allow_none=True)
    check_positive("max_test", max_test, allow_none=True)

    if source == "embedded":
        xtr, ytr, xte, yte, desc = embedded_digits(domain, size=size, seed=seed)
        parts = {}
        for split, x, y, cap in (("train", xtr, ytr, max_train), ("test", xte, yte, max_test)):
            keep = subset_indices(len(y), cap, derive_seed(seed, "subset", domain, split))
            parts[split] = (x[keep], y[keep], len(y))
    else:
        base = _require_root(root, source, must_exist=source != "torchvision")  # a download dir
        reader = {"npz": _npz_digit_split, "course": _course_digit_split,
                  "torchvision": _torchvision_digit_split}[source]
        parts, origins = {}, []
        for split, cap in (("train", max_train), ("test", max_test)):
            keep = (lambda n, s=split, c=cap:
                    subset_indices(n, c, derive_seed(seed, "subset", domain, s)))
            x, y, n_all, origin = reader(base, domain, split, keep, size)
            parts[split] = (resize_uint8(_to_three_channels(x), size), y, n_all)
            origins.append(origin)
        desc = (f"{source} '{domain}' from {' and '.join(origins)}, resized to {size}x{size}x3")
    desc += _subset_note(parts, seed)
    (xtr, ytr, _), (xte, yte, _) = parts["train"], parts["test"]
    return DigitSplits(xtr.contiguous(), ytr.to(torch.int64), xte.contiguous(),
                       yte.to(torch.int64), desc)


def load_faces(source: str, *, root: str | os.PathLike | None, size: int = 64, crop: int = 64,
               seed: int = 0, max_train: int | None = None, max_test: int | None = None,
               test_fraction: float = 0.1) -> FaceSplits:
    """Load face images as uint8 ``[N,3,size,size]``: centre ``crop``x``crop`` (the largest centred
    square when an image is smaller), then resize to ``size``.

    ``npz`` splits the sorted file names by a seeded permutation: ``round(test_fraction * n)``
    go to test.  ``course`` and ``torchvision`` use their own train/test splits (``test_fraction``
    is not used); ``embedded`` renders 2000/500 crops of one portrait (``crop`` not used).
    """
    _check_choice("data source", source, SOURCES)
    check_positive("size", size)
    check_positive("crop", crop)
    check_positive("max_train", max_train, allow_none=True)
    check_positive("max_test", max_test, allow_none=True)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
            or not 0.0 <= float(test_fraction) < 1.0:
        raise ConfigError(f"test_fraction must be a number in [0, 1), got {test_fraction!r}")

    cap = _face_capper(seed, max_train, max_test)
    if source == "embedded":
        xtr, xte, atr, ate, names, desc = embedded_faces(size=size, seed=seed)
        ktr, kte = cap("train", len(xtr)), cap("test", len(xte))
        out = FaceSplits(xtr[ktr], xte[kte], atr[ktr], ate[kte], names, desc)
        return _note_face_subset(out, len(xtr), len(xte), max_train, max_test)

    loader = {"npz": _npz_faces, "course": _course_faces, "torchvision": _torchvision_faces}[source]
    return loader(_require_root(root, source), size=size, crop=crop, cap=cap, seed=seed,
                  test_fraction=float(test_fraction), max_train=max_train, max_test=max_test)


# =========================================================================== shared helpers
def _check_choice(what: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; valid: {', '.join(choices)}")


def _require_root(root, source: str, *, must_exist: bool = True) -> Path:
    if root is None:
        raise ConfigError(f"data source '{source}' needs a dataset folder (root); use source "
                          f"'embedded' to work without one")
    path = Path(os.path.expanduser(str(root)))
    if must_exist and not path.exists():
        raise DataError(f"dataset root {path} does not exist (source '{source}')")
    return path


def _to_three_channels(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N,C,H,W]`` with C in {1,3} -> ``[N,3,H,W]``."""
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


def _subset_note(parts: dict, seed: int) -> str:
    notes = [f"{s} {len(parts[s][1])} of {parts[s][2]}" for s in SPLITS
             if len(parts[s][1]) < parts[s][2]]
    return f"; seeded subset (seed {seed}): {', '.join(notes)}" if notes else ""


def _note_face_subset(out: FaceSplits, n_train: int, n_test: int, max_train, max_test) -> FaceSplits:
    notes = [f"{s} {len(x)} of {n}" for s, x, n in (("train", out.x_train, n_train),
                                                     ("test", out.x_test, n_test)) if len(x) < n]
    if notes:
        out.description += f"; seeded subset: {', '.join(notes)}"
    return out


def _check_arrays(x: np.ndarray, y: np.ndarray, path, *, what: str = "x") -> np.ndarray:
    """Validate a digit array pair; returns ``y`` as int64 ``[N]``."""
    if x.dtype != np.uint8:
        raise DataError(f"{path}: '{what}' must be uint8, got {x.dtype}")
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        raise DataError(f"{path}: '{what}' must have shape N x H x W x C with C in {{1, 3}}, "
                        f"got {x.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{path}: 'y' must be one label per image (shape [N]), got {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DataError(f"{path}: 'y' must hold integers, got dtype {y.dtype}")
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} images but {len(y)} labels")
    _check_labels(y, path)
    return y.astype(np.int64)


def _check_labels(y: np.ndarray, path) -> None:
    bad = (y < 0) | (y > 9)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: {int(bad.sum())} label(s) outside 0..9, e.g. y[{i}] = {y[i]}")


# =========================================================================== npz
def _npz_digit_split(root: Path, domain: str, split: str, subset: Callable, size: int):
    name = f"{domain}_{split}.npz"
    candidates = [root / "digits" / name, root / name]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DataError(f"missing digit file for domain '{domain}' ({split}): expected "
                        f"{candidates[0]} (or {candidates[1]}) holding 'x' uint8 N x H x W x C "
                        f"and 'y' int64")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x", "y") if k not in z.files]
            if missing:
                raise DataError(f"{path}: lacks array(s) {', '.join(map(repr, missing))} "
                                f"(found {', '.join(z.files) or 'none'})")
            x, y = z["x"], z["y"]
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"cannot read {path} as an .npz archive without pickles: {e}") from None
    y = _check_arrays(x, y, path)
    keep = subset(len(y)).numpy()
    xt = torch.from_numpy(np.ascontiguousarray(x[keep])).permute(0, 3, 1, 2)
    return xt, torch.from_numpy(y[keep]), len(y), str(path)


def _npz_faces(root: Path, *, size, crop, cap, seed, test_fraction, max_train, max_test,
               **_) -> FaceSplits:
    collection = _FaceCollection.discover(root)
    n = len(collection.items)
    n_test = int(round(test_fraction * n))
    split_items = _npz_split(collection, seed=seed, test_fraction=test_fraction, cap=cap)
    table = collection.attr_table()
    xs, attrs = {}, {}
    try:
        for split in SPLITS:
            items = split_items[split]
            attrs[split] = None if table is None else table.lookup([it.key for it in items])
            xs[split] = load_images(items, collection.read, crop=crop, size=size)
    finally:
        collection.close()
    desc = (f"npz faces: {n} images from {collection.origin}, centre crop {crop} -> "
            f"{size}x{size}; split {n - n_test}/{n_test} by test_fraction {test_fraction} (seeded "
            f"permutation of the sorted names, seed {seed}); attributes "
            + ("none" if table is None else f"{len(table.names)} from {table.path}"))
    out = FaceSplits(xs["train"], xs["test"], attrs["train"], attrs["test"],
                     [] if table is None else list(table.names), desc)
    return _note_face_subset(out, n - n_test, n_test, max_train, max_test)


def _face_capper(seed: int, max_train: int | None, max_test: int | None) -> Callable[[str, int], torch.Tensor]:
    """``cap(split, n)``: the seeded subset of a split's ``n`` faces that ``max_train`` / ``max_test`` keep."""
    def cap(split: str, n: int) -> torch.Tensor:
        return subset_indices(n, max_train if split == "train" else max_test,
                              derive_seed(seed, "subset", "faces", split))
    return cap


def _npz_split(collection: "_FaceCollection", *, seed: int, test_fraction: float, cap) -> dict[str, list]:
    """The faces of each split, in the prepared order: a seeded permutation of the sorted names puts
    ``round(test_fraction * n)`` in test, each split sorted, then ``cap``'s subset."""
    n = len(collection.items)
    g = torch.Generator().manual_seed(derive_seed(seed, "faces-split"))
    perm = torch.randperm(n, generator=g)
    n_test = int(round(test_fraction * n))
    split_idx = {"test": perm[:n_test].sort().values, "train": perm[n_test:].sort().values}
    return {split: [collection.items[i] for i in idx[cap(split, len(idx))].tolist()]
            for split, idx in split_idx.items()}


def npz_face_attributes(table: str | os.PathLike, *, root: str | os.PathLike, seed: int = 0,
                        max_train: int | None = None, max_test: int | None = None,
                        test_fraction: float = 0.1) -> dict:
    """The attributes of the ``npz`` faces under ``root`` from the attribute table file ``table`` (CelebA's
    ``list_attr_celeba.txt`` format or a CSV ``image_id,<attr>,...``), row for row in the order
    :func:`load_faces` (same arguments) prepares the faces: ``{"attrs_train": float32 [N_train, K] of 0/1,
    "attrs_test": [N_test, K], "attr_names": [K names], "table": the table's file name}`` (its name, not its path: the
    prepared data must hash the same in every clone). Only image names are read (no decoding).

    DataError naming the file when the table is missing, malformed (a line with the wrong number of values, a
    value not in {-1, 0, 1}) or has no row for one of the faces."""
    path = Path(os.path.expanduser(str(table)))
    if not path.is_file():
        raise DataError(f"face attribute table {path} not found (params: data.face_attrs)")
    parsed = _AttrTable.parse(path.read_text(encoding="utf-8", errors="replace"), path)
    collection = _FaceCollection.discover(_require_root(root, "npz"))
    split = _npz_split(collection, seed=seed, test_fraction=float(test_fraction),
                       cap=_face_capper(seed, max_train, max_test))
    return {"attrs_train": parsed.lookup([it.key for it in split["train"]]),
            "attrs_test": parsed.lookup([it.key for it in split["test"]]),
            "attr_names": list(parsed.names), "table": path.name}


class _FaceItem:
    """One face image: in a folder (``path``) or a tar member (``tar_index``, ``member``)."""

    __slots__ = ("name", "key", "path", "tar_index", "member")

    def __init__(self, name: str, path: Path | None = None, tar_index: int = -1, member=None):
        self.name = name                       # sort key / display name
        self.key = Path(name).name             # what attribute tables call it
        self.path, self.tar_index, self.member = path, tar_index, member


class _FaceCollection:
    """The images of an npz-format face folder (loose files, or tarballs when there are none)."""

    def __init__(self, items: list[_FaceItem], tars: list[Path], origin: str, search: list):
        self.items = sorted(items, key=lambda it: it.name)
        self.tars = tars
        self.origin = origin
        self._search = search     # (folders, tar members) to look for an attribute table in
        self._open: dict[int, tarfile.TarFile] = {}

    @classmethod
    def discover(cls, root: Path) -> "_FaceCollection":
        where = root / "faces" if (root / "faces").exists() else root
        if where.is_file():
            if not is_tarball(where):
                raise DataError(f"{where}: expected a folder of JPG/PNG or a .tar/.tar.gz/.tgz "
                                f"archive of faces")
            tars, folders = [where], [where.parent]
        else:
            loose = list_image_files(where)
            if loose:
                items = [_FaceItem(p.relative_to(where).as_posix(), path=p) for p in loose]
                return cls(items, [], f"folder {where}", [[where, root], []])
            tars = sorted(p for p in where.rglob("*") if p.is_file() and is_tarball(p))
            folders = [where, root]
        items, members = [], []
        for ti, tar_path in enumerate(tars):
            try:
                with tarfile.open(tar_path, "r:*") as tf:
                    for m in tf.getmembers():
                        if not m.isfile():
                            continue
                        if m.name.lower().endswith(IMAGE_SUFFIXES):
                            label = m.name if len(tars) == 1 else f"{tar_path.name}:{m.name}"
                            items.append(_FaceItem(label, tar_index=ti, member=m))
                        elif Path(m.name).name in ATTR_TABLES:
                            members.append((ti, m))
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(f"cannot read tar archive {tar_path}: {e}") from None
        if not items:
            raise DataError(f"no face images (.jpg/.jpeg/.png, or a .tar/.tar.gz/.tgz of them) "
                            f"found in {where}")
        origin = ", ".join(str(t) for t in tars)
        return cls(items, tars, origin, [folders, members])

    def read(self, item: _FaceItem) -> tuple[bytes | Path, str]:
        if item.path is not None:
            return item.path, str(item.path)
        tf = self._open.get(item.tar_index)
        if tf is None:
            tf = self._open[item.tar_index] = tarfile.open(self.tars[item.tar_index], "r:*")
        display = f"{item.member.name} in {self.tars[item.tar_index]}"
        try:
            return tf.extractfile(item.member).read(), display
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"cannot read {display}: {e}") from None

    def close(self) -> None:
        for tf in self._open.values():
            tf.close()
        self._open.clear()

    def attr_table(self) -> "_AttrTable | None":
        folders, members = self._search
        for folder in folders:
            for name in ATTR_TABLES:
                if (folder / name).is_file():
                    p = folder / name
                    return _AttrTable.parse(p.read_text(encoding="utf-8", errors="replace"), p)
        for ti, m in members:
            with tarfile.open(self.tars[ti], "r:*") as tf:
                text = tf.extractfile(m).read().decode("utf-8", errors="replace")
            return _AttrTable.parse(text, f"{m.name} in {self.tars[ti]}", csv_format=m.name.endswith(".csv"))
        return None


class _AttrTable:
    """A per-image 0/1 attribute table (CelebA's list_attr_celeba.{csv,txt} or a course CSV)."""

    def __init__(self, names: list[str], rows: dict[str, np.ndarray], path):
        self.names, self.rows, self.path = names, rows, path

    @classmethod
    def parse(cls, text: str, path, *, csv_format: bool | None = None) -> "_AttrTable":
        """CSV: header ``image_id|image_name,<attr>...``; TXT (CelebA): a count line, a line of
        attribute names, then ``<image> v1 v2 ...``.  Values in {-1, 0, 1} (``"1.0"`` allowed);
        -1 maps to 0."""
        if csv_format is None:
            csv_format = str(path).endswith(".csv")
        if csv_format:
            rows = list(csv.reader(text.splitlines()))
            if not rows or len(rows[0]) < 2:
                raise DataError(f"{path}: expected a header 'image_id,<attribute>,...'")
            names, body, first = [h.strip() for h in rows[0][1:]], rows[1:], 2
        else:
            lines = [ln.split() for ln in text.splitlines()]
            if len(lines) < 2:
                raise DataError(f"{path}: expected a count line and a line of attribute names")
            names, body, first = lines[1], lines[2:], 3
            if body and len(body[0]) == len(names):  # header line starts with an image column
                names = names[1:]
        table = {}
        for i, row in enumerate(body):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(names) + 1:
                raise DataError(f"{path}, line {i + first}: {len(row) - 1} values for "
                                f"{len(names)} attributes")
            try:
                vals = np.array([float(v) for v in row[1:]], dtype=np.float32)
            except ValueError:
                raise DataError(f"{path}, line {i + first}: non-numeric attribute value") from None
            if not np.isin(vals, (-1.0, 0.0, 1.0)).all():
                raise DataError(f"{path}, line {i + first}: attribute values must be -1, 0 or 1")
            table[Path(row[0].strip()).name] = (vals > 0).astype(np.float32)
        return cls(names, table, path)

    def lookup(self, keys: list[str]) -> torch.Tensor:
        out = np.zeros((len(keys), len(self.names)), dtype=np.float32)
        for i, k in enumerate(keys):
            row = self.rows.get(k)
            if row is None:
                raise DataError(f"{self.path}: no attribute row for image {k}")
            out[i] = row
        return torch.from_numpy(out)


# =========================================================================== course (DLCV HW2)
def _hw2_dir(root: Path) -> Path:
    if (root / "hw2_data").is_dir():
        return root / "hw2_data"
    if (root / "digits").is_dir() or (root / "face").is_dir():
        return root
    raise DataError(f"{root}: expected the course layout {root / 'hw2_data'} (with digits/ and "
                    f"face/), or root pointing at hw2_data itself")


def _read_csv(path: Path, first: str) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if not rows or rows[0][0].strip() != first:
        raise DataError(f"{path}: expected a header starting with '{first}'")
    return [h.strip() for h in rows[0]], rows[1:]


def _course_digit_split(root: Path, domain: str, split: str, subset: Callable, size: int):
    ddir = _hw2_dir(root) / "digits" / domain
    csv_path = ddir / f"{split}.csv"
    if split == "test" and not csv_path.is_file() and (ddir / "val.csv").is_file():
        csv_path = ddir / "val.csv"   # some course years ship train.csv + val.csv
    if not csv_path.is_file():
        raise DataError(f"missing {csv_path} (course layout: hw2_data/digits/{domain}/"
                        f"{{train,test}}.csv with columns image_name,label and images in data/; "
                        f"the course ships mnistm, svhn and usps)")
    header, rows = _read_csv(csv_path, "image_name")
    if "label" not in header:
        raise DataError(f"{csv_path}: expected columns image_name,label, got {','.join(header)}")
    li = header.index("label")
    labels = []
    paths = []
    for i, r in enumerate(rows):
        try:
            value = float(r[li])
            if not value.is_integer():
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(f"{csv_path}, line {i + 2}: bad label in {r!r}") from None
        labels.append(int(value))
        name = r[0].strip()
        p = ddir / "data" / name
        if not p.is_file() and (ddir / split / name).is_file():
            p = ddir / split / name  # images in train/ and test/ folders (another course year)
        if not p.is_file():
            raise DataError(f"{csv_path} lists image {name} but {p} does not exist")
        paths.append(p)
    y = np.asarray(labels, dtype=np.int64)
    _check_labels(y, csv_path)
    keep = subset(len(y))
    paths = [paths[i] for i in keep.tolist()]
    x = load_images(paths, lambda p: (p, str(p)), crop=None, size=size)
    return x, torch.from_numpy(y[keep.numpy()]), len(y), str(csv_path)


def _course_faces(root: Path, *, size, crop, cap, max_train, max_test, **_) -> FaceSplits:
    fdir = _hw2_dir(root) / "face"
    xs, attrs, names_all, counts, notes = {}, {}, None, {}, []
    for split in SPLITS:
        folder = fdir / split
        if not folder.is_dir():
            raise DataError(f"missing face folder {folder} (course layout: hw2_data/face/"
                            f"{{train,test}}/*.png)")
        csv_path = fdir / f"{split}.csv"
        if csv_path.is_file():
            _read_csv(csv_path, "image_name")  # checks the header
            table = _AttrTable.parse(csv_path.read_text(encoding="utf-8"), csv_path,
                                     csv_format=True)
            names = sorted(table.rows)
            for n in names:
                if not (folder / n).is_file():
                    raise DataError(f"{csv_path} lists image {n} but {folder / n} does not exist")
            paths = [folder / n for n in names]
            notes.append(f"{split} attributes from {csv_path}")
        else:
            table, paths = None, list_image_files(folder)
            if not paths:
                raise DataError(f"no face images (.png/.jpg) in {folder}")
        counts[split] = len(paths)
        paths = [paths[i] for i in cap(split, len(paths)).tolist()]
        xs[split] = load_images(paths, lambda p: (p, str(p)), crop=crop, size=size)
        attrs[split] = None if table is None else table.lookup([p.name for p in paths])
        if table is not None:
            if names_all is not None and names_all != table.names:
                raise DataError(f"{csv_path}: attribute columns differ from the train CSV's")
            names_all = table.names
    if (attrs["train"] is None) != (attrs["test"] is None):
        missing = fdir / ("test.csv" if attrs["test"] is None else "train.csv")
        raise DataError(f"{missing} is missing while the other split has an attribute CSV")
    desc = (f"course faces from {fdir} (its own train/test folders), centre crop {crop} -> "
            f"{size}x{size}; " + ("; ".join(notes) if notes else "no attributes"))
    out = FaceSplits(xs["train"], xs["test"], attrs["train"], attrs["test"],
                     list(names_all or []), desc)
    return _note_face_subset(out, counts["train"], counts["test"], max_train, max_test)


# =========================================================================== torchvision
def _torchvision_digit_split(root: Path, domain: str, split: str, subset: Callable, size: int):
    train = split == "train"
    if domain == "mnistm":
        raise ConfigError("torchvision has no MNIST-M loader; use source 'npz' (e.g. "
                          "../shared/data/digits/mnistm_*.npz) or 'course' (hw2_data/digits/mnistm)")
    if domain == "svhn":
        mat = root / f"{split}_32x32.mat"
        if mat.is_file():
            return _svhn_mat(mat, subset)
    import torchvision.datasets as tvd  # heavy import: only when really needed

    root.mkdir(parents=True, exist_ok=True)
    try:
        if domain == "mnist":
            ds = tvd.MNIST(str(root), train=train, download=True)
            x, y = np.asarray(ds.data)[..., None], np.asarray(ds.targets)
        elif domain == "usps":
            ds = tvd.USPS(str(root), train=train, download=True)
            x, y = np.asarray(ds.data)[..., None], np.asarray(ds.targets)
        else:
            ds = tvd.SVHN(str(root), split=split, download=True)
            x, y = np.asarray(ds.data).transpose(0, 2, 3, 1), np.asarray(ds.labels)
    except Exception as e:  # download / integrity errors of any kind
        raise DataError(f"torchvision could not load {domain.upper()} ({split}) into {root}: {e} "
                        f"(download=True needs internet; offline use source 'npz')") from None
    y = _check_arrays(x, y, f"torchvision {domain.upper()} in {root}")
    keep = subset(len(y)).numpy()
    xt = torch.from_numpy(np.ascontiguousarray(x[keep])).permute(0, 3, 1, 2)
    return xt, torch.from_numpy(y[keep]), len(y), f"torchvision {domain.upper()} in {root}"


def _svhn_mat(path: Path, subset: Callable):
    """torchvision's SVHN file: ``X`` uint8 ``[32,32,3,N]``, ``y`` ``[N,1]`` in 1..10 (10 = digit 0)."""
    from scipy.io import loadmat

    try:
        m = loadmat(str(path))
    except Exception as e:  # scipy raises several types for a malformed file
        raise DataError(f"cannot read {path} as a MATLAB .mat file: {e}") from None
    if "X" not in m or "y" not in m:
        raise DataError(f"{path}: lacks 'X' and/or 'y' (torchvision's SVHN format)")
    X, y = m["X"], np.asarray(m["y"])
    if X.ndim != 4 or X.shape[2] != 3:
        raise DataError(f"{path}: 'X' must have shape [H,W,3,N], got {X.shape}")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise DataError(f"{path}: 'y' must hold integer labels")
    y = y.reshape(-1).astype(np.int64) if y.ndim == 2 and 1 in y.shape else y
    y = np.where(y == 10, 0, y)
    x = X.transpose(3, 0, 1, 2)
    y = _check_arrays(x, y, path, what="X")
    keep = subset(len(y)).numpy()
    xt = torch.from_numpy(np.ascontiguousarray(x[keep])).permute(0, 3, 1, 2)
    return xt, torch.from_numpy(y[keep]), len(y), str(path)


def _torchvision_faces(root: Path, *, size, crop, cap, max_train, max_test,
                       **_) -> FaceSplits:
    if not (root / "celeba" / "img_align_celeba").is_dir():
        raise DataError(f"torchvision CelebA not found: expected {root / 'celeba' / 'img_align_celeba'} "
                        f"and CelebA's list_*.txt files in {root / 'celeba'} (torchvision cannot "
                        f"download it reliably; place it there by hand, or use source 'npz' with a "
                        f"folder/tar of faces)")
    import torchvision.datasets as tvd

    xs, attrs, counts, names = {}, {}, {}, []
    for split in SPLITS:
        try:
            ds = tvd.CelebA(str(root), split=split, target_type="attr", download=False)
        except Exception as e:
            raise DataError(f"torchvision CelebA not found under {root / 'celeba'} ({e}); download "
                            f"it there by hand, or use source 'npz' with a folder/tar of faces") from None
        folder = Path(ds.root) / ds.base_folder / "img_align_celeba"
        keep = cap(split, len(ds.filename)).tolist()
        paths = [folder / ds.filename[i] for i in keep]
        xs[split] = load_images(paths, lambda p: (p, str(p)), crop=crop, size=size)
        attrs[split] = ds.attr[keep].float()
        names = [n for n in ds.attr_names if n]
        counts[split] = len(ds.filename)
    desc = (f"torchvision CelebA in {root} (official train/test split), centre crop {crop} -> "
            f"{size}x{size}; {len(names)} attributes")
    out = FaceSplits(xs["train"], xs["test"], attrs["train"], attrs["test"], names, desc)
    return _note_face_subset(out, counts["train"], counts["test"], max_train, max_test)
