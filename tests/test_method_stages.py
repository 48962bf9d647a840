"""Every method of the default params through its own stage scripts (issue 32 item 5): each face GAN through
train_gan -> sample_gan -> evaluate_gan, each DA setting through train_da -> evaluate_da.

The stages run in-process (``runpy`` with the project as cwd, as tests/test_conditional_pipeline.py does) on
prepared files built straight from the embedded data (160/40 faces; 192/96 digits per domain), the default's
methods shrunk to a couple of steps of a few images: ~15 s on 2 cores in all, the real FID/IS/KID (fallback
extractor) and face detector included."""
from __future__ import annotations

import hashlib
import json
import math
import runpy
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from conftest import ROOT, catalogue_params, real_params, shrink
from genda.config import da_setting_config, face_gan_config
from genda.data.store import digits_path, faces_path, save_prepared

N_IMAGES, GRID, PAD = 20, 8, 2
PAIR = "mnistm-usps"


def run_stage(proj: Path, script: str, *args: str) -> None:
    """`python stages/<script> args` in this process, cwd = proj (cold: no warm fork server)."""
    with pytest.MonkeyPatch.context() as m:
        m.chdir(proj)
        m.setattr(sys, "argv", [script, *args])
        for k, v in {"GENDA_ROOT": str(proj), "GENDA_DEVICE": "cpu", "GENDA_MLFLOW": "0", "GENDA_WARM": "0",
                     "GENDA_NPROC": "1", "GENDA_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}.items():
            m.setenv(k, v)  # restored afterwards (stage.run pins OMP/MKL in os.environ)
        m.delenv("GENDA_PARAMS", raising=False)
        try:
            runpy.run_path(str(ROOT / "stages" / script), run_name="__main__")
        except SystemExit as e:  # a stage's user error: "genda: error: ..." and exit 2
            raise AssertionError(f"{script} {' '.join(args)} exited with {e.code}") from None


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread_module):
    yield


@pytest.fixture(scope="module")
def params() -> dict:
    p = shrink(catalogue_params())
    p["sample"].update(n_images=N_IMAGES, grid=GRID)
    p["evaluate"].update(kid_subset_size=10, batch_size=20)
    tiny = dict(steps=2, batch_size=8, checkpoint_every=1, log_every=1)
    p["gan"].update(tiny, ema_bn_batches=2)
    for entry in p["face_gans"].values():
        entry.update({k: v for k, v in tiny.items() if k in entry})
    p["da"].update(pairs=[PAIR], steps=4, batch_size=16, checkpoint_every=2, log_every=1, eval_every=2,
                   tsne_points=20)
    return p


@pytest.fixture(scope="module")
def project(tmp_path_factory, params) -> Path:
    from genda.data.embedded import embedded_digits, embedded_faces

    proj = tmp_path_factory.mktemp("methods") / "proj"
    proj.mkdir()
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ftr, fte, atr, ate, names, desc = embedded_faces(size=64, seed=0)
    save_prepared({"x_train": ftr[:160].clone(), "x_test": fte[:40].clone(), "attrs_train": atr[:160].clone(),
                   "attrs_test": ate[:40].clone(), "attr_names": names, "description": desc}, faces_path(proj))
    for dom in PAIR.split("-"):
        xtr, ytr, xte, yte, desc = embedded_digits(dom, size=28, seed=0)
        save_prepared({"x_train": xtr[:192].clone(), "y_train": ytr[:192].clone(), "x_test": xte[:96].clone(),
                       "y_test": yte[:96].clone(), "description": desc}, digits_path(dom, proj))
    return proj


def test_default_lists_the_methods_this_file_runs(params):
    """The lists below are every face GAN's: the default's (Methods A and B) then the real profile's others (issue
    34: they run there, one knob away from the default); a method added to either is run here too."""
    default = real_params()
    assert list(params["face_gans"])[:2] == list(default["face_gans"]) == ["dcgan", "dcgan_tricks"]
    assert len(params["face_gans"]) == 7 and "stylegan2_lite" in params["face_gans"]
    assert params["da"]["settings"] == default["da"]["settings"]
    assert {"dsn", "mean_teacher"} <= set(default["da"]["settings"])


@pytest.fixture(scope="module")
def face_reference(project):
    run_stage(project, "fid_reference.py", "faces")
    assert (project / "features/fid/faces.pt").exists()


_FACE_RUNS: set[str] = set()


def face_gan_stages(project: Path, name: str) -> None:
    """train_gan@name, sample_gan@name, evaluate_gan@name, once per test session."""
    if name not in _FACE_RUNS:
        _FACE_RUNS.add(name)
        for script in ("train_gan.py", "sample_gan.py", "evaluate_gan.py"):
            run_stage(project, script, name)


