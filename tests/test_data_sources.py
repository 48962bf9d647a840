"""Dataset sources: embedded rendering, npz / course / torchvision readers, and their validation."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from genda.data.embedded import base_split
from genda.data.sources import DIGIT_DOMAINS, SOURCES, load_digits, load_faces
from genda.errors import ConfigError, DataError

SHARED = Path(os.environ.get("GENDA_SHARED_DATA",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data"))


# =========================================================================== embedded digits
@pytest.fixture(scope="module")
def embedded():
    """All four embedded domains (seed 0).  How long rendering takes is measured by `make repro`'s
    prepare stage (README), not asserted here: no timed tests."""
    return {d: load_digits("embedded", d, root=None) for d in DIGIT_DOMAINS}


@pytest.mark.parametrize("domain", DIGIT_DOMAINS)
def test_embedded_shapes_labels_and_balance(embedded, domain):
    s = embedded[domain]
    assert s.x_train.dtype == torch.uint8 and s.x_test.dtype == torch.uint8
    assert s.y_train.dtype == torch.int64 and s.y_test.dtype == torch.int64
    tr, te = base_split(0)
    assert s.x_train.shape == (2 * len(tr), 3, 28, 28) and len(s.y_train) == 2 * len(tr)
    assert s.x_test.shape == (len(te), 3, 28, 28) and len(s.y_test) == len(te)
    assert 2800 <= len(s.y_train) <= 2950 and 340 <= len(s.y_test) <= 380
    for y in (s.y_train, s.y_test):
        counts = torch.bincount(y, minlength=10)
        assert len(counts) == 10 and int(y.min()) == 0 and int(y.max()) == 9
        assert counts.min() >= 0.85 * counts.float().mean() and counts.max() <= 1.15 * counts.float().mean()
    assert domain in s.description and "not the real" in s.description


def test_embedded_base_split_is_disjoint_stratified_and_seeded():
    tr, te = base_split(0)
    assert len(set(tr.tolist()) & set(te.tolist())) == 0
    assert sorted(tr.tolist() + te.tolist()) == list(range(1797))
    assert 350 <= len(te) <= 370
    tr1, te1 = base_split(1)
    assert not torch.equal(te, te1)
    assert torch.equal(base_split(0)[1], te)


def test_embedded_is_deterministic_per_seed(embedded):
    ref = embedded["svhn"]
    again = load_digits("embedded", "svhn", root=None, seed=0)
    assert torch.equal(again.x_train, ref.x_train) and torch.equal(again.y_test, ref.y_test)
    mnist = embedded["mnist"]
    other = load_digits("embedded", "mnist", root=None, seed=1)
    assert not torch.equal(other.y_test, mnist.y_test)  # another split of the glyphs...
    assert (other.x_train[:50] != mnist.x_train[:50]).any((1, 2, 3)).all()  # ...and other poses


def test_embedded_domains_look_different(embedded):
    def stats(x):
        x = x.float()
        ring = torch.ones(x.shape[-2:], dtype=torch.bool)
        ring[3:-3, 3:-3] = False
        return {
            "rg": (x[:, 0] - x[:, 1]).abs().mean().item(),          # colourfulness
            "border": x[..., ring].mean().item(),                   # ink/clutter near the edges
            "nonblack": (x.amax(1) > 40).float().mean().item(),     # background filled?
            "contrast": x.mean(1).flatten(1).std(1).mean().item(),  # per-image luminance std
        }
    d = {k: v.x_train for k, v in embedded.items()}
    st = {k: stats(v) for k, v in d.items()}
    for grey in ("mnist", "usps"):  # grey domains: R == G == B exactly
        assert torch.equal(d[grey][:, 0], d[grey][:, 1]) and torch.equal(d[grey][:, 1], d[grey][:, 2])
    for colour in ("mnistm", "svhn"):
        assert st[colour]["rg"] > 15, st[colour]
    assert st["mnist"]["border"] < 3 < 15 < st["usps"]["border"]     # 20/28 box vs full frame
    assert st["mnist"]["nonblack"] < 0.3 and st["mnistm"]["nonblack"] > 0.7
    assert st["svhn"]["nonblack"] > 0.95
    assert st["svhn"]["contrast"] < 0.75 * st["mnistm"]["contrast"]  # low-contrast house numbers


def test_embedded_size_and_subset(embedded):
    full = embedded["usps"]
    s = load_digits("embedded", "usps", root=None, size=32, max_train=100, max_test=7)
    assert s.x_train.shape == (100, 3, 32, 32) and s.x_test.shape == (7, 3, 32, 32)
    small = load_digits("embedded", "usps", root=None, max_train=100, max_test=7)
    # the subset is a seeded, sorted selection of the full set: find each image in it
    rows = {bytes(x.numpy()) for x in full.x_train}
    assert all(bytes(x.numpy()) in rows for x in small.x_train)
    assert torch.equal(small.x_train, load_digits("embedded", "usps", root=None, max_train=100).x_train)
    assert "subset" in small.description


def test_unknown_choices_raise_config_error():
    with pytest.raises(ConfigError, match="valid: embedded, npz, course, torchvision"):
        load_digits("kaggle", "mnist", root=None)
    with pytest.raises(ConfigError, match="mnist, mnistm, usps, svhn"):
        load_digits("embedded", "emnist", root=None)
    with pytest.raises(ConfigError, match="root"):
        load_digits("npz", "usps", root=None)
    with pytest.raises(ConfigError, match="max_train"):
        load_digits("embedded", "usps", root=None, max_train=0)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_faces("embedded", root=None, test_fraction=1.0)
    assert SOURCES == ("embedded", "npz", "course", "torchvision")


# =========================================================================== embedded faces
def test_embedded_faces_shapes_and_truthful_attributes():
    f = load_faces("embedded", root=None)
    assert f.x_train.shape == (2000, 3, 64, 64) and f.x_test.shape == (500, 3, 64, 64)
    assert f.x_train.dtype == torch.uint8
    assert f.attr_names == ["Mirrored", "Bright"]
    assert f.attrs_train.shape == (2000, 2) and f.attrs_train.dtype == torch.float32
    assert set(f.attrs_train.unique().tolist()) == {0.0, 1.0}
    assert 0.4 < f.attrs_train[:, 0].mean() < 0.6 and 0.4 < f.attrs_train[:, 1].mean() < 0.6
    # Mirrored is real: the sky (blue) is on the right of the unflipped portrait, the flag's red
    # on the left; flipping swaps them.
    x = f.x_train.float()
    blue = x[:, 2] - x[:, 0]
    right_minus_left = blue[..., -6:].mean((1, 2)) - blue[..., :6].mean((1, 2))
    m = f.attrs_train[:, 0] == 1
    assert (right_minus_left[~m] > 0).float().mean() > 0.95
    assert (right_minus_left[m] < 0).float().mean() > 0.95
    b = f.attrs_train[:, 1] == 1
    assert x[b].mean() > x[~b].mean() + 15
    assert "portrait" in f.description and "ONE" in f.description
    again = load_faces("embedded", root=None, max_train=10, max_test=3)
    assert again.x_train.shape[0] == 10 and torch.equal(again.attrs_train,
                                                        f.attrs_train[_rows_of(again.x_train, f.x_train)])


def _rows_of(sub: torch.Tensor, full: torch.Tensor) -> list[int]:
    index = {bytes(x.numpy()): i for i, x in enumerate(full)}
    return [index[bytes(x.numpy())] for x in sub]


# =========================================================================== npz digits
def _save_npz(path: Path, **arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def _aa_resize(x_nhwc: np.ndarray, size: int) -> torch.Tensor:
    t = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).float()
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t.round().clamp(0, 255).to(torch.uint8)


def test_npz_gray_and_rgb_are_resized_to_28x28x3(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (12, 16, 16, 1), dtype=np.uint8)
    gray[0] = 200  # a constant image stays constant
    rgb = rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    y_g, y_r = np.arange(12) % 10, (np.arange(9) * 3) % 10
    _save_npz(tmp_path / "digits" / "usps_train.npz", x=gray, y=y_g)
    _save_npz(tmp_path / "digits" / "usps_test.npz", x=gray[:5], y=y_g[:5])
    _save_npz(tmp_path / "mnistm_train.npz", x=rgb, y=y_r)  # directly in root is accepted too
    _save_npz(tmp_path / "mnistm_test.npz", x=rgb[:4], y=y_r[:4].astype(np.uint8))

    u = load_digits("npz", "usps", root=tmp_path)
    assert u.x_train.shape == (12, 3, 28, 28) and u.x_test.shape == (5, 3, 28, 28)
    assert torch.equal(u.x_train[:, 0], u.x_train[:, 2])
    assert (u.x_train[0] == 200).all()
    assert torch.equal(u.x_train, _aa_resize(gray, 28))
    assert u.y_train.tolist() == y_g.tolist() and u.y_train.dtype == torch.int64

    m = load_digits("npz", "mnistm", root=str(tmp_path))
    assert m.x_train.shape == (9, 3, 28, 28)
    assert torch.equal(m.x_train, _aa_resize(rgb, 28))
    assert m.y_test.tolist() == y_r[:4].tolist() and m.y_test.dtype == torch.int64

    same = load_digits("npz", "mnistm", root=tmp_path, size=32)  # already 32: bytes unchanged
    assert torch.equal(same.x_train, torch.from_numpy(rgb).permute(0, 3, 1, 2))

    sub = load_digits("npz", "mnistm", root=tmp_path, size=32, max_train=4, seed=3)
    idx = _rows_of(sub.x_train, same.x_train)
    assert len(idx) == 4 and idx == sorted(idx)
    assert sub.y_train.tolist() == [int(y_r[i]) for i in idx]
    assert torch.equal(sub.x_train,
                       load_digits("npz", "mnistm", root=tmp_path, size=32, max_train=4, seed=3).x_train)


_GOOD_X = np.zeros((4, 8, 8, 1), np.uint8)
_GOOD_Y = np.array([0, 1, 2, 3])


@pytest.mark.parametrize("arrays, needle", [
    ({"y": _GOOD_Y}, "lacks array(s) 'x'"),
    ({"x": _GOOD_X}, "lacks array(s) 'y'"),
    ({"x": _GOOD_X.astype(np.float32), "y": _GOOD_Y}, "uint8"),
    ({"x": _GOOD_X[..., 0], "y": _GOOD_Y}, "N x H x W x C"),
    ({"x": np.zeros((4, 8, 8, 2), np.uint8), "y": _GOOD_Y}, "C in {1, 3}"),
    ({"x": _GOOD_X, "y": _GOOD_Y[:3]}, "4 images but 3 labels"),
    ({"x": _GOOD_X, "y": np.array([0, 1, 10, 3])}, "outside 0..9"),
    ({"x": _GOOD_X, "y": np.array([0, -1, 2, 3])}, "outside 0..9"),
    ({"x": _GOOD_X, "y": _GOOD_Y.astype(np.float64)}, "integers"),
    ({"x": np.array([None] * 4, dtype=object), "y": _GOOD_Y}, "cannot read"),
])
def test_npz_validation_names_the_file(tmp_path, arrays, needle):
    _save_npz(tmp_path / "digits" / "usps_train.npz", **arrays)
    _save_npz(tmp_path / "digits" / "usps_test.npz", x=_GOOD_X, y=_GOOD_Y)
    with pytest.raises(DataError) as e:
        load_digits("npz", "usps", root=tmp_path)
    assert "usps_train.npz" in str(e.value) and needle in str(e.value)


def test_npz_missing_file_and_root(tmp_path):
    with pytest.raises(DataError, match=r"digits/svhn_train\.npz"):
        load_digits("npz", "svhn", root=tmp_path)
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "svhn_train.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="svhn_train.npz"):
        load_digits("npz", "svhn", root=tmp_path)
    with pytest.raises(DataError, match="nowhere"):
        load_digits("npz", "svhn", root=tmp_path / "nowhere")


# =========================================================================== course layout
def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _course_digits(root: Path, domain: str, gray: bool, n_train=6, n_test=3) -> dict:
    ddir = root / "hw2_data" / "digits" / domain
    truth = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = ["image_name,label"]
        for i in range(n):
            name, label = f"{split}_{i:03d}.png", (7 * i + (split == "test")) % 10
            value = 20 * label + 5
            arr = np.full((28, 28) if gray else (28, 28, 3), value, np.uint8)
            if not gray:
                arr[..., 1] = 255 - value  # colour, so channels must stay apart
            _png(ddir / "data" / name, arr)
            rows.append(f"{name},{label}")
            truth.setdefault(split, []).append((label, value))
        (ddir / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return truth


def test_course_digits_labels_and_pixels(tmp_path):
    t_usps = _course_digits(tmp_path, "usps", gray=True)
    t_svhn = _course_digits(tmp_path, "svhn", gray=False)
    u = load_digits("course", "usps", root=tmp_path)
    assert u.x_train.shape == (6, 3, 28, 28)
    assert u.y_train.tolist() == [lab for lab, _ in t_usps["train"]]
    assert u.y_test.tolist() == [lab for lab, _ in t_usps["test"]]
    assert [int(x[0, 5, 5]) for x in u.x_train] == [v for _, v in t_usps["train"]]
    s = load_digits("course", "svhn", root=tmp_path / "hw2_data", size=14)  # root = hw2_data
    assert s.x_test.shape == (3, 3, 14, 14)
    assert [(int(x[0, 3, 3]), int(x[1, 3, 3])) for x in s.x_test] == \
           [(v, 255 - v) for _, v in t_svhn["test"]]


def test_course_missing_and_corrupt_images_are_named(tmp_path):
    _course_digits(tmp_path, "mnistm", gray=False)
    data = tmp_path / "hw2_data" / "digits" / "mnistm" / "data"
    (data / "train_002.png").unlink()
    with pytest.raises(DataError, match="train_002.png"):  # checked even when not sampled
        load_digits("course", "mnistm", root=tmp_path, max_train=1)
    _course_digits(tmp_path, "mnistm", gray=False)
    csv_path = tmp_path / "hw2_data" / "digits" / "mnistm" / "train.csv"
    csv_path.write_text(csv_path.read_text().replace(",7\n", ",7.5\n", 1))
    with pytest.raises(DataError, match=r"train\.csv, line 3: bad label"):
        load_digits("course", "mnistm", root=tmp_path)
    _course_digits(tmp_path, "mnistm", gray=False)
    (data / "test_001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="test_001.png"):
        load_digits("course", "mnistm", root=tmp_path)
    with pytest.raises(DataError, match=r"digits/mnist/train\.csv"):
        load_digits("course", "mnist", root=tmp_path)


def test_course_faces_with_attribute_csv(tmp_path):
    fdir = tmp_path / "hw2_data" / "face"
    for split, n in (("train", 5), ("test", 2)):
        rows = ["image_name,Male,Smiling"]
        for i in range(n):
            _png(fdir / split / f"{i:05d}.png", np.full((64, 64, 3), 10 * i + 40 * (split == "test"), np.uint8))
            rows.append(f"{i:05d}.png,{float(i % 2)},{float(i >= 2)}")
        (fdir / f"{split}.csv").write_text("\n".join(rows) + "\n")
    f = load_faces("course", root=tmp_path, size=32, crop=64)
    assert f.x_train.shape == (5, 3, 32, 32) and f.x_test.shape == (2, 3, 32, 32)
    assert f.attr_names == ["Male", "Smiling"]
    assert f.attrs_train.tolist() == [[0, 0], [1, 0], [0, 1], [1, 1], [0, 1]]
    assert [int(x[0, 0, 0]) for x in f.x_train] == [0, 10, 20, 30, 40]
    assert [int(x[0, 0, 0]) for x in f.x_test] == [40, 50]
    (fdir / "train" / "00003.png").unlink()
    with pytest.raises(DataError, match="00003.png"):
        load_faces("course", root=tmp_path)


# =========================================================================== torchvision
def test_svhn_mat_fixture_via_torchvision_source(tmp_path):
    from scipy.io import savemat
    rng = np.random.default_rng(1)
    for split, n in (("train", 7), ("test", 3)):
        X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        X[0, 31, :, :] = 255  # top-right corner marker: catches a transposed image
        X[31, 0, :, :] = 0
        y = np.array([[10, 1, 2, 3, 4, 5, 10][:n]]).T.astype(np.uint8)
        savemat(tmp_path / f"{split}_32x32.mat", {"X": X, "y": y})
    s = load_digits("torchvision", "svhn", root=tmp_path, size=32)
    assert s.y_train.tolist() == [0, 1, 2, 3, 4, 5, 0] and s.y_test.tolist() == [0, 1, 2]
    assert s.x_train.shape == (7, 3, 32, 32)
    assert (s.x_train[:, :, 0, 31] == 255).all() and (s.x_train[:, :, 31, 0] == 0).all()
    X = np.asarray(__import__("scipy.io").io.loadmat(tmp_path / "train_32x32.mat")["X"])
    assert torch.equal(s.x_train, torch.from_numpy(X.transpose(3, 2, 0, 1).copy()))
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(DataError, match="test_32x32.mat"):
        load_digits("torchvision", "svhn", root=tmp_path)


def test_torchvision_mnistm_and_missing_celeba(tmp_path):
    with pytest.raises(ConfigError, match="npz"):
        load_digits("torchvision", "mnistm", root=tmp_path)
    with pytest.raises(DataError, match="CelebA"):
        load_faces("torchvision", root=tmp_path)


# =========================================================================== npz faces
def _jpeg_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _face_images(n=20):
    rng = np.random.default_rng(2)
    return {f"faces/{i:06d}.jpg": _jpeg_bytes(rng.integers(0, 256, (50, 40, 3), dtype=np.uint8))
            for i in range(n)}


def _write_tar(path: Path, files: dict, mode="w") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_faces_from_tar_and_folder_agree(tmp_path):
    files = _face_images()
    _write_tar(tmp_path / "a" / "faces" / "celeb.tar.gz", files, mode="w:gz")
    for name, data in files.items():
        (tmp_path / "b" / "faces" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "b" / "faces" / name).write_bytes(data)
    a = load_faces("npz", root=tmp_path / "a", size=16, crop=32, test_fraction=0.25, seed=4)
    b = load_faces("npz", root=tmp_path / "b", size=16, crop=32, test_fraction=0.25, seed=4)
    assert a.x_train.shape == (15, 3, 16, 16) and a.x_test.shape == (5, 3, 16, 16)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert a.attrs_train is None and a.attr_names == []
    # centre crop 32x32 of a 50 high x 40 wide image is rows 9..40, cols 4..35; then resize
    arrs = [np.asarray(Image.open(io.BytesIO(files[k]))) for k in sorted(files)]
    crops = np.stack([x[9:41, 4:36] for x in arrs])
    all_x = _aa_resize(crops, 16)
    assert {bytes(x.numpy()) for x in torch.cat([a.x_train, a.x_test])} == \
           {bytes(x.numpy()) for x in all_x}
    other = load_faces("npz", root=tmp_path / "a", size=16, crop=32, test_fraction=0.25, seed=5)
    assert not torch.equal(other.x_test, a.x_test)
    # the tarball itself as root
    c = load_faces("npz", root=tmp_path / "a" / "faces" / "celeb.tar.gz", size=16, crop=32,
                   test_fraction=0.25, seed=4)
    assert torch.equal(c.x_test, a.x_test)


def test_faces_smaller_than_crop_use_the_largest_centred_square(tmp_path):
    arr = np.zeros((30, 20, 3), np.uint8)
    arr[:5] = (255, 0, 0)
    arr[5:25] = (0, 255, 0)
    arr[25:] = (0, 0, 255)
    for i in range(3):
        _png(tmp_path / "faces" / f"{i}.png", arr)
    f = load_faces("npz", root=tmp_path, size=20, crop=64, test_fraction=0.0)
    assert f.x_train.shape == (3, 3, 20, 20) and f.x_test.shape == (0, 3, 20, 20)
    assert (f.x_train[:, 1] == 255).all() and (f.x_train[:, 0] == 0).all() and (f.x_train[:, 2] == 0).all()


@pytest.mark.parametrize("fmt", ["csv", "txt"])
def test_faces_attribute_table(tmp_path, fmt):
    files = _face_images(6)
    _write_tar(tmp_path / "faces" / "celeba.tar", files)
    keys = [Path(k).name for k in sorted(files)]
    values = {k: (1 if i % 2 else -1, 1 if i < 3 else -1) for i, k in enumerate(keys)}
    values["999999.jpg"] = (1, 1)  # rows for images not in the archive are fine
    if fmt == "csv":
        text = "image_id,Smiling,Young\n" + "".join(f"{k},{a},{b}\n" for k, (a, b) in values.items())
    else:
        text = f"{len(values)}\nSmiling Young \n" + "".join(f"{k}  {a} {b}\n" for k, (a, b) in values.items())
    (tmp_path / "faces" / f"list_attr_celeba.{fmt}").write_text(text)
    f = load_faces("npz", root=tmp_path, size=8, crop=32, test_fraction=0.5)
    assert f.attr_names == ["Smiling", "Young"]
    both = torch.cat([f.attrs_train, f.attrs_test])
    assert sorted(map(tuple, both.tolist())) == sorted((float(a > 0), float(b > 0))
                                                       for k, (a, b) in values.items() if k in keys)
    # every image must have a row
    (tmp_path / "faces" / f"list_attr_celeba.{fmt}").write_text(
        text.replace(keys[4], "gone.jpg"))
    with pytest.raises(DataError, match=keys[4]):
        load_faces("npz", root=tmp_path, size=8, crop=32, test_fraction=0.5)


def test_faces_errors_name_the_path(tmp_path):
    _write_tar(tmp_path / "x" / "faces" / "empty.tar", {"readme.txt": b"hello"})
    with pytest.raises(DataError, match="no face images"):
        load_faces("npz", root=tmp_path / "x")
    files = _face_images(4)
    files["faces/000002.jpg"] = b"\xff\xd8 not really a jpeg"
    _write_tar(tmp_path / "y" / "faces" / "bad.tar", files)
    with pytest.raises(DataError, match=r"000002\.jpg in .*bad\.tar"):
        load_faces("npz", root=tmp_path / "y", crop=32, size=8, test_fraction=0.5)
    (tmp_path / "z" / "faces").mkdir(parents=True)
    with pytest.raises(DataError, match=str(tmp_path / "z" / "faces")):
        load_faces("npz", root=tmp_path / "z")


# =========================================================================== real data
needs_shared = pytest.mark.skipif(not (SHARED / "digits").is_dir(), reason=f"no {SHARED}")


@pytest.mark.realdata
@needs_shared
@pytest.mark.parametrize("domain, n_train, n_test", [("usps", 7291, 2007), ("mnistm", 30000, 9001)])
def test_real_digits_npz(domain, n_train, n_test):
    s = load_digits("npz", domain, root=SHARED)
    assert s.x_train.shape == (n_train, 3, 28, 28) and s.x_test.shape == (n_test, 3, 28, 28)
    assert s.x_train.dtype == torch.uint8
    assert torch.bincount(s.y_train, minlength=10).min() > n_train / 20
    if domain == "usps":
        assert torch.equal(s.x_train[:, 0], s.x_train[:, 1])


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED / "faces").is_dir(), reason=f"no {SHARED}/faces")
def test_real_faces_tar():
    f = load_faces("npz", root=SHARED, size=64, crop=64, test_fraction=0.1)
    assert f.x_train.shape == (9000, 3, 64, 64) and f.x_test.shape == (1000, 3, 64, 64)
    m = f.x_train[:200].float().mean()
    assert 60 < m < 200  # real photos, not blank


def test_usps_mnist_framing_puts_the_digit_in_a_20_of_28_box(tmp_path):
    """data.usps_frame: mnist shrinks each USPS digit (which fills its frame) into MNIST's 20x20-in-28x28 box."""
    from genda.config import load_params
    from genda.data.imageio import reframe_uint8
    from genda.data.prepare import prepare_all
    from genda.data.store import digits_path, load_prepared
    from genda.errors import ConfigError

    ones = torch.full((2, 3, 28, 28), 255, dtype=torch.uint8)
    framed = reframe_uint8(ones, 20)
    assert framed.shape == ones.shape and int(framed.sum()) == 2 * 3 * 20 * 20 * 255
    assert framed[..., 4:24, 4:24].min() == 255 and framed[..., :4, :].max() == 0 and framed[..., 24:].max() == 0

    data = {"source": "embedded", "domains": ["usps"], "digit_size": 28, "max_train": 40, "max_test": 20,
            "faces": False}
    fill = prepare_all({**data, "usps_frame": "fill"}, root="", seed=0, out=tmp_path / "fill")
    mnist = prepare_all({**data, "usps_frame": "mnist"}, root="", seed=0, out=tmp_path / "mnist")
    a = load_prepared(digits_path("usps", tmp_path / "fill"))
    b = load_prepared(digits_path("usps", tmp_path / "mnist"))
    assert torch.equal(a["y_train"], b["y_train"])
    border = lambda x: torch.cat([x[..., :4, :].flatten(), x[..., 24:, :].flatten(),  # noqa: E731
                                  x[..., :, :4].flatten(), x[..., :, 24:].flatten()])
    assert int(border(b["x_train"]).max()) == 0 and int(border(a["x_train"]).max()) > 0
    assert "MNIST framing" in mnist["digits"]["usps"]["description"]
    assert "MNIST framing" not in fill["digits"]["usps"]["description"]

    params = tmp_path / "params.yaml"
    import yaml

    p = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    p["data"]["usps_frame"] = "mnst"
    params.write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match=r"data\.usps_frame.*valid: fill, mnist"):
        load_params(params)
