"""params.yaml: one declarative schema, validated in full before any stage does work.

Every stage calls :func:`load_params`, which reads ``params.yaml`` and checks *every* key against
:data:`SCHEMA`: an unknown or mistyped key, a wrong type, a value outside its choices or range, or a
dataset path that does not exist gives one :class:`~genda.errors.ConfigError` that names the key
(as a dotted path, e.g. ``gan.loss``) and the valid choices.  Defaults live in ``params.yaml`` itself,
so the file a user edits is the single source of truth; the schema only says what is allowed.
"""
from __future__ import annotations

import copy
import difflib
import re
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from genda.errors import ConfigError
from genda.runtime.paths import repo_root, resolve_path  # noqa: F401  (re-exported)

from genda.choices import (  # noqa: E402,F401  (re-exported for the schema's readers)
    BN_MODES, DA_SETTINGS, DATA_SOURCES, DIGIT_DOMAINS, GAN_ARCHS, GAN_LOSSES, PRECISIONS, USPS_FRAMES, Z_PRIORS)


# --------------------------------------------------------------------------- schema nodes
@dataclass
class Spec:
    """One leaf: a type check plus optional choices / bounds / custom check."""

    types: tuple
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    check: Callable[[Any, str], None] | None = None
    required: bool = True
    help: str = ""

    def validate(self, value: Any, path: str) -> None:
        if value is None:
            if self.nullable:
                return
            raise ConfigError(f"params: '{path}' must not be empty (expected {self.describe()})")
        ok_types = self.types
        # YAML gives ints for "2" and floats for "2.0"/"2e-4"; an int is a fine float.
        if float in ok_types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in ok_types:
            raise ConfigError(f"params: '{path}' = {value!r} has the wrong type; expected {self.describe()}")
        if not isinstance(value, ok_types):
            raise ConfigError(f"params: '{path}' = {value!r} has the wrong type; expected {self.describe()}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"params: '{path}' = {value!r} is not a valid choice; valid: {', '.join(map(str, self.choices))}")
        if self.min is not None and value < self.min:
            raise ConfigError(f"params: '{path}' = {value!r} is below its minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ConfigError(f"params: '{path}' = {value!r} is above its maximum {self.max}")
        if self.check is not None:
            self.check(value, path)

    def describe(self) -> str:
        names = "/".join(t.__name__ for t in self.types)
        if self.choices:
            names += f" in {{{', '.join(map(str, self.choices))}}}"
        if self.nullable:
            names += " or null"
        return names


@dataclass
class Section:
    """A mapping with a fixed set of keys."""

    fields: dict[str, Any]
    partial: bool = False  # True: every key optional (method overrides)
    required: bool = True  # False: the whole section may be absent (its consumers use defaults)

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"params: '{path or '<root>'}' must be a mapping of keys {sorted(self.fields)}")
        for key in value:
            if key not in self.fields:
                hint = difflib.get_close_matches(str(key), list(self.fields), n=1)
                sug = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise ConfigError(
                    f"params: unknown key '{_join(path, key)}'{sug}; valid keys here: {', '.join(sorted(self.fields))}")
        for key, spec in self.fields.items():
            if key in value:
                spec.validate(value[key], _join(path, key))
            elif not self.partial and getattr(spec, "required", True):
                raise ConfigError(f"params: missing key '{_join(path, key)}'; expected {_describe(spec)}")


@dataclass
class MapOf:
    """A mapping from user-chosen names (e.g. method names) to a section."""

    value: Any
    key_check: Callable[[str, str], None] | None = None
    required: bool = True

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"params: '{path}' must be a mapping name -> settings")
        for k, v in value.items():
            if self.key_check:
                self.key_check(k, _join(path, k))
            self.value.validate(v if v is not None else {}, _join(path, k))


@dataclass
class ListOf:
    item: Spec
    min_len: int = 0
    required: bool = True

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise ConfigError(f"params: '{path}' must be a list of {self.item.describe()}")
        if len(value) < self.min_len:
            raise ConfigError(f"params: '{path}' needs at least {self.min_len} item(s)")
        for i, v in enumerate(value):
            self.item.validate(v, f"{path}[{i}]")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(spec: Any) -> str:
    return spec.describe() if isinstance(spec, Spec) else type(spec).__name__.lower()