@pytest.mark.parametrize("name", list(catalogue_params()["face_gans"]))
def test_face_gan_trains_samples_and_evaluates_through_its_stages(project, params, face_reference, name):
    from genda.runtime.checkpoint import load_weights

    cfg = face_gan_config(params, name)
    face_gan_stages(project, name)
    # the model holds this method's settings (loss, arch, tricks): the stage trained the method it was named for
    ck = load_weights(project / f"models/gan/{name}/generator.pt")
    assert ck["cfg"] == cfg and ck["steps"] == 2
    for key in ("arch", "loss", "spectral_norm", "diffaugment", "ema_decay", "d_steps", "noisy_real"):
        assert ck["cfg"][key] == params["face_gans"][name].get(key, params["gan"][key]), key
    losses = (project / f"metrics/gan/{name}/losses.csv").read_text().splitlines()
    assert losses[0].startswith("step,loss_d,loss_g") and [r.split(",")[0] for r in losses[1:]] == ["1", "2"]
    assert all(math.isfinite(float(v)) for r in losses[1:] for v in r.split(",")[1:3])

    out = project / f"samples/gan/{name}"
    pngs = sorted((out / "images").glob("*.png"))
    assert len(pngs) == N_IMAGES
    for p in pngs[:3] + pngs[-1:]:
        with Image.open(p) as im:
            assert im.size == (64, 64) and im.mode == "RGB"
    with Image.open(out / "grid.png") as im:  # the first GRID images, 8 a row, 2 px padding
        assert im.size == (8 * (64 + PAD) + PAD, (GRID // 8) * (64 + PAD) + PAD)
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert sorted(manifest) == [p.name for p in pngs]
    assert manifest[pngs[0].name] == hashlib.md5(pngs[0].read_bytes()).hexdigest()

    m = json.loads((project / f"metrics/gan/{name}/eval.json").read_text())
    for key in ("fid", "is_mean", "is_std", "kid_mean", "kid_std", "fid_real_floor", "kid_real_floor"):
        assert isinstance(m[key], float) and math.isfinite(m[key]), (key, m[key])
    assert m["n_generated"] == N_IMAGES and m["n_real_floor"] == N_IMAGES and m["fid_reference"] == "test"
    assert m["fid"] > m["fid_real_floor"] >= 0 and m["is_mean"] >= 1.0 - 1e-6
    assert 0.0 <= m["face_rate"] <= 1.0 and 0.0 <= m["face_rate_real"] <= 1.0 and m["n"] == N_IMAGES
    assert m["extractor"] and m["kid_subset_size"] == 10


def test_face_gan_samples_and_scores_differ_between_methods(project, face_reference):
    """Each sample_gan stage sampled its own generator (same seed, same z) and each evaluate_gan scored its own
    samples: no two methods' PNGs or FIDs coincide."""
    names = list(catalogue_params()["face_gans"])
    pngs, fids = set(), set()
    for name in names:
        face_gan_stages(project, name)
        pngs.add(tuple(sorted(json.loads((project / f"samples/gan/{name}/manifest.json").read_text())["files"].values())))
        fids.add(json.loads((project / f"metrics/gan/{name}/eval.json").read_text())["fid"])
    assert len(pngs) == len(fids) == len(names)


@pytest.fixture(scope="module")
def da_trained(project, params) -> dict:
    """train_da@<pair>-<setting> for every default setting, then evaluate_da@<pair>."""
    for setting in params["da"]["settings"]:
        run_stage(project, "train_da.py", PAIR, setting)
    run_stage(project, "evaluate_da.py", PAIR)
    return json.loads((project / f"metrics/da/{PAIR}.json").read_text())


@pytest.mark.parametrize("setting", real_params()["da"]["settings"])
def test_da_setting_trains_and_evaluates_through_its_stages(project, params, da_trained, setting):
    from genda.da.methods import METHODS
    from genda.da.train import load_da_model, setting_plan
    from genda.runtime.checkpoint import load_weights

    path = project / f"models/da/{PAIR}/{setting}/seed0.pt"
    ck = load_weights(path)
    method, _, _ = setting_plan(setting)
    _, options = da_setting_config(params, setting)
    assert ck["setting"] == setting and ck["method"] == method and ck["options"] == options and ck["seed"] == 0
    model = load_da_model(path, torch.device("cpu"))
    assert type(model) is METHODS[method] and not model.training
    for k, v in options.items():  # the params' options reached the network (e.g. dsn gamma 0.1, not its 0.25)
        assert model.options[k] == v, k
    assert [r["step"] for r in ck["curve"]] == [2, 4]
    assert (project / f"checkpoints/da/{PAIR}/{setting}/seed0/last.pt").exists()

    m = da_trained[setting]
    assert m["setting"] == setting and m["pair"] == PAIR and m["n_seeds"] == 1
    for key in ("target_acc", "source_acc", "target_acc_adabn"):
        assert 0.0 <= m[key] <= 1.0 and m[key] == m["per_seed"]["0"][key]
        assert m[key + "_std"] == 0.0
        assert m[key] * 96 == pytest.approx(round(m[key] * 96), abs=1e-4)  # a share of the 96 test digits
    # the accuracy evaluate_da reports is the saved model's on the target test split
    from genda.data.store import load_prepared
    from genda.data.tensors import predict_labels

    tgt = load_prepared(digits_path("usps", project))
    acc = (predict_labels(model, tgt["x_test"], torch.device("cpu"), head="classify") == tgt["y_test"]).float().mean()
    assert float(acc) == pytest.approx(m["target_acc"], abs=1e-6)
    assert m["target_acc"] == pytest.approx(ck["curve"][-1]["target_acc"], abs=1e-6)  # the curve's last point
    feats = __import__("numpy").load(project / f"features/da/{PAIR}/{setting}.npz")
    assert feats["features"].shape[0] == 40 and sorted(set(feats["domains"].tolist())) == [0, 1]
    curve = (project / f"metrics/da/curves/{PAIR}.csv").read_text()
    assert f"{PAIR},{setting},0,4," in curve
