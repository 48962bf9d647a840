"""Conditional generation (issue 3) through the real stage scripts on a tiny project (CPU, ~1 min).

Stages run in-process (``runpy`` with the project as cwd, so no interpreter start-up per stage) on
prepared files built from the embedded data: all of mnistm (the classifier must learn something) and
160/40 faces.  Every method is trained a few steps at toy width, sampled and evaluated."""
from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import genda.config  # noqa: F401  (first: config.py merges the conditional sections into SCHEMA)
from conftest import ROOT, catalogue_params, shrink
from genda.config import validate
from genda.config import COND_FIELDS, check_sampler, cond_config
from genda.data.store import digits_path, faces_path, load_prepared, save_prepared
from genda.errors import ConfigError, DataError
from genda.cond import train as conditional
from genda.metrics.cond_eval import parse_label
from genda.cond.train import load_cond_data, train_cond
from genda.train.timing import read_timing

DIGIT_SIZE, FACE_SIZE, PAD = 28, 64, 2  # save_grid pads 2 px


def cond_params() -> dict:
    """The real params.yaml, shrunk to CPU-seconds (per-entry overrides of the shrunk keys too)."""
    return shrink(catalogue_params())


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread_module):
    yield


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder with params.yaml and prepared embedded data (mnistm, 160/40 faces)."""
    from genda.data.embedded import embedded_digits, embedded_faces

    proj = tmp_path_factory.mktemp("cond") / "proj"
    proj.mkdir()
    (proj / "params.yaml").write_text(yaml.safe_dump(cond_params(), sort_keys=False))
    xtr, ytr, xte, yte, desc = embedded_digits("mnistm", size=DIGIT_SIZE, seed=0)
    save_prepared({"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte, "description": desc},
                  digits_path("mnistm", proj))
    ftr, fte, atr, ate, names, desc = embedded_faces(size=FACE_SIZE, seed=0)
    save_prepared({"x_train": ftr[:160].clone(), "x_test": fte[:40].clone(), "attrs_train": atr[:160].clone(),
                   "attrs_test": ate[:40].clone(), "attr_names": names, "description": desc}, faces_path(proj))
    return proj


def run_stage(proj: Path, script: str, *args: str, params: Path | None = None) -> None:
    """Run stages/<script> as `python stages/<script> args` would, in this process, with cwd = proj."""
    with pytest.MonkeyPatch.context() as m:
        m.chdir(proj)
        m.setattr(sys, "argv", [script, *args])
        m.setenv("GENDA_ROOT", str(proj))
        m.setenv("GENDA_DEVICE", "cpu")
        m.setenv("GENDA_MLFLOW", "0")
        if params:
            m.setenv("GENDA_PARAMS", str(params))
        else:
            m.delenv("GENDA_PARAMS", raising=False)
        runpy.run_path(str(ROOT / "stages" / script), run_name="__main__")


@pytest.fixture(scope="module")
def classifier(project) -> dict:
    run_stage(project, "train_classifier.py")
    return json.loads((project / "metrics/classifier.json").read_text())


@pytest.fixture
def stub_fidelity(monkeypatch) -> list[dict]:
    """FID/IS/KID are tested in test_fidelity.py and cost 5-15 s per call on 2 cores (eigenvalues of a
    2048x2048 matrix), so most tests record the call and get fixed numbers; the acgan test runs the real one."""
    from genda.metrics import fidelity

    calls: list[dict] = []

    def fake(generated, reference, *, fid=True, isc=True, kid=True, **kw):
        calls.append({"gen": tuple(generated.shape), "isc": isc, "fid": fid,
                      "ref": tuple(reference.shape) if torch.is_tensor(reference) else ("features", len(reference)),
                      "kid": kid, **kw})
        out = {"fid": 12.5, "kid_mean": 0.01, "kid_std": 0.001, "kid_subset_size": kw["kid_subset_size"],
               "n_generated": len(generated), "n_reference": len(reference), "extractor": "stub",
               "extractor_weights": "", "extractor_is_fallback": True}
        if isc:
            out.update(is_mean=1.5, is_std=0.1)
        return out

    monkeypatch.setattr(fidelity, "compute_fidelity", fake)
    return calls


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size  # (width, height)


def _grid(rows: int, cols: int, side: int) -> tuple[int, int]:
    return cols * (side + PAD) + PAD, rows * (side + PAD) + PAD


# --------------------------------------------------------------------------- params
def test_sections_validate_and_merge_with_overrides():
    p = cond_params()
    assert set(COND_FIELDS) == {"classifier", "cond", "cond_gens", "cond_sample"}
    validate(p, base=ROOT)
    cfg = cond_config(p, "ddpm")
    assert cfg["method"] == "ddpm" and cfg["lr_schedule"] == "linear" and cfg["T"] == 20
    assert cond_config(p, "attr_acgan")["method"] == "attr_acgan" and cond_config(p, "acgan")["lr_schedule"] == "none"

    def bad(mutate) -> str:
        q = cond_params()
        mutate(q)
        with pytest.raises(ConfigError) as e:
            validate(q, base=ROOT)
            cond_config(q, "acgan")
        return str(e.value)

    assert "'cond_gens.acgan.lrd'" in bad(lambda q: q["cond_gens"]["acgan"].update(lrd=1e-3))
    assert "ddpm" in bad(lambda q: q["cond_gens"]["acgan"].update(method="vae"))
    assert "needs a 'method'" in bad(lambda q: q["cond_gens"].update(mine={"steps": 3}))
    assert "d_norm" in bad(lambda q: q["cond_gens"]["acgan"].update(loss="wgan_gp"))
    assert "'classifier.domain'" in bad(lambda q: q["classifier"].update(domain="cifar"))
    assert "'cond.betas'" in bad(lambda q: q["cond"].update(betas=[0.5]))
    assert "'cond_sample.ddim_steps'" in bad(lambda q: q["cond_sample"].update(ddim_steps=51))
    with pytest.raises(ConfigError, match="unknown conditional generator 'nope'"):
        cond_config(p, "nope")
    with pytest.raises(ConfigError, match="exceeds the model's T = 20"):
        check_sampler({**p["cond_sample"], "ddim_steps": 21}, 20)
    check_sampler({**p["cond_sample"], "ddim_steps": 20}, 20)


# --------------------------------------------------------------------------- classifier
def test_classifier_learns_real_digits(project, classifier):
    assert classifier["domain"] == "mnistm" and classifier["n_test"] == 359
    assert classifier["test_acc"] > 0.5, classifier  # 10 classes: chance is 0.1
    assert len(classifier["per_class_test_acc"]) == 10
    assert (project / "models/classifier/mnistm.pt").exists()
    assert (project / "checkpoints/classifier/mnistm/last.pt").exists()


# --------------------------------------------------------------------------- digits: acgan, ddpm
@pytest.mark.parametrize("name, real_fid", [("acgan", False), ("ddpm", False),
                                            pytest.param("acgan", True, marks=pytest.mark.slow)])
def test_digit_method_trains_samples_and_evaluates(project, classifier, request, name, real_fid):
    calls = None if real_fid else request.getfixturevalue("stub_fidelity")
    run_stage(project, "train_cond.py", name)
    losses = (project / f"metrics/cond/{name}/losses.csv").read_text().splitlines()
    assert losses[0].startswith("step,") and len(losses) == 1 + 4  # log_every 1, 4 steps
    run_stage(project, "sample_cond.py", name)
    out = project / f"samples/cond/{name}"
    files = sorted(p.name for p in (out / "images").glob("*.png"))
    assert files == sorted(f"{d}_{k:03d}.png" for d in range(10) for k in (1, 2, 3))
    assert _size(out / "images/0_001.png") == (DIGIT_SIZE, DIGIT_SIZE)
    assert _size(out / "grid.png") == _grid(10, 2, DIGIT_SIZE)  # one row per digit
    if name == "ddpm":
        assert _size(out / "reverse.png") == _grid(1, 6, DIGIT_SIZE)
        steps = json.loads((out / "meta.json").read_text())["reverse_steps"]
        assert steps[0] == 20 and steps[-1] == 0 and len(steps) == 6 and steps == sorted(steps, reverse=True)
    else:
        assert not (out / "reverse.png").exists()
        # fixed seed: sampling again gives the same bytes
        before = (out / "images/7_002.png").read_bytes()
        run_stage(project, "sample_cond.py", name)
        assert (out / "images/7_002.png").read_bytes() == before
    run_stage(project, "evaluate_cond.py", name)
    m = json.loads((project / f"metrics/cond/{name}.json").read_text())
    assert m["n_images"] == 30 and m["domain"] == "mnistm"
    assert 0.0 <= m["accuracy"] <= 1.0 and set(m["per_class_accuracy"]) == {str(d) for d in range(10)}
    assert all(0.0 <= v <= 1.0 for v in m["per_class_accuracy"].values())
    assert abs(sum(m["per_class_accuracy"].values()) / 10 - m["accuracy"]) < 1e-6  # 3 per class
    assert m["classifier_real_acc"] == classifier["test_acc"]
    # the training curve: curve_every 20 > 4 steps, so one point, at the last step, scored by the classifier
    import pandas as pd

    from genda.metrics.digit_classifier import load_classifier
    from genda.data.tensors import predict_labels

    curve = pd.read_csv(project / f"metrics/cond/curves/{name}.csv")
    assert list(curve["step"]) == [4] and list(curve["setting"]) == [name]
    kept = torch.load(project / f"models/cond/{name}/model.pt", weights_only=True)["curve"]
    assert kept[0]["images"].shape == (10 * 10, 3, DIGIT_SIZE, DIGIT_SIZE) and kept[0]["images"].dtype == torch.uint8
    clf = load_classifier(project / "models/classifier/mnistm.pt", torch.device("cpu"))
    pred = predict_labels(clf, kept[0]["images"], torch.device("cpu"), batch=500)
    assert curve["accuracy"][0] == pytest.approx(float((pred == torch.arange(10).repeat(10)).float().mean()))
    assert m["fid"] > 0 and "kid_mean" in m and m["extractor"] and m["n_reference"] == 359
    # the digit FID (classifier features, not stubbed): 4 training steps are far from real digits
    assert m["digit_fid"] > 2 * m["digit_fid_real_floor"] > 0
    if calls is not None:  # FID/KID (no IS) of the 30 samples against the real mnistm test split, then the
        # real-vs-real floor: 30 real training digits against the same split, same settings
        call = dict(calls[0], gen=(30, 3, 28, 28), ref=(359, 3, 28, 28), isc=False, fid=True, kid=True)
        assert calls == [call, call] and calls[0]["kid_subset_size"] == 20
        assert m["n_real_floor"] == 30 and m["fid_real_floor"] == 12.5  # the stub's number


# --------------------------------------------------------------------------- faces: attr_acgan, tag_cdcgan
def test_attr_acgan_pairs_and_attribute_accuracy(project, stub_fidelity):
    run_stage(project, "train_cond.py", "attr_acgan")
    run_stage(project, "sample_cond.py", "attr_acgan")
    out = project / "samples/cond/attr_acgan"
    files = sorted(p.name for p in (out / "images").glob("*.png"))
    assert files == sorted(f"{c}_{k:03d}.png" for c in (0, 1) for k in range(1, 7))
    assert _size(out / "grid.png") == _grid(2, 2, FACE_SIZE)  # top row off, bottom row on
    assert json.loads((out / "meta.json").read_text())["attribute"] == "Bright"
    run_stage(project, "evaluate_cond.py", "attr_acgan")
    m = json.loads((project / "metrics/cond/attr_acgan.json").read_text())
    assert m["n_images"] == 12 and m["fid"] > 0 and m["is_mean"] >= 1.0 and 0.0 <= m["face_rate"] <= 1.0
    assert 0.0 <= m["attr_accuracy"] <= 1.0 and set(m["attr_per_class_accuracy"]) == {"0", "1"}
    assert 0.0 <= m["attr_classifier_real_acc"] <= 1.0
    call, floor = stub_fidelity  # FID/IS/KID against the 40 real test faces, then 12 real training faces' floor
    assert call["gen"] == (12, 3, 64, 64) and call["ref"] == (40, 3, 64, 64) and call["isc"]
    assert floor["gen"] == (12, 3, 64, 64) and floor["ref"] == (40, 3, 64, 64) and not floor["isc"]


def test_tag_cdcgan_grid_over_tag_combinations(project, stub_fidelity):
    run_stage(project, "train_cond.py", "tag_cdcgan")
    run_stage(project, "sample_cond.py", "tag_cdcgan")
    out = project / "samples/cond/tag_cdcgan"
    assert len(list((out / "images").glob("*.png"))) == 12
    tags = json.loads((out / "tags.json").read_text())
    assert len(tags) == 12 and {tuple(t) for t in tags.values()} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tag_dims"] == [2, 2] and meta["tag_names"] == ["Mirrored", "Bright"]
    assert meta["grid_tags"] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert _size(out / "grid.png") == _grid(4, 2, FACE_SIZE)  # one row per combination
    run_stage(project, "evaluate_cond.py", "tag_cdcgan")
    m = json.loads((project / "metrics/cond/tag_cdcgan.json").read_text())
    assert m["n_images"] == 12 and m["fid"] > 0 and "attr_accuracy" not in m
    # each tag group scored by a classifier trained on the real faces' attribute; the row is the lowest group
    assert set(m["tag_groups"]) == {"Mirrored", "Bright"} and m["tag_groups"]["Bright"]["values"] == ["no Bright",
                                                                                                     "Bright"]
    assert m["tag_accuracy"] == min(g["accuracy"] for g in m["tag_groups"].values())
    assert all(0.0 <= g["classifier_real_acc"] <= 1.0 for g in m["tag_groups"].values())
    # the face rate per requested value: 3 faces per combination, so each value's rate is a multiple of 1/6
    by = m["face_rate_by_tag"]
    assert set(by) == {"Mirrored", "Bright"} and set(by["Bright"]) == {"no Bright", "Bright"}
    assert all(round(r * 6, 6) == round(r * 6) for g in by.values() for r in g.values())
    assert sum(by["Bright"].values()) / 2 == pytest.approx(m["face_rate"])
    assert [(c["ref"], c["isc"]) for c in stub_fidelity] == [((40, 3, 64, 64), True), ((40, 3, 64, 64), False)]


def test_face_rate_by_tag_hand_values():
    import torch

    from genda.metrics.cond_eval import face_rate_by_tag

    detected = torch.tensor([True, False, True, True, False, False])
    requested = torch.tensor([[0, 1], [0, 0], [1, 1], [1, 0], [2, 1], [2, 0]])
    groups = {"hair": {"values": ["black", "blond", "gray", "red"]}, "smile": {"values": ["no", "yes"]}}
    by = face_rate_by_tag(detected, requested, groups)
    assert by["hair"] == {"black": 0.5, "blond": 1.0, "gray": 0.0, "red": None}  # red: never requested
    assert by["smile"] == pytest.approx({"no": 1 / 3, "yes": 2 / 3})


def test_tag_groups_from_face_attributes(project):
    p = cond_params()
    cfg = {**cond_config(p, "tag_cdcgan"), "tag_groups": {"which": ["Mirrored", "Bright"], "bright": ["Bright"]},
           "tag_balance": "bright"}  # tag_balance names a group of these tag_groups
    d = load_cond_data(cfg, "tag_cdcgan", root=project)
    faces = torch.load(project / "data/prepared/faces.pt", weights_only=True)
    a = faces["attrs_train"][:, [faces["attr_names"].index("Mirrored"), faces["attr_names"].index("Bright")]] > 0.5
    one = a.sum(1) == 1  # the faces with exactly one of the two: the others have no "which" value
    assert 0 < int(one.sum()) < len(a) and len(d.x) == int(one.sum()) and d.meta["n_left_out"] == int((~one).sum())
    assert torch.equal(d.x, faces["x_train"][one])
    assert d.meta["tag_dims"] == [2, 2] and d.meta["tag_names"] == ["which", "bright"]
    assert torch.equal(d.cond[:, 0], a[one].long().argmax(1)) and torch.equal(d.cond[:, 1], a[one][:, 1].long())
    assert d.meta["tag_values"] == [["Mirrored", "Bright"], ["no Bright", "Bright"]]
    with pytest.raises(ConfigError, match=r"'cond_gens.tag_cdcgan.tag_groups.x' names 'Smiling'"):
        load_cond_data({**cfg, "tag_groups": {"x": ["Smiling"]}}, "tag_cdcgan", root=project)


def test_tag_balance_draws_a_rare_tag_value_as_often_as_the_others(project, tmp_path, monkeypatch):
    """tag_balance: the batches hold every value of one tag group equally often (a value that is 10 % of the
    images becomes ~50 % of a 2-way group's draws); the batch at a step is a pure function of (seed, step); an
    unknown group is one ConfigError naming the valid ones."""
    from genda.cond.train import BalancedBatchStream, train_cond
    from genda.data.store import BatchStream

    labels = torch.tensor([0] * 90 + [1] * 10)
    s = BalancedBatchStream(labels, 64, seed=5)
    drawn = torch.cat([s.indices(i) for i in range(200)])
    assert len(s.indices(0)) == 64 and abs(float(labels[drawn].float().mean()) - 0.5) < 0.03
    assert torch.equal(s.indices(7), BalancedBatchStream(labels, 64, seed=5).indices(7))
    assert not torch.equal(s.indices(7), s.indices(8))
    plain = BatchStream(100, 64, seed=5)
    assert abs(float(labels[torch.cat([plain.indices(i) for i in range(200)])].float().mean()) - 0.1) < 0.03
    p = cond_params()
    cfg = {**cond_config(p, "tag_cdcgan"), "steps": 1}
    with pytest.raises(ConfigError, match=r"'cond_gens.tag_cdcgan.tag_balance' = 'hair' is not a tag group; "
                                          r"valid: Mirrored, Bright"):
        load_cond_data({**cfg, "tag_balance": "hair"}, "tag_cdcgan", root=project)
    with pytest.raises(ConfigError, match=r"'cond_gens.acgan.tag_balance' is for tag_cdcgan only"):
        load_cond_data({**cond_config(p, "acgan"), "tag_balance": "Bright"}, "acgan", root=project)
    # the stream train_cond draws from: balanced over the named group's values
    calls, init = [], BalancedBatchStream.__init__

    def recording_init(self, labels, *args):
        calls.append(labels.clone())
        init(self, labels, *args)

    monkeypatch.setattr(BalancedBatchStream, "__init__", recording_init)
    d = load_cond_data({**cfg, "tag_balance": "Bright"}, "tag_cdcgan", root=project)
    train_cond({**cfg, "tag_balance": "Bright"}, d, seed=0, device=torch.device("cpu"), ckpt_dir=tmp_path / "c",
               out_model=tmp_path / "m.pt", progress=False)
    assert len(calls) == 1 and torch.equal(calls[0], d.cond[:, 1])


def test_attribute_classifiers_score_at_their_own_size(project):
    """score_groups trains each group's classifier on real faces resized to classifier.attr.image_size and scores
    the generated faces at that size: handed the real test faces with their true tags, it must report exactly its
    own real test accuracy; a requested value that is the wrong one everywhere (2-way group) scores 1 - that."""
    from genda.data.face_attrs import load_face_attributes, tag_groups
    from genda.metrics.cond_eval import score_groups

    p = cond_params()
    faces = load_prepared(faces_path(project), "faces")
    table = load_face_attributes(project, faces=faces)
    groups = {"bright": ["Bright"]}
    true = tag_groups(table["attrs_test"], table["attr_names"], groups)["tags"]
    cfg = {**p["classifier"], "attr_steps": 30, "attr_image_size": 16}
    kw = dict(faces=faces, table=table, groups=groups, cfg=cfg, seed=0, device=torch.device("cpu"), where="t")
    m = score_groups(faces["x_test"], true, **kw)
    g = m["tag_groups"]["bright"]
    assert g["accuracy"] == pytest.approx(g["classifier_real_acc"]) and m["tag_accuracy"] == g["accuracy"]
    assert m["attr_classifier"]["image_size"] == 16 and m["attr_classifier"]["steps"] == 30
    flipped = score_groups(faces["x_test"], 1 - true, **kw)["tag_groups"]["bright"]["accuracy"]
    assert flipped == pytest.approx(1 - g["accuracy"])


def test_synthetic_tag_table(project):
    p = cond_params()
    cfg = {**cond_config(p, "tag_cdcgan"), "tag_source": "synthetic", "synthetic_tag_dims": [3, 2],
           "tag_balance": "group0"}
    d = load_cond_data(cfg, "tag_cdcgan", root=project)
    assert d.meta["tag_dims"] == [3, 2] and d.cond.shape == (160, 2)
    assert set(d.cond[:, 0].tolist()) == {0, 1, 2} and set(d.cond[:, 1].tolist()) == {0, 1}


# --------------------------------------------------------------------------- errors
def test_unknown_attribute_is_a_config_error(project, tmp_path, capsys):
    p = cond_params()
    p["cond_gens"]["attr_acgan"]["attribute"] = "Smiling"
    pf = tmp_path / "params.yaml"
    pf.write_text(yaml.safe_dump(p))
    with pytest.raises(SystemExit) as e:
        run_stage(project, "train_cond.py", "attr_acgan", params=pf)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "'Smiling'" in err and "Mirrored, Bright" in err and "cond_gens.attr_acgan.attribute" in err


def test_faces_without_attribute_table(project, tmp_path):
    d = load_prepared(faces_path(project), "faces")
    save_prepared({"x_train": d["x_train"], "x_test": d["x_test"], "attrs_train": None, "attrs_test": None,
                   "attr_names": [], "description": "no attributes"}, faces_path(tmp_path))
    p = cond_params()
    with pytest.raises(ConfigError, match="attribute table"):
        load_cond_data(cond_config(p, "attr_acgan"), "attr_acgan", root=tmp_path)
    with pytest.raises(ConfigError, match="tag_source: synthetic"):
        load_cond_data(cond_config(p, "tag_cdcgan"), "tag_cdcgan", root=tmp_path)


def test_missing_prepared_data_names_the_file(project):
    cfg = {**cond_config(cond_params(), "acgan"), "domain": "svhn"}
    with pytest.raises(DataError, match=r"digits/svhn\.pt not found.*data\.domains"):
        load_cond_data(cfg, "acgan", root=project)


def test_bad_sample_file_name_is_a_data_error(tmp_path):
    assert parse_label("7_042", tmp_path, 10) == 7
    for stem in ("seven_042", "12_001", "0042"):
        with pytest.raises(DataError, match=str(tmp_path / f"{stem}.png")):
            parse_label(stem, tmp_path, 10)


# --------------------------------------------------------------------------- resume
RESUME_CASES = {
    "acgan": {},
    "acgan_wgan_gp": {"method": "acgan", "loss": "wgan_gp", "d_norm": "layer", "d_steps": 2, "ema_decay": 0.9},
    "ddpm": {"lr_schedule": "linear"},
    "attr_acgan": {},
    "tag_cdcgan": {},
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_checkpoint_then_resume_equals_uninterrupted(project, tmp_path, monkeypatch, capsys, case):
    p = cond_params()
    base = RESUME_CASES[case].get("method", case)
    cfg = {**cond_config(p, base), **RESUME_CASES[case], "steps": 6, "checkpoint_every": 2, "batch_size": 8,
           "curve_every": 2, "curve_per_class": 2}
    data = load_cond_data(cfg, base, root=project)
    data.x, data.cond = data.x[:64], data.cond[:64]
    kept = tmp_path / "step4.pt"
    real_save = conditional.Checkpointer.save

    def save_and_keep(self, step, state):
        real_save(self, step, state)
        if step == 4:
            shutil.copy(self.path, kept)

    monkeypatch.setattr(conditional.Checkpointer, "save", save_and_keep)
    kw = dict(seed=3, device=torch.device("cpu"), progress=False)
    hist_a = train_cond(cfg, data, ckpt_dir=tmp_path / "a", out_model=tmp_path / "ma/model.pt",
                        out_timing=tmp_path / "ma/timing.json", **kw)
    assert kept.exists()
    (tmp_path / "b").mkdir()
    shutil.copy(kept, tmp_path / "b/last.pt")  # as if killed after the step-4 checkpoint
    capsys.readouterr()
    hist_b = train_cond(cfg, data, ckpt_dir=tmp_path / "b", out_model=tmp_path / "mb/model.pt",
                        out_timing=tmp_path / "mb/timing.json", **kw)
    assert "resumed from step 4" in capsys.readouterr().out
    assert hist_a == hist_b and len(hist_a) == 6
    # the same bytes: no wall time in the model file (genda.train.timing), so DVC sees no change
    assert (tmp_path / "ma/model.pt").read_bytes() == (tmp_path / "mb/model.pt").read_bytes()
    ma, mb = torch.load(tmp_path / "ma/model.pt"), torch.load(tmp_path / "mb/model.pt")
    if base in ("acgan", "ddpm"):  # the curve continues after the resume: same points, same images
        assert [r["step"] for r in ma["curve"]] == [r["step"] for r in mb["curve"]] == [2, 4, 6]
        assert all(torch.equal(a["images"], b["images"]) for a, b in zip(ma["curve"], mb["curve"]))
        # and its wall times, carried over the resume by the checkpoint, only grow along it
        for t in (read_timing(tmp_path / d / "timing.json", "model.pt") for d in ("ma", "mb")):
            w = [t["wall_s"][s] for s in (2, 4, 6)]
            assert 0 <= w[0] <= w[1] <= w[2] <= t["train_seconds"], w
    else:
        assert ma["curve"] == mb["curve"] == []
    wa, wb = ma["weights"]["net"], mb["weights"]["net"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs after resume"


@pytest.mark.parametrize("name", ["acgan", "ddpm"])
def test_training_curve_does_not_change_training(project, tmp_path, name):
    """Curve samples use their own generator and leave every network as it was: the trained weights are
    bit-identical with and without the curve; the curve holds fixed-noise samples at each curve step."""
    cfg = {**cond_config(cond_params(), name), "steps": 4, "checkpoint_every": 100, "batch_size": 8}
    data = load_cond_data(cfg, name, root=project)
    data.x, data.cond = data.x[:64], data.cond[:64]
    kw = dict(seed=1, device=torch.device("cpu"), progress=False)
    train_cond({**cfg, "curve_every": 0}, data, ckpt_dir=tmp_path / "a", out_model=tmp_path / "a.pt", **kw)
    train_cond({**cfg, "curve_every": 3, "curve_per_class": 2}, data, ckpt_dir=tmp_path / "b",
               out_model=tmp_path / "b.pt", out_timing=tmp_path / "timing.json", **kw)
    a, b = torch.load(tmp_path / "a.pt"), torch.load(tmp_path / "b.pt")
    assert a["curve"] == [] and [r["step"] for r in b["curve"]] == [3, 4]  # every 3 steps and the last one
    assert set(b["curve"][0]) == {"step", "images"} and "train_seconds" not in b  # wall times: beside the model
    t = read_timing(tmp_path / "timing.json", "b.pt")
    assert set(t["wall_s"]) == {3, 4} and 0 <= t["wall_s"][3] <= t["wall_s"][4] <= t["train_seconds"]
    assert b["curve"][0]["images"].shape == (20, 3, DIGIT_SIZE, DIGIT_SIZE)
    assert not torch.equal(b["curve"][0]["images"], b["curve"][1]["images"])  # the generator moved
    for k in a["weights"]["net"]:
        assert torch.equal(a["weights"]["net"][k], b["weights"]["net"][k]), k


def test_acgan_ema_generator_gets_its_own_batchnorm_statistics(project, tmp_path):
    """cond.ema_bn_batches: the exported EMA generator's BatchNorm statistics are recomputed over that many noise
    batches for the averaged weights (0: the trained G's, copied); the weights themselves are the same either way."""
    cfg = {**cond_config(cond_params(), "acgan"), "steps": 4, "checkpoint_every": 100, "batch_size": 8,
           "ema_decay": 0.5, "curve_every": 0}
    data = load_cond_data(cfg, "acgan", root=project)
    data.x, data.cond = data.x[:64], data.cond[:64]
    kw = dict(seed=1, device=torch.device("cpu"), progress=False)
    for n in (0, 3):
        train_cond({**cfg, "ema_bn_batches": n}, data, ckpt_dir=tmp_path / f"c{n}", out_model=tmp_path / f"{n}.pt",
                   **kw)
    copied, own = (torch.load(tmp_path / f"{n}.pt")["weights"]["net"] for n in (0, 3))
    trained_g = torch.load(tmp_path / "c0/last.pt")["state"]["method"]["G"]
    stats = [k for k in own if k.endswith("running_mean")]
    assert stats and all(torch.equal(copied[k], trained_g[k]) for k in stats)
    assert all(not torch.allclose(own[k], trained_g[k]) for k in stats)
    assert all(own[k].item() == 3 for k in own if k.endswith("num_batches_tracked"))
    assert all(torch.equal(own[k], copied[k]) for k in own if "running" not in k and "num_batches" not in k)


def test_checkpoint_of_other_settings_is_not_resumed(project, tmp_path, capsys):
    cfg = {**cond_config(cond_params(), "acgan"), "steps": 2, "checkpoint_every": 1}
    data = load_cond_data(cfg, "acgan", root=project)
    kw = dict(seed=0, device=torch.device("cpu"), progress=False, ckpt_dir=tmp_path, out_model=tmp_path / "m.pt")
    train_cond(cfg, data, **kw)
    train_cond({**cfg, "lr_g": 1e-4}, data, **kw)
    assert "made with other settings; starting fresh" in capsys.readouterr().out


# --------------------------------------------------------------------------- learning signal
def test_losses_decrease_on_a_toy_problem(project, tmp_path):
    """DDPM's noise-prediction loss and ACGAN's auxiliary class loss fall within 40 steps on 64 digits."""
    p = cond_params()
    kw = dict(seed=0, device=torch.device("cpu"), progress=False)

    def run(name: str, key: str, **over) -> tuple[float, float]:
        cfg = {**cond_config(p, name), "steps": 40, "log_every": 1, "batch_size": 8, "checkpoint_every": 1000,
               **over}
        data = load_cond_data(cfg, name, root=project)
        data.x, data.cond = data.x[:64], data.cond[:64]
        h = train_cond(cfg, data, ckpt_dir=tmp_path / name, out_model=tmp_path / f"{name}.pt", **kw)
        assert len(h) == 40
        return sum(r[key] for r in h[:8]) / 8, sum(r[key] for r in h[-8:]) / 8

    first, last = run("ddpm", "loss", lr=2e-3, denoiser="context_unet", prediction="eps")  # the seed's recipe
    assert last < 0.8 * first, (first, last)
    first, last = run("ddpm", "loss", lr=5e-3, denoiser="film_unet", prediction="v")  # the default (starts near 0.94)
    assert last < 0.9 * first, (first, last)
    first, last = run("acgan", "d_aux", lr_d=1e-3)  # default aux_fake_d false: D's class loss on real digits only
    assert 2.0 < first < 3.0 and last < 0.9 * first, (first, last)  # starts near ln 10 (one 10-way CE)
    first, last = run("acgan", "d_aux", lr_d=1e-3, aux_fake_d=True)
    assert first > 4.0 and last < 0.9 * first, (first, last)  # starts near 2 ln 10 (real and fake 10-way CEs)


# --------------------------------------------------------------------------- digit FID (classifier features)
def test_frechet_distance_of_gaussians():
    from genda.metrics.digit_fid import frechet_distance

    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    b = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([2.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert frechet_distance(a, b + shift) == pytest.approx(4.0, abs=0.1)  # |mu_a - mu_b|^2, same covariance
    assert frechet_distance(a, 3 * b) == pytest.approx(4 * (1 + 9 - 2 * 3), abs=0.3)  # Tr(S_a + S_b - 2 (S_a S_b)^1/2)
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(a[:1], b)


def test_digit_fid_sees_digit_shape(project, classifier):
    """Real digits sit near the real-vs-real floor; one-class samples (mode collapse) and digits whose pixels
    are shuffled (same colours, no shape) score far above it."""
    from genda.data.store import digits_path, load_prepared
    from genda.metrics.digit_classifier import load_classifier
    from genda.metrics.digit_fid import digit_fid_with_floor

    cpu = torch.device("cpu")
    d = load_prepared(digits_path("mnistm", project), "digits")
    clf = load_classifier(project / "models/classifier/mnistm.pt", cpu)
    n = 150
    real = d["x_train"][-n:]  # not the floor's first n
    one_class = d["x_train"][d["y_train"] == 1][:n]
    perm = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(0))
    shuffled = real.flatten(2)[:, :, perm].reshape(real.shape)
    fid = {k: digit_fid_with_floor(clf, x, d["x_test"], d["x_train"], cpu)
           for k, x in (("real", real), ("one_class", one_class), ("shuffled", shuffled))}
    floor = fid["real"]["digit_fid_real_floor"]
    assert all(v["digit_fid_real_floor"] == floor for v in fid.values())  # same floor for every sample set
    assert fid["real"]["digit_fid"] < 2 * floor
    assert fid["one_class"]["digit_fid"] > 5 * floor and fid["shuffled"]["digit_fid"] > 5 * floor
    assert fid["real"]["digit_fid_features"] == "digit classifier penultimate layer (64-d)"


# --------------------------------------------------------------------------- cached reference features
def test_fid_reference_cache_gives_the_same_metrics_without_reextracting(project, monkeypatch):
    """fid_reference@faces / @digits extract the real features once; an evaluation with the cache scores exactly
    what it scores from the images (FID to float round-off) and extracts only its own samples."""
    from genda.data.pngs import save_pngs
    from genda.metrics import facedetect, fidelity
    from genda.metrics.fid_reference import floor_size, load_real_face_rate, load_reference
    from genda.metrics.gan_eval import evaluate_face_samples

    p = cond_params()
    fid_dir = project / "features/fid"
    try:
        run_stage(project, "fid_reference.py", "faces")
        run_stage(project, "fid_reference.py", "digits")
        faces = torch.load(fid_dir / "faces.pt", weights_only=True)
        digits = torch.load(fid_dir / "digits.pt", weights_only=True)
        assert faces["data"] == "faces:test" and digits["data"] == "digits:mnistm"
        assert faces["reference"]["2048"].shape == (40, 2048) and digits["reference"]["2048"].shape == (359, 2048)
        assert floor_size(p) == 40  # max(sample.n_images 40, cond_sample.n_images 12, 10 x n_per_class 3)
        assert len(faces["held_out"]["2048"]) == 40 and faces["n_held_out_total"] == 160
        with pytest.raises(SystemExit):  # stage.run: "genda: error: fid_reference: unknown data kind 'cats'; ..."
            run_stage(project, "fid_reference.py", "cats")

        real = load_prepared(faces_path(project), "faces")
        folder = project / "tmp_fake_faces"
        save_pngs(real["x_train"][100:140].flip(-1), folder)  # 40 "generated" faces
        ev = {**p["evaluate"], "kid_subset_size": 10}
        monkeypatch.chdir(project)
        monkeypatch.setenv("GENDA_ROOT", str(project))
        extracted, detected = [], []
        real_extract, real_detect = fidelity.extract_features, facedetect.detect_faces
        monkeypatch.setattr(fidelity, "extract_features",
                            lambda x, *a, **k: extracted.append(len(x)) or real_extract(x, *a, **k))
        monkeypatch.setattr(facedetect, "detect_faces", lambda x, **k: detected.append(len(x)) or real_detect(x, **k))
        cached = evaluate_face_samples(folder, ev, reference_cache=fid_dir / "faces.pt")
        assert extracted == [40]  # only the samples: reference and floor images come from the cache
        assert detected == [40]   # and the real faces' detection rate too
        fresh = evaluate_face_samples(folder, ev, reference_cache=None)
        assert extracted[1:] == [40, 40, 40, 40]  # samples + reference, then held-out floor + reference
        assert detected[1:] == [40, 40]           # samples, then the first 40 held-out real faces
        for k in ("fid", "fid_real_floor"):
            assert cached[k] == pytest.approx(fresh[k], rel=1e-9) and cached[k] > 0
        for k in ("is_mean", "is_std", "kid_mean", "kid_std", "kid_real_floor", "n_real_floor", "face_rate",
                  "face_rate_real"):
            assert cached[k] == fresh[k]
        assert len(faces["face_counts"]) == 160 and faces["face_detector"] == facedetect.detector_name()
        rate = sum(k >= 1 for k in faces["face_counts"][:40]) / 40
        assert fresh["face_rate_real"] == rate
        assert load_real_face_rate(fid_dir / "faces.pt", 40, data="faces:test") == rate
        assert load_real_face_rate(fid_dir / "faces.pt", 40, data="faces:train") is None     # other data
        assert load_real_face_rate(fid_dir / "faces.pt", 161, data="faces:test") is None     # too few counted
        assert load_real_face_rate(fid_dir / "digits.pt", 10, data="digits:mnistm") is None  # no counts
        monkeypatch.setattr(facedetect, "detector_name", lambda **k: "another detector")
        assert load_real_face_rate(fid_dir / "faces.pt", 40, data="faces:test") is None     # other detector
        assert cached["n_real_floor"] == 40 and cached["n_reference"] == 40 and cached["is_mean"] >= 1.0

        choice = fidelity.choose_extractor()
        path = fid_dir / "faces.pt"
        assert load_reference(path, choice, 12, data="faces:train") is None           # other data
        assert load_reference(path, choice, 40, data="faces:test") is not None
        assert load_reference(path, choice, 41, data="faces:test") is None            # the floor needs 41 of 160
        other = fidelity.ExtractorChoice("inception-v3-compat", "/w.pth", False)
        assert load_reference(path, other, 12, data="faces:test") is None             # other extractor
        with pytest.raises(ConfigError, match="rerun the fid_reference stage"):
            ref, held = load_reference(path, choice, 12, data="faces:test")
            fidelity.compute_fidelity(held, ref, extractor=other)  # features never mix two extractors
    finally:
        shutil.rmtree(fid_dir, ignore_errors=True)


def test_ddpm_curve_snapshots_sample_with_the_curve_keys(project, monkeypatch):
    """The training curve's DDPM snapshots (``sample`` without a sampling config) use ``curve_ddim_steps`` and
    ``curve_guide_w`` (the embedded default: DDIM 10 at w 10, as sample_cond), and DDIM min(50, T) at w 2 without."""
    import genda.cond.diffusion as diffusion
    from genda.cond.methods import build_method

    seen = []

    def fake_ddim(net, sched, labels, *, steps, eta, guide_w, **kw):
        seen.append((steps, guide_w))
        return torch.zeros(len(labels), 3, DIGIT_SIZE, DIGIT_SIZE), {}

    monkeypatch.setattr(diffusion, "sample_ddim", fake_ddim)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = cond_config(cond_params(), "ddpm")
    assert params["cond_gens"]["ddpm"]["curve_ddim_steps"] == 10 and params["cond_gens"]["ddpm"]["curve_guide_w"] == 10
    meta = {"channels": 3, "n_classes": 10, "img_size": DIGIT_SIZE, "kind": "digits", "domain": "mnistm"}
    labels = torch.arange(10)
    for extra, want in (({"curve_ddim_steps": 10, "curve_guide_w": 10.0}, (10, 10.0)), ({}, (min(50, cfg["T"]), 2.0))):
        c = {k: v for k, v in cfg.items() if k not in ("curve_ddim_steps", "curve_guide_w")} | extra
        m = build_method(c, meta, torch.device("cpu"), torch.Generator().manual_seed(0))
        m.sample(labels, torch.Generator().manual_seed(1))
        assert seen[-1] == want
        # an explicit sampling config (sample_cond's) wins over the curve keys
        m.sample(labels, torch.Generator(), {"sampler": "ddim", "ddim_steps": 7, "ddim_eta": 0.0, "guide_w": 3.0})
        assert seen[-1] == (7, 3.0)


def test_acgan_label_input_concat_keeps_the_noise():
    """label_input concat: G's first layer sees [z, onehot(y)], so an attribute flip changes only the K label inputs
    (the pair keeps the face); product (the default): Embed(y) * z rescales every noise dimension."""
    from genda.cond.models.acgan import ACGANGenerator

    torch.manual_seed(0)
    z = torch.randn(4, 16)
    off, on = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    cat = ACGANGenerator(16, 2, 32, ngf=8, label_input="concat")
    h0, h1 = cat.input(z, off), cat.input(z, on)
    assert h0.shape == (4, 18) and torch.equal(h0[:, :16], z) and torch.equal(h1[:, :16], z)
    assert torch.equal(h0[:, 16:], torch.tensor([[1.0, 0.0]] * 4)) and torch.equal(h1[:, 16:], torch.tensor([[0.0, 1.0]] * 4))
    assert cat.fc.in_features == 18 and not hasattr(cat, "label_emb")
    assert cat.eval()(z, on).shape == (4, 3, 32, 32)
    prod = ACGANGenerator(16, 2, 32, ngf=8)
    assert prod.fc.in_features == 16
    assert torch.equal(prod.input(z, on), prod.label_emb.weight[1] * z)
    with pytest.raises(ConfigError, match="label_input must be one of product, concat"):
        ACGANGenerator(16, 2, 32, label_input="sum")


def test_report_lines_of_the_face_conditionals(tmp_path):
    """The report's attr_acgan / tag_cdcgan paragraph: off / on rates in label order, one row per requested tag
    value with its recognition rate and its face rate."""
    from genda.pipeline.report import _face_condition_lines

    (tmp_path / "metrics/cond").mkdir(parents=True)
    (tmp_path / "metrics/cond/attr_acgan.json").write_text(json.dumps({
        "attr_accuracy": 0.9, "attribute": "Smiling", "attr_per_class_accuracy": {"1": 0.95, "0": 0.85},
        "attr_classifier_real_acc": 0.89}))
    (tmp_path / "metrics/cond/tag_cdcgan.json").write_text(json.dumps({
        "tag_groups": {"hair": {"accuracy": 0.75, "classifier_real_acc": 0.9, "values": ["Black_Hair", "Gray_Hair"],
                                "per_class": {"0": 1.0, "1": 0.5}}},
        "face_rate_by_tag": {"hair": {"Black_Hair": 0.96, "Gray_Hair": None}}}))
    text = "\n".join(_face_condition_lines(["attr_acgan", "tag_cdcgan"], tmp_path))
    assert "recognised in 90.0% of the generated faces (off / on: 85.0% / 95.0%)" in text
    assert "| **hair** (90.0%) | all | **75.0%** | |" in text
    assert "| | Black_Hair | 100.0% | 96.0% |" in text and "| | Gray_Hair | 50.0% | – |" in text
