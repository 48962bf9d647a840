"""The params schema (genda.config): pydantic models that give exactly the results and messages of the hand-written
validator they replaced.

tests/data/params_resolved.json holds what the old code (commit 9ff7f13) returned for params.yaml and the five
configs/ files of that commit; tests/data/params_messages.json its message for 1,640 mutations of that params.yaml.
Both keep their inputs, so they stay valid when params.yaml changes. The trainers fingerprint the resolved dicts
(checkpoints, committed results): equal here means equal keys, values, types and key order."""
from __future__ import annotations

import ast
import copy
import json
import subprocess
import re
import sys

import pytest

from conftest import ROOT
from genda.choices import DA_SETTINGS
from genda.config import (
    COND_FIELDS, SCHEMA, cond_config, da_setting_config, effective_compute, face_gan_config, validate)
from genda.errors import ConfigError

RESOLVED = json.loads((ROOT / "tests/data/params_resolved.json").read_text())
MESSAGES = json.loads((ROOT / "tests/data/params_messages.json").read_text())
CONFIG = ROOT / "src/genda/config"


def same(a, b) -> bool:
    """Equal with the same types (1 is not 1.0, a tuple no list) and the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def apply(base: dict, mutations: list) -> dict:
    """``base`` with each ["set", path, value] / ["del", path, null] applied (skipped where the path is gone)."""
    p = copy.deepcopy(base)
    for op, path, value in mutations:
        node = p
        for k in path[:-1]:
            ok = (isinstance(node, dict) and k in node) or (isinstance(node, list) and isinstance(k, int)
                                                              and k < len(node))
            node = node[k] if ok else None
            if node is None:
                break
        if not isinstance(node, (dict, list)):
            continue
        if op == "del":
            if isinstance(node, dict):
                node.pop(path[-1], None)
        elif isinstance(node, dict) or path[-1] < len(node):
            node[path[-1]] = copy.deepcopy(value)
    return p


@pytest.mark.parametrize("name", list(RESOLVED["files"]))
def test_resolved_configs_equal_the_old_implementation(name):
    params = copy.deepcopy(RESOLVED["files"][name])
    old = RESOLVED["resolved"][name]
    assert validate(params, check_paths=False) is params and same(params, old["validate"])
    assert list(old["face_gan_config"]) == list(params["face_gans"])
    for gan, cfg in old["face_gan_config"].items():
        assert same(face_gan_config(params, gan), cfg), gan
    assert list(old["cond_config"]) == list(params["cond_gens"])
    for gen, cfg in old["cond_config"].items():
        assert same(cond_config(params, gen), cfg), gen
    assert list(old["da_setting_config"]) == list(DA_SETTINGS)
    for setting, (da, options) in old["da_setting_config"].items():
        out = da_setting_config(params, setting)
        assert isinstance(out, tuple) and same(list(out), [da, options]), setting
    assert same(effective_compute(params), old["effective_compute"])
    assert same(effective_compute(params, params["da"].get("compute")), old["effective_compute_da"])
    assert same(params, RESOLVED["files"][name])  # nothing above changed the params


def _old_section_keys() -> dict[str, set[str]]:
    """Each section's keys as the old validator listed them (its message for the section set to null)."""
    out = {}
    for mutations, old in MESSAGES["cases"]:
        m = re.fullmatch(r"params: '(\w+)' must be a mapping of keys (\[.*\])", old or "")
        if m and len(mutations) == 1:
            out[m.group(1)] = set(ast.literal_eval(m.group(2)))
    return out


def _added_keys() -> set[str]:
    """Optional keys added to a section after the fixture (e.g. gan.r1_gamma): the old key lists lack them."""
    old = _old_section_keys()
    added = {k for sec, keys in old.items() for k in set(SCHEMA.model_fields[sec].annotation.model_fields) - keys}
    assert not added & set().union(*old.values())  # a name no old list has: stripping it is unambiguous
    return added


def _without(message: str, keys: set[str]) -> str:
    """``message`` with ``keys`` left out of its key lists ("mapping of keys [...]", "valid keys here: ...")."""
    message = re.sub(r"mapping of keys (\[.*\])",
                     lambda m: "mapping of keys " + repr([k for k in ast.literal_eval(m.group(1)) if k not in keys]),
                     message)
    return re.sub(r"valid keys here: ([\w, ]+)",
                  lambda m: "valid keys here: " + ", ".join(k for k in m.group(1).split(", ") if k not in keys),
                  message)


