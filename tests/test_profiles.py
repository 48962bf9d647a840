"""Params profiles: configs/*.yaml are overlays of params.yaml (genda.config.profiles), composed and checked by
``python -m genda.config compose|check``. They replaced five full copies of params.yaml; composed onto the
params.yaml of that time (tests/data/params_resolved.json) each gives back exactly the file it replaced."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from genda.config import compose, load_params, merge, read_yaml, validate
from genda.config.profiles import REPLACED_WHOLE, read_overlay
from genda.config.yamlio import Replace, Yaml12Loader
from genda.errors import ConfigError

OVERLAYS = sorted((ROOT / "configs").glob("*.yaml"))
FIXTURE = json.loads((ROOT / "tests/data/params_resolved.json").read_text())["files"]
BASE = FIXTURE["params.yaml"]


def same(a, b) -> bool:
    """Equal with the same types (1 is not 1.0); key order aside (no consumer reads it: DVC and the fingerprints
    sort keys), except where it is checked on its own."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_every_profile_is_an_overlay_of_params_yaml():
    assert [p.name for p in OVERLAYS] == ["real.yaml", "real_cond_cpu.yaml", "real_da_cpu.yaml", "real_digits.yaml",
                                          "real_faces.yaml", "real_faces_cpu.yaml"]
    for path in OVERLAYS:
        assert read_overlay(path)[1] == ROOT / "params.yaml", path.name


@pytest.mark.parametrize("path", OVERLAYS, ids=lambda p: p.name)
def test_each_overlay_composes_and_validates(path):
    params = load_params(path, check_paths=False)  # data.root: ../shared/data, absent on some machines
    assert same(params, compose([path])) and same(params, read_yaml(path))
    assert params["data"]["source"] == "npz"


# keys an overlay gained after the conversion (the fixture is the files of that time): StyleGAN2's R1 and style
# mixing (issue 34) in the full-size faces config
ADDED_SINCE = {"real_faces.yaml": {("face_gans", "stylegan2_lite"): {"r1_gamma", "r1_every", "mixing_prob"}}}


@pytest.mark.parametrize("path", [p for p in OVERLAYS if f"configs/{p.name}" in FIXTURE], ids=lambda p: p.name)
def test_overlay_gives_back_the_full_file_it_replaced(path):
    full = FIXTURE[f"configs/{path.name}"]
    composed = merge(BASE, read_overlay(path)[0])
    for (section, entry), keys in ADDED_SINCE.get(path.name, {}).items():
        assert keys <= set(composed[section][entry]) and not keys & set(full[section][entry])
        composed[section][entry] = {k: v for k, v in composed[section][entry].items() if k not in keys}
    assert same(composed, full)
    # the orders that mean something: the sections, and each foreach's branches
    for key in (None, *REPLACED_WHOLE):
        assert list(composed if key is None else composed[key]) == list(full if key is None else full[key]), key


@pytest.mark.parametrize("path", OVERLAYS, ids=lambda p: p.name)
def test_overlays_state_only_what_differs(path):
    """Below the maps an overlay replaces whole, no key repeats the value of params.yaml (of the fixture's time)."""
    def walk(overlay, base, where):
        for k, v in overlay.items():
            if k in base and isinstance(v, dict) and isinstance(base[k], dict) and not isinstance(v, Replace) \
                    and not (not where and k in REPLACED_WHOLE):
                walk(v, base[k], f"{where}{k}.")
            else:
                assert not (k in base and same(v, base[k])), f"{path.name}: {where}{k} is params.yaml's value"
    walk(read_overlay(path)[0], BASE, "")


def _overlay(tmp_path, text: str, name="x.yaml"):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(BASE, sort_keys=False))
    (tmp_path / name).write_text(text)
    return tmp_path / name


