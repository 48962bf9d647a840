"""Reading and validating a params file, in full, before any stage does work.

Every stage calls :func:`load_params`, which reads ``params.yaml`` (or ``$GENDA_PARAMS``; an overlay that
``extends`` a base is composed onto it, :mod:`genda.config.profiles`) and checks *every* key against the schema
(:mod:`genda.config.schema`): an unknown or mistyped key, a wrong type, a value outside its choices or range, or a
dataset path that does not exist gives one :class:`~genda.errors.ConfigError` that names the key (as a dotted path,
e.g. ``gan.loss``) and the valid choices. The params come back as the plain dict read from the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from genda.config.messages import config_error
from genda.config.profiles import read_params
from genda.config.schema import DA_TRAIN_KEYS, DATrainOverride, Params
from genda.errors import ConfigError
from genda.runtime.paths import repo_root, resolve_path


def read_yaml(path: str | Path) -> dict:
    """A params file as DVC reads it (YAML 1.2 floats such as ``5e-05``), unvalidated; an overlay that ``extends``
    a base: composed onto it."""
    return read_params(path)


def load_params(path: str | Path | None = None, *, check_paths: bool = True) -> dict:
    """Read and validate params.yaml (default: $GENDA_PARAMS, else the project's params.yaml)."""
    path = Path(path or os.environ.get("GENDA_PARAMS") or repo_root() / "params.yaml")
    if not path.exists():
        raise ConfigError(f"params file not found: {path}")
    try:
        params = read_yaml(path)
    except yaml.YAMLError as e:
        raise ConfigError(f"params file {path} is not valid YAML: {e}") from None
    return validate(params, check_paths=check_paths, base=repo_root())


def validate(params: dict, *, check_paths: bool = True, base: Path | None = None) -> dict:
    """Check a params dict against the schema, then the checks that need several keys or the file system (paths
    relative to ``base``, default the project root); returns ``params`` itself, unchanged, or raises ConfigError."""
    try:
        Params.model_validate(params)
    except ValidationError as e:
        raise config_error(e, params) from None
    if check_paths:
        _check_paths(params, base or repo_root())
    missing = [s for s in params["da"]["settings"] if s not in params["da"]["methods"]]
    if missing:  # DVC's train_da@<pair>-<setting> stage tracks da.methods.<setting> and would fail after training
        raise ConfigError(f"params: missing key 'da.methods.{missing[0]}' (da.settings lists '{missing[0]}'); "
                          f"give it the method's options, or {{}} for its defaults, e.g. '{missing[0]}: {{}}'")
    _check_train_overrides(params["da"]["methods"], params["da"]["pairs"])
    if params["data"]["face_crop"] < params["data"]["face_size"] // 4:
        raise ConfigError("params: 'data.face_crop' is far smaller than 'data.face_size'; "
                          "crop is taken first, then resized to face_size")
    return params


def _check_train_overrides(methods: dict, pairs: list[str]) -> None:
    """``da.methods.<setting>.train`` and ``da.methods.<setting>.by_pair.<pair>.train``: mappings of shared ``da``
    trainer keys (:data:`DA_TRAIN_KEYS`), each of the type and range the shared key has; ``by_pair``: a mapping from
    pairs of ``da.pairs`` to option overrides."""
    for setting, opts in methods.items():
        if not opts:
            continue
        if "train" in opts:
            _check_train_keys(opts["train"], f"da.methods.{setting}.train")
        if "by_pair" not in opts:
            continue
        path = f"da.methods.{setting}.by_pair"
        by_pair = opts["by_pair"]
        if not isinstance(by_pair, dict):
            raise ConfigError(f"params: '{path}' must be a mapping pair -> options; pairs here: {', '.join(pairs)}")
        for pair, override in by_pair.items():
            if pair not in pairs:
                raise ConfigError(f"params: unknown key '{path}.{pair}': not a pair of da.pairs; valid keys here: "
                                  f"{', '.join(pairs)}")
            if override is None:
                continue
            if not isinstance(override, dict):
                raise ConfigError(f"params: '{path}.{pair}' must be a mapping of method options")
            if "by_pair" in override:
                raise ConfigError(f"params: '{path}.{pair}.by_pair': by_pair does not nest")
            if "train" in override:
                _check_train_keys(override["train"], f"{path}.{pair}.train")


def _check_train_keys(train: Any, path: str) -> None:
    """``train`` at ``path``: a mapping of :data:`DA_TRAIN_KEYS`, each of the shared key's type and range."""
    import difflib

    if not isinstance(train, dict):
        raise ConfigError(f"params: '{path}' must be a mapping of da keys to override; valid keys here: "
                          f"{', '.join(DA_TRAIN_KEYS)}")
    for key in train:
        if key not in DA_TRAIN_KEYS:
            hint = difflib.get_close_matches(str(key), DA_TRAIN_KEYS, n=1)
            raise ConfigError(f"params: unknown key '{path}.{key}'" + (f" (did you mean '{hint[0]}'?)" if hint
                              else "") + f"; valid keys here: {', '.join(DA_TRAIN_KEYS)}")
    try:
        DATrainOverride.model_validate(train)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"params: '{path}.{err['loc'][0]}' = {err.get('input')!r}: {err['msg']}") from None


def _check_paths(params: dict, base: Path) -> None:
    """The dataset folder, the Inception weights and the domains the DA pairs use exist."""
    data = params["data"]
    if data["source"] in ("npz", "course"):
        root = resolve_path(data["root"], base)
        if not root.exists():
            raise ConfigError(
                f"params: 'data.root' = {data['root']!r} does not exist (resolved to {root.resolve()}); source "
                f"'{data['source']}' reads its dataset from there. Point it at your data folder, "
                f"e.g. ../shared/data, or use data.source: embedded")
    attrs = data.get("face_attrs")
    if attrs and data["source"] != "npz":
        raise ConfigError(f"params: 'data.face_attrs' = {attrs!r} is read for data.source 'npz' only (the course and "
                          f"torchvision sources carry their own attributes); source is '{data['source']}'")
    if attrs and not resolve_path(attrs, base).is_file():
        raise ConfigError(f"params: 'data.face_attrs' = {attrs!r} does not exist (resolved to "
                          f"{resolve_path(attrs, base).resolve()}); the faces' attribute table, e.g. "
                          f"../shared/data/faces/list_attr_celeba_first20k.txt, or null")
    w = params["evaluate"]["inception_weights"]
    if w and not resolve_path(w, base).exists():
        raise ConfigError(f"params: 'evaluate.inception_weights' = {w!r} does not exist")
    for pair in params["da"]["pairs"]:
        for d in pair.split("-"):
            if d not in data["domains"]:
                raise ConfigError(
                    f"params: 'da.pairs' uses domain '{d}' but 'data.domains' does not prepare it; "
                    f"prepared domains: {', '.join(data['domains'])}")