def test_messages_equal_the_old_validators():
    """Each mutation's first mistake, in the same words; where the old validator named its own class ("expected
    listof", "mapof", "_optionsmap") for a missing list or map, the new one says what it expects. Optional keys
    added since (:func:`_added_keys`) are left out of the new messages' key lists."""
    base, differ, added = MESSAGES["base"], [], _added_keys()
    renamed = ("expected listof", "expected mapof", "expected _optionsmap")
    now = {"mapping", "list of str", "list of int", "list of str in {mnist, mnistm, usps, svhn}",
           f"list of str in {{{', '.join(DA_SETTINGS)}}}"}
    for mutations, old in MESSAGES["cases"]:
        try:
            new = validate(apply(base, mutations), check_paths=False) and None
        except ConfigError as e:
            new = _without(str(e), added)
        if old is not None and old.endswith(renamed):
            prefix = old.rsplit("expected ", 1)[0] + "expected "
            ok = new is not None and new.startswith(prefix) and new[len(prefix):] in now
        else:
            ok = new == old
        if not ok:
            differ.append(f"{mutations}\n  old: {old}\n  new: {new}")
    assert not differ, f"{len(differ)} of {len(MESSAGES['cases'])} differ:\n" + "\n".join(differ[:10])
    assert len(MESSAGES["cases"]) == 1640


@pytest.mark.parametrize("mutate, expect", [
    (lambda p: (p.update(lr_d="fast", lr_g=True), p["gan"].update(stepz=1, loss=3)), "'lr_d' = 'fast' has the wrong"),
    (lambda p: p.update(zzz=1, lr_d=-1), "unknown key 'zzz'"),  # unknown keys of a section before its values
    (lambda p: p["face_gans"].update({"a-b": {"lr_d": "x"}}), "'face_gans.a-b': names may use letters"),
    (lambda p: p["face_gans"].update({1: {}}), "'face_gans.1' = 1 has the wrong type; expected str"),
    (lambda p: p["data"].update(domains=[]), "'data.domains' needs at least 1 item(s)"),
    (lambda p: p["da"].update(seeds=[0, -1]), "'da.seeds[1]' = -1 is below its minimum 0"),
    (lambda p: p["cond"].update(lr=2), None),  # an int is a fine float
    (lambda p: p["cond"].update(dropout=1), "'cond.dropout' = 1.0 is above its maximum 0.9"),
    (lambda p: p["cond_gens"].update(mine=None), "'cond_gens.mine' needs a 'method'"),
    (lambda p: p.update(gan=[]), "'gan' must be a mapping of keys ['arch', "),
    (lambda p: p["da"].update(methods=[]), "'da.methods' must be a mapping setting -> options"),
])
def test_one_clear_line_per_params_error(mutate, expect):
    p = copy.deepcopy(MESSAGES["base"])
    mutate(p)
    if expect is None:
        validate(p, check_paths=False)
        return
    with pytest.raises(ConfigError) as e:
        validate(p, check_paths=False)
    msg = str(e.value)
    assert msg.startswith("params: ") and expect in msg, msg
    assert "\n" not in msg and "pydantic" not in msg and "validation error" not in msg.lower()


def test_missing_lists_and_maps_say_what_they_expect():
    p = copy.deepcopy(MESSAGES["base"])
    del p["da"]["pairs"]
    with pytest.raises(ConfigError, match=r"missing key 'da\.pairs'; expected list of str$"):
        validate(p, check_paths=False)