# --------------------------------------------------------------------------- custom checks
def _check_pair(value: str, path: str) -> None:
    parts = value.split("-")
    if len(parts) != 2 or any(p not in DIGIT_DOMAINS for p in parts) or parts[0] == parts[1]:
        raise ConfigError(
            f"params: '{path}' = {value!r} is not a domain pair 'source-target' with two different domains "
            f"from: {', '.join(DIGIT_DOMAINS)} (e.g. 'mnistm-usps')")


def _check_range2(value: Any, path: str) -> None:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or value[0] > value[1]):
        raise ConfigError(f"params: '{path}' = {value!r} must be a [low, high] pair of numbers with low <= high")


def _check_name(value: str, path: str) -> None:
    if not value.replace("_", "").isalnum():
        raise ConfigError(f"params: '{path}': names may use letters, digits and '_' only")


def _check_diffaug(value: str, path: str) -> None:
    allowed = {"color", "translation", "cutout"}
    parts = [p for p in value.split(",") if p]
    bad = [p for p in parts if p not in allowed]
    if bad:
        raise ConfigError(f"params: '{path}' has unknown DiffAugment op(s) {bad}; valid: {', '.join(sorted(allowed))}")


NUM = (float,)
INT = (int,)
POS_INT = dict(types=INT, min=1)


def compute_section(override: bool = False, required: bool = False) -> Section:
    """``compute`` (top level: every trainer and sampler), or with ``override`` the optional ``compute`` key of
    a training family's section (``da``, ``cond``, ``cond_gens.<name>``, ``gan``, ``face_gans.<name>``): any subset of the same keys, which
    replace the top-level ones for that family's training (:func:`effective_compute`); ``required``: the key must
    be present (``{}`` = no override), for a section that a DVC stage tracks key by key."""
    return Section({
        "precision": Spec((str,), choices=PRECISIONS,
                          help="auto (bf16 where the hardware has it natively, else fp32) | fp32 | bf16"),
        "channels_last": Spec((bool,)),
    }, partial=override, required=required)


def effective_compute(params: dict, *overrides: dict | None) -> dict:
    """The top-level ``compute`` section updated by each override's keys in order (later wins)."""
    out = dict(params.get("compute") or {})
    for o in overrides:
        out.update(o or {})
    return out


def _gan_fields() -> dict[str, Any]:
    """Face-GAN training settings; `face_gans.<name>` may override any of them (and lr_d/lr_g/label_smoothing)."""
    return {
        "arch": Spec((str,), choices=GAN_ARCHS),
        "loss": Spec((str,), choices=GAN_LOSSES),
        "steps": Spec(**POS_INT),
        "batch_size": Spec(**POS_INT),
        "z_dim": Spec(**POS_INT),
        "z_prior": Spec((str,), choices=Z_PRIORS),
        "ngf": Spec(**POS_INT),
        "ndf": Spec(**POS_INT),
        "d_norm": Spec((str,), choices=("batch", "instance", "layer", "none")),
        "spectral_norm": Spec((bool,)),
        "noisy_real": Spec((list,), nullable=True, check=_check_range2),
        "noisy_fake": Spec((list,), nullable=True, check=_check_range2),
        "d_steps": Spec(**POS_INT),
        "g_steps": Spec(**POS_INT),
        "d_skip_threshold": Spec(NUM, nullable=True, min=0.0),
        "hflip": Spec((bool,)),
        "diffaugment": Spec((str,), check=_check_diffaug),
        "ema_decay": Spec(NUM, nullable=True, min=0.0, max=1.0),
        "ema_bn_batches": Spec(INT, min=0, required=False,
                               help="noise batches that recompute the EMA generator's BatchNorm statistics after "
                                    "training (default 32; 0 = keep the trained G's, genda before 2026-12-01)"),
        "lr_schedule": Spec((str,), choices=("none", "linear", "cosine", "step")),
        "opt_d": Spec((str,), choices=("adam", "sgd", "rmsprop")),
        "opt_g": Spec((str,), choices=("adam", "sgd", "rmsprop")),
        "beta1": Spec(NUM, min=0.0, max=1.0),
        "beta2": Spec(NUM, min=0.0, max=1.0),
        "gp_weight": Spec(NUM, min=0.0),
        "checkpoint_every": Spec(**POS_INT),
        "log_every": Spec(**POS_INT),
        # the face GANs' training numerics ({} or absent: the top-level compute); face_gans.<name>.compute on top
        "compute": compute_section(override=True),
    }


