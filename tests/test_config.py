"""params.yaml validation: every mistake is one ConfigError naming the key and the valid choices."""
import copy
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, real_params, shrink
from genda.config import face_gan_config, load_params, validate
from genda.errors import ConfigError


def _bad(mutate, tmp_path):
    p = real_params()
    mutate(p)
    with pytest.raises(ConfigError) as e:
        validate(p, base=ROOT)
    return str(e.value)


def test_shipped_params_are_valid():
    p = load_params(ROOT / "params.yaml")
    assert p["data"]["source"] == "embedded"
    assert "dcgan" in p["face_gans"]


def test_unknown_top_level_key_is_named_with_suggestion(tmp_path):
    msg = _bad(lambda p: p.update(lr_dd=1e-4), tmp_path)
    assert "'lr_dd'" in msg and "did you mean 'lr_d'" in msg and "valid keys" in msg


def test_unknown_nested_key_names_dotted_path(tmp_path):
    msg = _bad(lambda p: p["gan"].update(stepz=3), tmp_path)
    assert "'gan.stepz'" in msg and "steps" in msg


def test_wrong_type_and_choices(tmp_path):
    assert "'gan.steps'" in _bad(lambda p: p["gan"].update(steps="ten"), tmp_path)
    msg = _bad(lambda p: p["gan"].update(loss="wgan"), tmp_path)
    assert "'gan.loss'" in msg and "wgan_gp" in msg and "hinge" in msg
    assert "'lr_d'" in _bad(lambda p: p.update(lr_d=True), tmp_path)
    msg = _bad(lambda p: p["data"].update(source="hdf5"), tmp_path)
    assert "embedded" in msg and "npz" in msg


def test_method_override_keys_are_checked(tmp_path):
    msg = _bad(lambda p: p["face_gans"].update(lsgan={"los": "lsgan"}), tmp_path)
    assert "'face_gans.lsgan.los'" in msg
    msg = _bad(lambda p: p["da"]["methods"].update(danm={}), tmp_path)
    assert "da.methods.danm" in msg and "dann" in msg


def test_ddpm_step_sampling_keys_are_checked(tmp_path):
    msg = _bad(lambda p: p["cond_gens"]["ddpm"].update(t_sampling="cosine"), tmp_path)
    assert "'cond_gens.ddpm.t_sampling'" in msg and "logit_normal" in msg and "uniform" in msg
    assert "'cond_gens.ddpm.t_logit_std'" in _bad(lambda p: p["cond_gens"]["ddpm"].update(t_logit_std=0.0), tmp_path)
    assert "'cond_gens.ddpm.t_logit_mean'" in _bad(lambda p: p["cond_gens"]["ddpm"].update(t_logit_mean="high"),
                                                   tmp_path)


def test_pairs_and_ranges(tmp_path):
    msg = _bad(lambda p: p["da"].update(pairs=["mnistm-mnistm"]), tmp_path)
    assert "da.pairs[0]" in msg
    assert "noisy_real" in _bad(lambda p: p["gan"].update(noisy_real=[1.2, 0.7]), tmp_path)
    assert "label_smoothing" in _bad(lambda p: p.update(label_smoothing=0.9), tmp_path)


def test_missing_dataset_path_names_key(tmp_path):
    def m(p):
        p["data"].update(source="npz", root=str(tmp_path / "nowhere"))
    msg = _bad(m, tmp_path)
    assert "'data.root'" in msg and "nowhere" in msg


def test_face_gan_config_merges_top_level_and_overrides():
    p = real_params()
    p["face_gans"]["x"] = {"loss": "lsgan", "lr_g": 1e-3}
    cfg = face_gan_config(p, "x")
    assert cfg["loss"] == "lsgan" and cfg["lr_g"] == 1e-3 and cfg["lr_d"] == p["lr_d"]
    assert face_gan_config(p, "dcgan")["loss"] == p["gan"]["loss"]


def test_stage_reports_bad_params_before_work(tmp_path):
    """A stage run with a typo exits 2 with one line naming the key, and writes nothing."""
    p = shrink(real_params())
    p["gan"]["bach_size"] = 8
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    r = subprocess.run([sys.executable, str(ROOT / "stages/prepare.py")], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown key 'gan.bach_size'" in r.stderr and "batch_size" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "data").exists()


def test_dvc_style_exponent_floats_load_as_floats(tmp_path):
    # `dvc exp run -S lr_d=5e-5` writes `lr_d: 5e-05`, a string to YAML 1.1 (PyYAML) but a float to DVC.
    text = (ROOT / "params.yaml").read_text().replace("lr_d: 2.0e-4", "lr_d: 5e-05", 1)
    assert "lr_d: 5e-05" in text
    (tmp_path / "params.yaml").write_text(text)
    p = load_params(tmp_path / "params.yaml", check_paths=False)
    assert p["lr_d"] == 5e-05 and isinstance(p["lr_d"], float)
    (tmp_path / "params.yaml").write_text(text.replace("lr_d: 5e-05", "lr_d: fast"))
    with pytest.raises(ConfigError, match="'lr_d' = 'fast' has the wrong type"):
        load_params(tmp_path / "params.yaml", check_paths=False)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_full_size_configs_are_valid(path):
    p = load_params(path, check_paths=False)  # data.root points at ../shared/data, absent on some machines
    assert p["data"]["source"] == "npz" and p["data"]["root"].endswith("shared/data")
