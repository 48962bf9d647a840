"""The effective settings of one method: a section's shared settings updated by the method's own entry.

Inputs are validated params dicts (:func:`genda.config.load.validate`); outputs are plain dicts that the trainers
fingerprint, so their keys, values and types are exactly those of the params file.
"""
from __future__ import annotations

import copy

from genda.choices import COND_METHODS, DA_SETTINGS, DIGIT_METHODS
from genda.errors import ConfigError


def effective_compute(params: dict, *overrides: dict | None) -> dict:
    """The top-level ``compute`` section updated by each override's keys in order (later wins)."""
    out = dict(params.get("compute") or {})
    for o in overrides:
        out.update(o or {})
    return out


def face_gan_config(params: dict, name: str) -> dict:
    """Effective settings of face-GAN method `name`: `gan` + top-level lrs/smoothing + its overrides.

    ``cfg["compute"]``: the training numerics, the top-level ``compute`` updated by ``gan.compute`` and then
    ``face_gans.<name>.compute`` (:func:`effective_compute`); sampling keeps the top-level section.

    Raises ConfigError for an unknown name or style mixing (``mixing_prob`` > 0) without a style generator."""
    if name not in params["face_gans"]:
        raise ConfigError(f"unknown face GAN '{name}'; defined in params.face_gans: {', '.join(params['face_gans'])}")
    cfg = copy.deepcopy(params["gan"])
    cfg.update(lr_d=params["lr_d"], lr_g=params["lr_g"], label_smoothing=params["label_smoothing"])
    entry = params["face_gans"][name] or {}
    cfg.update(entry)
    cfg["compute"] = effective_compute(params, params["gan"].get("compute"), entry.get("compute"))
    if cfg.get("mixing_prob") and cfg["arch"] != "stylegan2_lite":
        raise ConfigError(f"params: 'face_gans.{name}' has mixing_prob {cfg['mixing_prob']} with arch "
                          f"{cfg['arch']}; style mixing needs a style generator: arch stylegan2_lite, or mixing_prob 0")
    return cfg


def da_setting_config(params: dict, setting: str, pair: str | None = None) -> tuple[dict, dict]:
    """(shared DA settings, method options) for one DA setting (on one pair): ``da`` without its per-setting parts,
    updated with ``da.methods.<setting>.train``, and the rest of ``da.methods.<setting>`` as the method's options.

    ``da.methods.<setting>.by_pair.<pair>`` overrides both for that pair only (its ``train`` merged into the
    setting's ``train``, its other keys into the options), e.g. a larger network on one pair:
    ``dann: {domain_weight: 1.0, by_pair: {mnistm-usps: {network: gp, train: {steps: 6000}}}}``."""
    if setting not in params["da"]["settings"] and setting not in DA_SETTINGS:
        raise ConfigError(f"unknown DA setting '{setting}'; valid: {', '.join(DA_SETTINGS)}")
    da = {k: v for k, v in params["da"].items() if k not in ("methods", "compute")}
    options = dict(params["da"]["methods"].get(setting) or {})
    by_pair = options.pop("by_pair", None) or {}
    train = dict(options.pop("train", None) or {})
    if pair is not None:
        override = dict(by_pair.get(pair) or {})
        train.update(override.pop("train", None) or {})
        options.update(override)
    da.update(train)  # this setting's own trainer settings (e.g. a longer training)
    return da, options


def cond_config(params: dict, name: str) -> dict:
    """Effective settings of conditional generator `name`: ``cond`` + ``cond_gens.<name>``, plus ``method``.

    Raises ConfigError for an unknown name or a combination the trainer cannot run (WGAN-GP with a
    batch-normalised critic, ``beta_start > beta_end``)."""
    gens = params.get("cond_gens") or {}
    if name not in gens:
        raise ConfigError(f"unknown conditional generator '{name}'; defined in params.cond_gens: "
                          f"{', '.join(gens) or '(none)'}")
    cfg = copy.deepcopy(params["cond"])
    entry = dict(gens[name] or {})
    cfg["method"] = entry.pop("method", name)
    cfg.update(entry)
    cfg["compute"] = effective_compute(params, params["cond"].get("compute"), entry.get("compute"))
    if cfg["method"] not in COND_METHODS:
        raise ConfigError(f"params: 'cond_gens.{name}.method' must be one of {', '.join(COND_METHODS)}")
    where = f"cond_gens.{name}"
    if cfg["method"] in ("acgan", "attr_acgan") and cfg["loss"] == "wgan_gp" and cfg["d_norm"] == "batch":
        raise ConfigError(f"params: '{where}' uses loss wgan_gp with d_norm batch; the gradient penalty needs a "
                          f"per-sample critic: set d_norm to 'layer' or 'none'")
    if cfg["method"] == "ddpm" and not 0.0 < cfg["beta_start"] <= cfg["beta_end"] < 1.0:
        raise ConfigError(f"params: '{where}': need 0 < beta_start <= beta_end < 1, "
                          f"got {cfg['beta_start']}, {cfg['beta_end']}")
    if cfg["method"] == "ddpm" and cfg["n_feat"] % 8:
        raise ConfigError(f"params: '{where}.n_feat' = {cfg['n_feat']} must be a multiple of 8 (GroupNorm)")
    return cfg


def cond_kind(method: str) -> str:
    """"digits" or "faces": which prepared data a method trains on."""
    return "digits" if method in DIGIT_METHODS else "faces"


def check_sampler(sample: dict, T: int) -> None:
    """``cond_sample.ddim_steps`` must not exceed the model's ``T``."""
    if sample["sampler"] == "ddim" and sample["ddim_steps"] > T:
        raise ConfigError(f"params: 'cond_sample.ddim_steps' = {sample['ddim_steps']} exceeds the model's T = {T}")