def test_schema_covers_every_section_of_params_yaml():
    import yaml

    assert list(SCHEMA.model_fields) == list(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert set(SCHEMA.model_fields) - set(MESSAGES["base"]) == {"style", "summary"}  # added after the fixture, optional
    assert set(COND_FIELDS) == {"classifier", "cond", "cond_gens", "cond_sample"}


def _imports(path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.add(node.module)
    return out


def test_config_imports_only_the_lower_layers_and_no_cycle():
    """genda.config reads only errors, choices and runtime.paths of genda (no torch, no method package), and its
    own modules import each other without a cycle."""
    allowed = {"genda.errors", "genda.choices", "genda.runtime.paths"}
    stdlib = set(sys.stdlib_module_names)
    graph = {}
    for f in sorted(CONFIG.glob("*.py")):
        mods = _imports(f)
        assert {m for m in mods if m.startswith("genda.") and not m.startswith("genda.config")} <= allowed, f.name
        assert {m.split(".")[0] for m in mods if not m.startswith("genda")} <= stdlib | {"pydantic", "yaml"}, f.name
        graph[f.stem] = {m.split(".")[2] for m in mods if m.startswith("genda.config.")}
    done: set[str] = set()

    def visit(n, stack):
        assert n not in stack, " -> ".join([*stack, n])
        if n not in done:
            for m in graph.get(n, ()):
                visit(m, [*stack, n])
            done.add(n)
    for n in graph:
        visit(n, [])
    code = ("import genda.config, sys; assert 'torch' not in sys.modules; "
            "print(sorted(m for m in sys.modules if m.startswith('genda')))")
    out = subprocess.run([sys.executable, "-c", code],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = {m for m in eval(out.stdout) if not m.startswith("genda.config")}
    assert loaded <= {"genda", "genda.runtime"} | allowed, loaded


def test_a_da_setting_overrides_shared_trainer_keys_under_train():
    import copy

    from genda.config import da_setting_config, load_params, validate
    from genda.errors import ConfigError

    p = load_params(ROOT / "params.yaml", check_paths=False)
    q = copy.deepcopy(p)
    q["da"]["methods"]["mean_teacher"]["train"] = {"steps": 20000, "eval_every": 1000}
    validate(q, check_paths=False)
    da, options = da_setting_config(q, "mean_teacher")
    assert da["steps"] == 20000 and da["eval_every"] == 1000 and "train" not in options
    assert options == p["da"]["methods"]["mean_teacher"]  # the method's own options untouched
    assert da_setting_config(q, "dann")[0]["steps"] == p["da"]["steps"]  # other settings keep the shared value
    for bad, message in (({"stesp": 3}, "unknown key 'da.methods.dann.train.stesp' (did you mean 'steps'?)"),
                         ({"pairs": ["a-b"]}, "unknown key 'da.methods.dann.train.pairs'"),
                         ({"steps": 0}, "'da.methods.dann.train.steps' = 0"),
                         ({"optimizer": "adamw"}, "'da.methods.dann.train.optimizer'"),
                         ([1], "'da.methods.dann.train' must be a mapping")):
        q["da"]["methods"]["dann"]["train"] = bad
        with pytest.raises(ConfigError, match=re.escape(message)):
            validate(q, check_paths=False)


def test_a_da_setting_overrides_options_and_trainer_keys_for_one_pair_under_by_pair():
    """``da.methods.<setting>.by_pair.<pair>``: that pair's options and ``train`` keys win over the setting's; the
    other pair, and a caller that names no pair, see the setting's own; a pair not in da.pairs, a nested by_pair or a
    bad trainer key is one error naming the key."""
    import copy

    from genda.config import da_setting_config, load_params, validate
    from genda.errors import ConfigError

    p = load_params(ROOT / "params.yaml", check_paths=False)
    q = copy.deepcopy(p)
    one, other = q["da"]["pairs"][:2]
    q["da"]["methods"]["dann"] = {"domain_weight": 0.3, "train": {"steps": 900, "eval_every": 100},
                                  "by_pair": {one: {"network": "gp", "domain_weight": 1.0, "train": {"steps": 50}}}}
    validate(q, check_paths=False)
    da, options = da_setting_config(q, "dann", one)
    assert (da["steps"], da["eval_every"]) == (50, 100)  # the pair's train merged into the setting's
    assert options == {"domain_weight": 1.0, "network": "gp"}
    for pair in (other, None):
        da, options = da_setting_config(q, "dann", pair)
        assert (da["steps"], da["eval_every"], options) == (900, 100, {"domain_weight": 0.3})
    assert da_setting_config(q, "dsn", one) == da_setting_config(p, "dsn", one)  # other settings untouched
    for bad, message in (({"usps-svhn": {}}, f"unknown key 'da.methods.dann.by_pair.usps-svhn': not a pair of "
                                              f"da.pairs; valid keys here: {', '.join(q['da']['pairs'])}"),
                         ({one: {"train": {"stesp": 3}}}, f"unknown key 'da.methods.dann.by_pair.{one}.train.stesp' "
                                                           f"(did you mean 'steps'?)"),
                         ({one: {"by_pair": {}}}, "by_pair does not nest"),
                         ({one: [1]}, f"'da.methods.dann.by_pair.{one}' must be a mapping"),
                         ([one], "'da.methods.dann.by_pair' must be a mapping pair -> options")):
        q["da"]["methods"]["dann"]["by_pair"] = bad
        with pytest.raises(ConfigError, match=re.escape(message)):
            validate(q, check_paths=False)
