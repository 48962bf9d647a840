"""dvc.yaml's params lists: a knob reruns the stages that read it and no others.

DVC reruns a stage when the value of one of the params keys it tracks changed (a tracked ``da`` covers every
``da.*`` key), and fails a stage after it ran when a tracked key is missing from the params file. The stages and
their tracked keys here are DVC's own parse of the project's dvc.yaml (``Repo.index``), so the foreach / matrix
templating (``da.methods.${item.setting}``) is resolved as ``dvc repro`` resolves it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, real_params
from genda.config import read_yaml, validate
from genda.errors import ConfigError


def stages_tracking(params_file: Path, tmp: Path) -> dict[str, list[str]]:
    """stage name -> the params keys it tracks, for dvc.yaml run on ``params_file`` (DVC's parse, in ``tmp``)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    Repo.init(str(tmp), no_scm=True).close()
    (tmp / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    (tmp / "params.yaml").write_text(params_file.read_text())
    with Repo(str(tmp)) as repo:
        return {s.name: [k for d in s.deps if isinstance(d, ParamsDependency) for k in d.params]
                for s in repo.index.stages}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> dict[str, list[str]]:
    return stages_tracking(ROOT / "params.yaml", tmp_path_factory.mktemp("dvc"))


def stale_after(change: str, tracked: dict[str, list[str]]) -> set[str]:
    """The stages whose tracked keys cover the changed key ``change`` (or lie below it)."""
    return {name for name, keys in tracked.items()
            if any(change == k or change.startswith(k + ".") or k.startswith(change + ".") for k in keys)}


def train_da(tracked, *settings: str) -> set[str]:
    return {n for n in tracked if n.startswith("train_da@") and (not settings or n.endswith(settings))}


def test_a_da_knob_reruns_only_the_trainings_that_read_it(tracked):
    assert len(train_da(tracked)) == 10  # 2 pairs x 5 settings in the shipped params
    # options of one method: that method's trainings only (were all ten when train_da tracked the whole da), and the
    # report, which names the cells trained on the gp network
    assert stale_after("da.methods.dann.domain_weight", tracked) == train_da(tracked, "-dann") | {"report"}
    assert stale_after("da.methods.mean_teacher.ema_decay", tracked) == train_da(tracked, "-mean_teacher") | {"report"}
    # read by the DA evaluation only (its t-SNE points), by no training
    assert stale_after("da.tsne_points", tracked) == {"evaluate_da@svhn-mnistm", "evaluate_da@mnistm-usps"}
    assert not stale_after("da.pairs", tracked) & train_da(tracked)  # a new pair trains only its own stages
    assert not stale_after("da.settings", tracked) & train_da(tracked)
    # what every training reads
    for key in ("da.steps", "da.lr", "da.seeds", "da.eval_every", "da.compute.precision", "compute.channels_last"):
        assert train_da(tracked) <= stale_after(key, tracked), key


def _keys_read(path: Path, var: str) -> set[str]:
    """Literal keys read from the dict ``var`` in ``path``: ``var["k"]`` and ``var.get("k")``."""
    keys = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == var \
                and isinstance(node.slice, ast.Constant):
            keys.add(node.slice.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == var and node.args \
                and isinstance(node.args[0], ast.Constant):
            keys.add(node.args[0].value)
    return keys


def test_train_da_tracks_every_da_key_the_trainer_reads(tracked):
    read = _keys_read(ROOT / "src/genda/da/train.py", "da") | _keys_read(ROOT / "stages/train_da.py", "da")
    assert {"steps", "lr", "batch_size", "eval_every", "seeds"} <= read  # the scan sees the trainer's reads
    for name in train_da(tracked):
        setting = name.rsplit("-", 1)[1]
        for key in [f"da.{k}" for k in read] + ["compute.precision", "da.compute.precision", f"da.methods.{setting}.x"]:
            assert name in stale_after(key, tracked), (name, key)


@pytest.mark.parametrize("path", ["params.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.yaml"))])
def test_every_tracked_key_exists_in_the_shipped_params_files(path, tmp_path):
    """A tracked key missing from the params file fails its stage after the work (DVC's MissingParamsError);
    the configs/ files are full params files (README: copied over params.yaml for real data)."""
    params = read_yaml(ROOT / path)  # an overlay: composed onto params.yaml
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    tracked = stages_tracking(tmp_path / "full.yaml", tmp_path)
    assert len(train_da(tracked)) == len(params["da"]["pairs"]) * len(params["da"]["settings"])
    for name, keys in tracked.items():
        for key in keys:
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{path}: {key} (tracked by {name}) is missing"
                node = node[part]


def test_a_setting_without_its_methods_entry_is_a_params_error():
    p = real_params()
    p["da"]["settings"] = [*p["da"]["settings"], "resnet_dann"]
    del p["da"]["methods"]["resnet_dann"]
    with pytest.raises(ConfigError, match=r"missing key 'da\.methods\.resnet_dann'.*resnet_dann: \{\}"):
        validate(p, check_paths=False)
    p = real_params()
    del p["da"]["compute"]
    with pytest.raises(ConfigError, match=r"missing key 'da\.compute'"):
        validate(p, check_paths=False)