_GAN_OVERRIDES = dict(_gan_fields())
_GAN_OVERRIDES.update({
    "lr_d": Spec(NUM, min=0.0), "lr_g": Spec(NUM, min=0.0),
    "label_smoothing": Spec(NUM, min=0.0, max=0.5),
})

class _OptionsMap:
    """`da.methods.<setting>`: free-form options checked later by the method itself (it knows its options)."""

    required = True

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"params: '{path}' must be a mapping setting -> options")
        for k, v in value.items():
            if k not in DA_SETTINGS:
                raise ConfigError(f"params: unknown key '{path}.{k}'; valid keys here: {', '.join(DA_SETTINGS)}")
            if v is not None and not isinstance(v, dict):
                raise ConfigError(f"params: '{path}.{k}' must be a mapping of method options")



SCHEMA = Section({
    # top level: the face-GAN knobs a student turns most (`dvc exp run -S lr_d=5e-5`)
    "lr_d": Spec(NUM, min=0.0, help="face-GAN discriminator learning rate"),
    "lr_g": Spec(NUM, min=0.0, help="face-GAN generator learning rate"),
    "label_smoothing": Spec(NUM, min=0.0, max=0.5, help="one-sided: real target = 1 - s"),
    "seed": Spec(INT, min=0),
    "compute": compute_section(),  # genda.runtime.precision: numerics of every trainer and sampler
    "data": Section({
        "source": Spec((str,), choices=DATA_SOURCES),
        "root": Spec((str,)),
        "domains": ListOf(Spec((str,), choices=DIGIT_DOMAINS), min_len=1),
        "digit_size": Spec(INT, min=8, max=128),
        "face_size": Spec(INT, min=16, max=256),
        "face_crop": Spec(INT, min=16),
        "face_test_fraction": Spec(NUM, min=0.01, max=0.9),
        "max_train": Spec(INT, nullable=True, min=1),
        "max_test": Spec(INT, nullable=True, min=1),
        "max_faces": Spec(INT, nullable=True, min=2),
        "faces": Spec((bool,)),
        "usps_frame": Spec((str,), choices=USPS_FRAMES, required=False),
    }),
    "gan": Section(_gan_fields()),
    "face_gans": MapOf(Section(_GAN_OVERRIDES, partial=True), key_check=_check_name),
    "sample": Section({
        "n_images": Spec(**POS_INT),
        "seed": Spec(INT, min=0),
        "grid": Spec(**POS_INT),
        "bn_mode": Spec((str,), choices=BN_MODES, required=False,
                        help="BatchNorm while sampling: eval (running statistics) | train (batch statistics)"),
    }),
    "evaluate": Section({
        "inception_weights": Spec((str,), nullable=True),
        "allow_fallback_extractor": Spec((bool,)),
        "fid_reference": Spec((str,), choices=("test", "train")),
        "kid_subset_size": Spec(**POS_INT),
        "batch_size": Spec(**POS_INT),
    }),
    "da": Section({
        "pairs": ListOf(Spec((str,), check=_check_pair), min_len=1),
        "settings": ListOf(Spec((str,), choices=DA_SETTINGS), min_len=1),
        "seeds": ListOf(Spec(INT, min=0), min_len=1),
        "steps": Spec(**POS_INT),
        "batch_size": Spec(**POS_INT),
        "optimizer": Spec((str,), choices=("sgd", "adam")),
        "lr": Spec(NUM, min=0.0),
        "momentum": Spec(NUM, min=0.0, max=1.0),
        "weight_decay": Spec(NUM, min=0.0),
        "lr_anneal": Spec((bool,)),
        "anneal_alpha": Spec(NUM, min=0.0),
        "anneal_beta": Spec(NUM, min=0.0),
        "color_jitter": Spec(NUM, min=0.0, max=1.0),
        "methods": _OptionsMap(),
        "checkpoint_every": Spec(**POS_INT),
        "log_every": Spec(**POS_INT),
        "eval_every": Spec(INT, min=0,
                           help="every this many steps: test accuracy on both domains -> the training curve (0 = off)"),
        "tsne_points": Spec(**POS_INT),
        # the DA trainings' numerics ({}: the top-level compute). Required, as is eval_every: train_da tracks them
        "compute": compute_section(override=True, required=True),
    }),
})




