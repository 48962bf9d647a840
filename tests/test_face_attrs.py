"""Face attributes from a table the params name (data.face_attrs), and tag groups built from them (issue 34)."""
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT
from genda.config import validate
from genda.data.face_attrs import face_attrs_path, load_face_attributes, tag_groups
from genda.data.sources import load_faces, npz_face_attributes
from genda.data.store import save_prepared
from genda.errors import ConfigError, DataError
from test_data_sources import _face_images, _write_tar

NAMES = ["Black_Hair", "Blond_Hair", "Smiling"]


def _celeba_txt(rows: dict) -> str:
    # CelebA's list_attr_celeba.txt: a count line (of the full set), the names, then "<image> v1 v2 ..." in -1 / 1
    return "202599\n" + " ".join(NAMES) + " \n" + "".join(f"{k} {' '.join(f'{v:2d}' for v in vals)}\n"
                                                          for k, vals in rows.items())


def test_table_named_by_the_params_is_aligned_with_the_prepared_faces(tmp_path):
    files = _face_images(8)
    _write_tar(tmp_path / "data" / "faces" / "celeba.tar", files)
    keys = [Path(k).name for k in sorted(files)]
    rows = {k: (1 if i % 2 else -1, -1 if i % 2 else 1, 1 if i < 3 else -1) for i, k in enumerate(keys)}
    rows["019999.jpg"] = (1, 1, 1)  # rows of images that are not in the archive are fine
    table = tmp_path / "attrs" / "list_attr_celeba_first20k.txt"
    table.parent.mkdir()
    table.write_text(_celeba_txt(rows))
    a = npz_face_attributes(table, root=tmp_path / "data", seed=3, test_fraction=0.25)
    assert a["attr_names"] == NAMES and a["attrs_train"].shape == (6, 3) and a["attrs_test"].shape == (2, 3)
    # the same rows, in the same order, as the table found beside the faces gives load_faces (which prepare writes)
    (tmp_path / "data" / "faces" / "list_attr_celeba.txt").write_text(_celeba_txt(rows))
    f = load_faces("npz", root=tmp_path / "data", size=8, crop=32, seed=3, test_fraction=0.25)
    assert torch.equal(a["attrs_train"], f.attrs_train) and torch.equal(a["attrs_test"], f.attrs_test)
    assert sorted(map(tuple, torch.cat([a["attrs_train"], a["attrs_test"]]).tolist())) == sorted(
        tuple(float(v > 0) for v in vals) for k, vals in rows.items() if k in keys)
    # max_train keeps the same seeded subset as load_faces
    sub = npz_face_attributes(table, root=tmp_path / "data", seed=3, test_fraction=0.25, max_train=4)
    fs = load_faces("npz", root=tmp_path / "data", size=8, crop=32, seed=3, test_fraction=0.25, max_train=4)
    assert torch.equal(sub["attrs_train"], fs.attrs_train)


def test_a_bad_table_is_one_error_naming_the_file_and_line(tmp_path):
    files = _face_images(4)
    _write_tar(tmp_path / "faces" / "celeba.tar", files)
    keys = [Path(k).name for k in sorted(files)]
    table = tmp_path / "attrs.txt"
    with pytest.raises(DataError, match=r"attrs\.txt not found \(params: data\.face_attrs\)"):
        npz_face_attributes(table, root=tmp_path)
    table.write_text(_celeba_txt({k: (1, -1, 1) for k in keys[:3]}))  # no row for the 4th face
    with pytest.raises(DataError, match=rf"attrs\.txt: no attribute row for image {keys[3]}"):
        npz_face_attributes(table, root=tmp_path, test_fraction=0.5)
    text = _celeba_txt({k: (1, -1, 1) for k in keys}).replace(f"{keys[1]}  1 -1  1", f"{keys[1]}  1 -1")
    table.write_text(text)
    with pytest.raises(DataError, match=r"attrs\.txt, line 4: 2 values for 3 attributes"):
        npz_face_attributes(table, root=tmp_path)
    table.write_text(_celeba_txt({k: (1, -1, 1) for k in keys}).replace(f"{keys[0]}  1", f"{keys[0]}  2"))
    with pytest.raises(DataError, match=r"line 3: attribute values must be -1, 0 or 1"):
        npz_face_attributes(table, root=tmp_path)