def test_merge_rules(tmp_path):
    path = _overlay(tmp_path, """extends: params.yaml
gan: {steps: 7, noisy_real: null}      # merge key by key; null sets null
data: {domains: [usps, mnist]}          # a list replaces
face_gans: {lsgan: {loss: lsgan}}       # replaced whole
da:
  methods: !replace {dann: {}, source_only: {}}
  compute: !replace {}
cond:
  curve_every: !delete
""")
    p = read_yaml(path)
    assert p["gan"]["steps"] == 7 and p["gan"]["noisy_real"] is None and "noisy_real" in p["gan"]
    assert p["gan"]["batch_size"] == BASE["gan"]["batch_size"] and list(p["gan"]) == list(BASE["gan"])
    assert p["data"]["domains"] == ["usps", "mnist"]
    assert p["face_gans"] == {"lsgan": {"loss": "lsgan"}}
    assert p["da"]["methods"] == {"dann": {}, "source_only": {}} and type(p["da"]["methods"]) is dict
    assert p["da"]["compute"] == {} and p["da"]["steps"] == BASE["da"]["steps"]
    assert "curve_every" not in p["cond"] and p["cond"]["lr"] == BASE["cond"]["lr"]
    assert p["cond_gens"] == BASE["cond_gens"]
    # overlays apply left to right; the inputs stay as they were
    base = copy.deepcopy(BASE)
    assert merge(merge(base, {"seed": 1}), {"seed": 2})["seed"] == 2 and same(base, BASE)


def test_unknown_key_in_an_overlay_is_named_with_suggestion(tmp_path):
    path = _overlay(tmp_path, "extends: params.yaml\ncond: {stepz: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'cond\.stepz' \(did you mean 'steps'\?\)"):
        load_params(path, check_paths=False)
    with pytest.raises(ConfigError, match="did you mean 'face_gans'"):
        validate(compose([_overlay(tmp_path, "face_gan: {}\n", "y.yaml")], base=tmp_path / "params.yaml"))


def test_overlay_mistakes_are_params_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"'cond\.curve_evry: !delete' but the base has no key"):
        read_yaml(_overlay(tmp_path, "extends: params.yaml\ncond:\n  curve_evry: !delete\n"))
    with pytest.raises(ConfigError, match="makes a cycle"):
        read_yaml(_overlay(tmp_path, "extends: x.yaml\nseed: 1\n"))
    (tmp_path / "full.yaml").write_text("seed: !delete\n")
    with pytest.raises(ConfigError, match="only an overlay may delete"):
        read_yaml(tmp_path / "full.yaml")
    with pytest.raises(ConfigError, match="params file not found"):
        read_yaml(_overlay(tmp_path, "extends: nowhere.yaml\n"))


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "genda.config", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, check=False, env={**{k: v for k, v in os.environ.items() if k != "GENDA_PARAMS"},
                                          "GENDA_ROOT": str(cwd)})


def test_compose_and_check_commands(tmp_path):
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(ROOT / "configs/real_faces_cpu.yaml", tmp_path / "configs/x.yaml")
    expected = compose([tmp_path / "configs/x.yaml"])
    r = _cli("compose", "configs/x.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert same(yaml.load(r.stdout, Loader=Yaml12Loader), expected)
    # written over its own base: read in full first, then replaced atomically
    r = _cli("compose", "configs/x.yaml", "-o", "params.yaml", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.count("\n") == 1, r.stderr
    assert same(read_yaml(tmp_path / "params.yaml"), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["configs", "params.yaml"]  # no temp file left
    r = _cli("check", "--no-paths", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.count("\n") == 1 and "valid" in r.stdout, r.stderr
    r = _cli("check", cwd=tmp_path)  # data.root ../shared/data does not exist next to the copy
    assert r.returncode == 2 and "'data.root'" in r.stderr and r.stderr.count("\n") == 1
    (tmp_path / "configs/bad.yaml").write_text("gan: {bach_size: 8}\n")
    r = _cli("compose", "configs/bad.yaml", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "" and "did you mean 'batch_size'" in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    # `compose ... > params.yaml`: the shell empties the base before it is read; refused, with the way out
    with open(tmp_path / "params.yaml", "w") as out:
        r = subprocess.run([sys.executable, "-m", "genda.config", "compose", "configs/x.yaml"], cwd=tmp_path,
                           stdout=out, stderr=subprocess.PIPE, text=True, check=False,
                           env={**os.environ, "GENDA_ROOT": str(tmp_path)})
    assert r.returncode == 2 and "-o params.yaml" in r.stderr