# --------------------------------------------------------------------------- loading


def validate(params: dict, *, check_paths: bool = True, base: Path | None = None) -> dict:
    """Validate a params dict against :data:`SCHEMA`; returns it unchanged or raises ConfigError."""
    SCHEMA.validate(params, "")
    if check_paths:
        _check_paths(params, base or repo_root())
    missing = [s for s in params["da"]["settings"] if s not in params["da"]["methods"]]
    if missing:  # DVC's train_da@<pair>-<setting> stage tracks da.methods.<setting> and would fail after training
        raise ConfigError(f"params: missing key 'da.methods.{missing[0]}' (da.settings lists '{missing[0]}'); "
                          f"give it the method's options, or {{}} for its defaults, e.g. '{missing[0]}: {{}}'")
    if params["data"]["face_crop"] < params["data"]["face_size"] // 4:
        raise ConfigError("params: 'data.face_crop' is far smaller than 'data.face_size'; "
                          "crop is taken first, then resized to face_size")
    return params


def _check_paths(params: dict, base: Path) -> None:
    data = params["data"]
    if data["source"] in ("npz", "course"):
        root = resolve_path(data["root"], base)
        if not root.exists():
            raise ConfigError(
                f"params: 'data.root' = {data['root']!r} does not exist (resolved to {root}); source "
                f"'{data['source']}' reads its dataset from there. Point it at your data folder, "
                f"e.g. ../shared/data, or use data.source: embedded")
    w = params["evaluate"]["inception_weights"]
    if w and not resolve_path(w, base).exists():
        raise ConfigError(f"params: 'evaluate.inception_weights' = {w!r} does not exist")
    for pair in params["da"]["pairs"]:
        for d in pair.split("-"):
            if d not in data["domains"]:
                raise ConfigError(
                    f"params: 'da.pairs' uses domain '{d}' but 'data.domains' does not prepare it; "
                    f"prepared domains: {', '.join(data['domains'])}")




class _Yaml12FloatLoader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``5e-05`` (no dot, as ``dvc exp run -S lr_d=5e-5`` writes it) is a
    string; YAML 1.2 and DVC read it as a float. This loader adds the 1.2 float forms."""


_Yaml12FloatLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_yaml(path: Path) -> dict:
    """A params file as DVC reads it (YAML 1.2 floats such as ``5e-05``)."""
    return yaml.load(Path(path).read_text(), Loader=_Yaml12FloatLoader) or {}


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


def face_gan_config(params: dict, name: str) -> dict:
    """Effective settings of face-GAN method `name`: `gan` + top-level lrs/smoothing + its overrides.

    ``cfg["compute"]``: the training numerics, the top-level ``compute`` updated by ``gan.compute`` and then
    ``face_gans.<name>.compute`` (:func:`effective_compute`); sampling keeps the top-level section."""
    if name not in params["face_gans"]:
        raise ConfigError(f"unknown face GAN '{name}'; defined in params.face_gans: {', '.join(params['face_gans'])}")
    cfg = copy.deepcopy(params["gan"])
    cfg.update(lr_d=params["lr_d"], lr_g=params["lr_g"], label_smoothing=params["label_smoothing"])
    entry = params["face_gans"][name] or {}
    cfg.update(entry)
    cfg["compute"] = effective_compute(params, params["gan"].get("compute"), entry.get("compute"))
    return cfg


def da_setting_config(params: dict, setting: str) -> tuple[dict, dict]:
    """(shared DA settings, method options) for one DA setting."""
    if setting not in params["da"]["settings"] and setting not in DA_SETTINGS:
        raise ConfigError(f"unknown DA setting '{setting}'; valid: {', '.join(DA_SETTINGS)}")
    da = {k: v for k, v in params["da"].items() if k not in ("methods", "compute")}
    return da, dict(params["da"]["methods"].get(setting) or {})


# Conditional generation (ACGAN, DDPM, attribute ACGAN, tag cDCGAN) adds its own top-level sections.
from genda.config.cond import COND_FIELDS  # noqa: E402  (needs the classes above

SCHEMA.fields.update(COND_FIELDS)