def test_tag_groups_one_attribute_is_off_on_several_are_which_one():
    attrs = torch.tensor([[1, 0, 1],    # black, smiling
                          [0, 1, 0],    # blond
                          [1, 1, 0],    # black and blond: no hair value -> left out
                          [0, 0, 1],    # neither: left out
                          [0, 1, 1]], dtype=torch.float32)
    t = tag_groups(attrs, NAMES, {"hair": ["Black_Hair", "Blond_Hair"], "smile": ["Smiling"]})
    assert t["dims"] == [2, 2] and t["names"] == ["hair", "smile"]
    assert t["values"] == [["Black_Hair", "Blond_Hair"], ["no Smiling", "Smiling"]]
    assert t["keep"].tolist() == [True, True, False, False, True]
    assert t["tags"][t["keep"]].tolist() == [[0, 1], [1, 0], [1, 1]]
    t3 = tag_groups(attrs, NAMES, {"hair": ["Smiling", "Blond_Hair", "Black_Hair"]})
    assert t3["dims"] == [3] and t3["keep"].tolist() == [False, True, False, True, False]  # exactly one on
    assert t3["tags"][[1, 3], 0].tolist() == [1, 0]
    default = tag_groups(attrs, NAMES, None)  # every attribute its own off/on group, no face left out
    assert default["dims"] == [2, 2, 2] and default["keep"].all() and torch.equal(default["tags"], attrs.long())
    with pytest.raises(ConfigError, match=r"'cond_gens.t.tag_groups.hair' names 'Red_Hair', not an attribute of "
                                          r"the faces; available: Black_Hair, Blond_Hair, Smiling"):
        tag_groups(attrs, NAMES, {"hair": ["Black_Hair", "Red_Hair"]}, where="cond_gens.t.tag_groups")


def test_load_face_attributes_prefers_the_named_table(tmp_path):
    x = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)
    faces = {"x_train": x, "x_test": x[:1], "attrs_train": torch.ones(3, 1), "attrs_test": torch.ones(1, 1),
             "attr_names": ["Bright"], "description": "t"}
    got = load_face_attributes(tmp_path, faces=faces)
    assert got["attr_names"] == ["Bright"] and got["source"].endswith("faces.pt")
    save_prepared({"attrs_train": torch.zeros(3, 2), "attrs_test": torch.zeros(1, 2), "attr_names": ["A", "B"],
                   "table": "t.txt"}, face_attrs_path(tmp_path))
    got = load_face_attributes(tmp_path, faces=faces)
    assert got["attr_names"] == ["A", "B"] and got["source"].endswith("face_attrs.pt")
    save_prepared({"attrs_train": torch.zeros(2, 2), "attrs_test": torch.zeros(1, 2), "attr_names": ["A", "B"],
                   "table": "t.txt"}, face_attrs_path(tmp_path))
    with pytest.raises(DataError, match=r"face_attrs\.pt: attrs_train is \(2, 2\) but there are 3 train faces"):
        load_face_attributes(tmp_path, faces=faces)
    no_table = {**faces, "attrs_train": None, "attrs_test": None, "attr_names": []}
    face_attrs_path(tmp_path).unlink()
    assert load_face_attributes(tmp_path, faces=no_table)["attrs_train"] is None


def test_face_attrs_param_is_checked_before_any_work(tmp_path):
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["data"].update(source="npz", root=str(tmp_path), face_attrs="nowhere/list_attr.txt")
    with pytest.raises(ConfigError, match=r"'data.face_attrs' = 'nowhere/list_attr.txt' does not exist"):
        validate(p, base=tmp_path)
    (tmp_path / "list_attr.txt").write_text("1\nA\n")
    p["data"]["face_attrs"] = "list_attr.txt"
    assert validate(p, base=tmp_path)["data"]["face_attrs"] == "list_attr.txt"
    p["data"]["source"] = "embedded"
    with pytest.raises(ConfigError, match=r"'data.face_attrs' .* is read for data.source 'npz' only"):
        validate(p, base=tmp_path)
    p["data"].update(source="npz", face_atrs="x")  # a typo is caught too
    with pytest.raises(ConfigError, match="face_atrs"):
        validate(p, base=tmp_path, check_paths=False)
