"""The real-data profile (genda.pipeline.profile, issue 33): one definition of the stages, its params an overlay of
the default's, generated files in sync, a clear error when its data is absent."""
import os
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, VENV_BIN
from genda.pipeline import profile


def test_generated_profile_files_are_in_sync():
    assert profile.check() == [], "run: python -m genda.pipeline.profile write"


def test_the_real_profile_runs_the_default_stages_with_the_code_one_level_up():
    default = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    real = yaml.safe_load((ROOT / "real" / "dvc.yaml").read_text())["stages"]
    assert list(real) == list(default)
    for name, st in default.items():
        body, rbody = st.get("do", st), real[name].get("do", real[name])
        assert rbody["cmd"] == body["cmd"].replace("python stages/", "python ../stages/")
        fix = lambda d: "../" + d if d.startswith(("stages/", "src/", "configs/")) else d  # noqa: E731
        assert rbody.get("deps") == [fix(d) for d in body.get("deps", [])], name
        for key in ("params", "outs", "metrics", "plots", "foreach", "matrix"):
            assert rbody.get(key, st.get(key)) == body.get(key, st.get(key)), (name, key)


def test_a_drifted_copy_is_reported(tmp_path):
    for f in ("dvc.yaml", "params.yaml", "configs/real.yaml"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text((ROOT / f).read_text())
    assert {p.name for p in profile.write(tmp_path)} == {"params.yaml", "dvc.yaml"}
    assert profile.check(tmp_path) == []
    (tmp_path / "dvc.yaml").write_text((tmp_path / "dvc.yaml").read_text().replace("python stages/tsne.py",
                                                                                      "python stages/tsne2.py"))
    assert profile.check(tmp_path) == [tmp_path / "real" / "dvc.yaml"]


def test_real_params_validate_and_hold_the_recorded_recipes():
    from genda.config import cond_config, da_setting_config, load_params

    p = load_params(ROOT / "real" / "params.yaml", check_paths=False)
    assert p["data"]["source"] == "npz" and p["da"]["seeds"] == [0, 1, 2]
    assert set(p["da"]["pairs"]) == {"mnistm-usps", "mnist-mnistm"}
    # MNIST -> MNIST-M: Ganin et al.'s network and 20,000 steps, a BatchNorm pass per domain (the 3-seed A/B of
    # benchmarks/results/ab_dann_passes_real_cpu.json: 84.9 vs 81.7 % joint), scored on an EMA of its weights
    # (benchmarks/results/probe_dann_ema_mnist_mnistm_cpu.json: 87.2 vs 84.95 %), which only this pair sets
    da, options = da_setting_config(p, "dann", "mnist-mnistm")
    assert da["steps"] == 20000 and da == da_setting_config(p, "dann")[0]
    assert options == {"domain_weight": 1.0, "passes": "separate", "eval_ema": 0.999}
    assert da_setting_config(p, "dann")[1] == {"domain_weight": 1.0, "passes": "separate"}
    # MNIST-M -> USPS: French et al.'s gp network for DANN, the mean teacher and the bounds, DANN at 6,000 steps with
    # a BatchNorm pass per domain, the mean teacher at 8,000; the DSN keeps its own network
    da, options = da_setting_config(p, "dann", "mnistm-usps")
    assert da["steps"] == 6000 and options == {"domain_weight": 1.0, "network": "gp", "classifier_layers": 1,
                                               "passes": "separate"}
    for setting in ("source_only", "target_only"):
        assert da_setting_config(p, setting, "mnistm-usps")[1] == {"network": "gp", "classifier_layers": 1}
        assert da_setting_config(p, setting, "mnist-mnistm")[1] == {}
    da, options = da_setting_config(p, "mean_teacher", "mnistm-usps")
    assert da["steps"] == 8000 and da["eval_every"] == 500 and options == {"network": "gp", "classifier_layers": 1}
    assert da_setting_config(p, "mean_teacher", "mnist-mnistm") == da_setting_config(p, "mean_teacher")
    assert da_setting_config(p, "mean_teacher")[0]["steps"] == 20000
    assert da_setting_config(p, "mean_teacher")[1] == {} and da_setting_config(p, "dsn", "mnistm-usps")[1] == {}
    assert da_setting_config(p, "source_only")[0]["steps"] == 2500
    assert cond_config(p, "ddpm")["compute"]["precision"] == "fp32" and cond_config(p, "ddpm")["steps"] == 15000
    assert list(p["face_gans"]) == ["dcgan", "dcgan_tricks", "lsgan", "wgan_gp", "sngan_hinge", "dcgan_diffaug_ema",
                                    "stylegan2_lite"]
    assert list(p["cond_gens"]) == ["acgan", "ddpm", "attr_acgan", "tag_cdcgan"]
    assert cond_config(p, "attr_acgan")["attribute"] == "Smiling" and p["classifier"]["attr_steps"] >= 1000 and p["classifier"]["attr_image_size"] == 32
    assert cond_config(p, "tag_cdcgan")["tag_groups"] == {"hair": ["Black_Hair", "Blond_Hair", "Brown_Hair",
                                                                   "Gray_Hair"], "smiling": ["Smiling"]}
    assert p["data"]["face_attrs"] == "../../shared/data/faces/list_attr_celeba_first20k.txt"


def test_every_real_face_method_is_one_knob_away_from_the_default(tmp_path):
    """methods_elsewhere: for each face method the real profile runs and the default does not, the `dvc exp run -S`
    (Hydra's override grammar, as DVC applies it) that adds it to params.yaml with exactly the real recipe."""
    import shlex

    from dvc.utils.hydra import apply_overrides

    from genda.config.profiles import plain, read_overlay

    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    knobs = profile.methods_elsewhere(default)
    assert set(knobs["face_gans"]) == {"lsgan", "wgan_gp", "sngan_hinge", "dcgan_diffaug_ema", "stylegan2_lite"}
    assert set(knobs["cond_gens"]) == {"attr_acgan", "tag_cdcgan"}
    assert knobs["face_gans"]["lsgan"] == ("dvc exp run -S "
                                       "'+face_gans.lsgan={loss:lsgan,d_norm:none,ema_decay:0.999,lr_schedule:linear}'")
    f = tmp_path / "params.yaml"
    f.write_text((ROOT / "params.yaml").read_text())
    for section in knobs.values():
        for cmd in section.values():
            apply_overrides(str(f), [shlex.split(cmd)[-1]])
    got = yaml.safe_load(f.read_text())
    real = plain(read_overlay(ROOT / "configs/real.yaml")[0])
    for section, names in knobs.items():
        for name in names:
            assert got[section][name] == real[section][name], name
    assert profile.methods_elsewhere(got) == {"face_gans": {}, "cond_gens": {}}
    assert profile.hydra_value({"a": "color,translation", "b": [1, None, True]}) == '{a:"color,translation",b:[1,null,true]}'


def test_absent_real_data_is_one_clear_error_naming_the_path(tmp_path):
    # the profile's params read from a folder whose ../../shared/data does not exist
    prof = tmp_path / "clone" / "real"
    prof.mkdir(parents=True)
    (prof / "params.yaml").write_text((ROOT / "real" / "params.yaml").read_text())
    env = {**os.environ, "GENDA_ROOT": str(prof)}
    env.pop("GENDA_PARAMS", None)
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "prepare.py")], cwd=prof, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "'data.root' = '../../shared/data' does not exist" in r.stderr
    assert str(tmp_path / "shared" / "data") in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "digits").exists(), reason="needs ../shared/data")
def test_real_params_find_the_shared_data():
    r = subprocess.run([str(VENV_BIN / "python"), "-m", "genda.config", "check", "params.yaml"], cwd=ROOT / "real",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "valid" in r.stdout, r.stderr


def test_report_names_the_settings_trained_on_the_gp_network():
    """The report's DA section names, per pair, the cells that trained French et al.'s network; the default, all on
    the methods' own networks, gets no such line."""
    from genda.config import load_params
    from genda.pipeline.report import _da_network_lines

    real = load_params(ROOT / "real" / "params.yaml", check_paths=False)
    line = "\n".join(_da_network_lines(real))
    assert "mnistm-usps: source_only, dann, mean_teacher, target_only" in line and "mnist-mnistm" not in line
    assert _da_network_lines(load_params(ROOT / "params.yaml", check_paths=False)) == []
