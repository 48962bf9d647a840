"""params.yaml sections of conditional generation (issue 3): the scoring classifier and four methods.

Four top-level sections join :data:`genda.config.schema.SCHEMA` (``config.py`` imports :data:`COND_FIELDS`
at its bottom and merges it)::

    classifier:   the digit classifier that scores generated digits (stage train_classifier)
    cond:         shared settings of every conditional generator (like `gan` for face GANs)
    cond_gens:    name -> {method: acgan | ddpm | attr_acgan | tag_cdcgan, <overrides of cond>}
    cond_sample:  how many images / which seed / which DDPM sampler the sample stage uses

The effective settings of one generator are ``cond`` updated with ``cond_gens.<name>``
(:func:`cond_config`), which also runs the checks that need several keys at once.
"""
from __future__ import annotations

# Defined before importing genda.config, so that `import genda.config` on its own also works:
# config.py's last line imports this (then still empty) dict, and the bottom of this module fills it
# and merges it into SCHEMA itself (idempotent, so the order of the two imports does not matter).
COND_FIELDS: dict = {}

import copy  # noqa: E402
from typing import Any  # noqa: E402

from genda.config.schema import (  # noqa: E402
    BN_MODES, DIGIT_DOMAINS, SCHEMA, ListOf, MapOf, Section, Spec, _check_name, compute_section, effective_compute)
from genda.errors import ConfigError  # noqa: E402

from genda.choices import COND_METHODS, DIGIT_METHODS, FACE_METHODS  # noqa: E402,F401

_NUM, _INT = (float,), (int,)


def _pos_int() -> Spec:
    return Spec(_INT, min=1)


def _check_betas(value: Any, path: str) -> None:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0 for v in value)):
        raise ConfigError(f"params: '{path}' = {value!r} must be Adam's [beta1, beta2], two numbers in [0, 1)")


def _classifier_fields() -> dict:
    return {
        "domain": Spec((str,), choices=DIGIT_DOMAINS, help="digit domain the scoring classifier is trained on"),
        "steps": _pos_int(),
        "batch_size": _pos_int(),
        "lr": Spec(_NUM, min=0.0),
        "weight_decay": Spec(_NUM, min=0.0),
        "width": Spec(_INT, min=4, help="channels of the first conv block (x2, x4 in the next two)"),
        "max_shift": Spec(_NUM, min=0.0, max=0.5, help="random translation, fraction of the image side"),
        "max_rotate": Spec(_NUM, min=0.0, max=45.0, help="random rotation, degrees"),
        "max_scale": Spec(_NUM, min=0.0, max=0.5, help="random zoom factor in [1-s, 1+s]"),
        "color_jitter": Spec(_NUM, min=0.0, max=1.0),
        "checkpoint_every": _pos_int(),
        "log_every": _pos_int(),
        "attr_steps": Spec(_INT, min=0, help="steps of the face-attribute classifier evaluate_cond trains for "
                                              "attr_acgan (0 = skip the attribute accuracy)"),
    }


def _cond_fields() -> dict:
    return {
        # shared by every method
        "domain": Spec((str,), choices=DIGIT_DOMAINS, help="digit domain of acgan / ddpm"),
        "steps": _pos_int(),
        "batch_size": _pos_int(),
        "checkpoint_every": _pos_int(),
        "log_every": _pos_int(),
        "lr_schedule": Spec((str,), choices=("none", "linear", "cosine", "step")),
        "curve_every": Spec(_INT, min=0, required=False,
                            help="acgan / ddpm: every this many steps, sample curve_per_class digits per class for "
                                 "the accuracy-vs-wall-time curve that evaluate_cond scores (0 = off)"),
        "curve_per_class": Spec(_INT, min=1, required=False, help="digits per class at each curve point"),
        "curve_ddim_steps": Spec(_INT, min=1, max=50, required=False,
                                 help="ddpm: DDIM steps of the curve's snapshots (default 50, at most T)"),
        "curve_guide_w": Spec(_NUM, min=0.0, required=False,
                              help="ddpm: guidance weight of the curve's snapshots (default 2)"),
        "ema_decay": Spec(_NUM, nullable=True, min=0.0, max=1.0, help="sample from an EMA of G / the U-Net"),
        "ema_bn_batches": Spec(_INT, min=0, required=False,
                               help="acgan / tag_cdcgan: noise batches that recompute the EMA generator's BatchNorm "
                                    "statistics before it samples (default 32; 0 = keep the trained G's)"),
        # ACGAN family (acgan, attr_acgan) and tag_cdcgan
        "loss": Spec((str,), choices=("bce", "wgan_gp"), help="adversarial loss of acgan / attr_acgan"),
        "lr_d": Spec(_NUM, min=0.0),
        "lr_g": Spec(_NUM, min=0.0),
        "betas": Spec((list,), check=_check_betas),
        "z_dim": _pos_int(),
        "ngf": _pos_int(),
        "ndf": _pos_int(),
        "d_norm": Spec((str,), choices=("batch", "layer", "none")),
        "dropout": Spec(_NUM, min=0.0, max=0.9),
        "d_steps": _pos_int(),
        "gp_weight": Spec(_NUM, min=0.0),
        "aux_weight": Spec(_NUM, min=0.0, help="weight of the auxiliary class cross-entropy"),
        "aux_fake_d": Spec((bool,),
                           help="acgan / attr_acgan: D's class loss also on fakes with their drawn labels (true, Odena "
                                "et al.) or on real images only (false)"),
        "attribute": Spec((str,), help="attr_acgan: the binary face attribute to condition on"),
        "embed_dim": _pos_int(),
        "tag_source": Spec((str,), choices=("faces", "synthetic"),
                           help="tag_cdcgan: tag groups from the face attributes or a synthetic table"),
        "synthetic_tag_dims": ListOf(Spec(_INT, min=2), min_len=1),
        # DDPM
        "lr": Spec(_NUM, min=0.0, help="ddpm: Adam learning rate"),
        "denoiser": Spec((str,), choices=("context_unet", "film_unet"),
                         help="ddpm noise network: context_unet (the seed's ContextUnet) | film_unet (CPU-lean U-Net, "
                              "conditioning in every block)"),
        "prediction": Spec((str,), choices=("eps", "v"),
                           help="ddpm training target: eps (Ho et al., the seed's) | v (velocity, Salimans & Ho 2022)"),
        "n_feat": Spec(_INT, min=8),
        "T": Spec(_INT, min=2),
        "beta_start": Spec(_NUM, min=0.0, max=1.0),
        "beta_end": Spec(_NUM, min=0.0, max=1.0),
        "p_uncond": Spec(_NUM, min=0.0, max=1.0, help="ddpm: label dropout for classifier-free guidance"),
        "loss_weight": Spec((str,), choices=("none", "min_snr"), required=False,
                            help="ddpm: per-step loss weight: none (Ho et al.'s simple loss) | min_snr (Hang et al. 2023)"),
        "min_snr_gamma": Spec(_NUM, min=0.1, required=False, help="ddpm: gamma of min_snr weighting"),
        "t_sampling": Spec((str,), choices=("uniform", "logit_normal"), required=False,
                           help="ddpm: training steps drawn uniform (Ho et al.) | logit_normal (Esser et al. 2024)"),
        "t_logit_mean": Spec(_NUM, required=False, help="ddpm: mean of logit_normal's normal (> 0: noisier steps)"),
        "t_logit_std": Spec(_NUM, min=0.01, required=False, help="ddpm: standard deviation of logit_normal's normal"),
        # numerics of this method's training (its keys replace the top-level compute's; sampling keeps the latter)
        "compute": compute_section(override=True),
    }


def _sample_fields() -> dict:
    return {
        "n_per_class": _pos_int(),
        "n_images": _pos_int(),
        "seed": Spec(_INT, min=0),
        "grid_per_class": _pos_int(),
        "batch_size": _pos_int(),
        "guide_w": Spec(_NUM, min=0.0, help="ddpm: classifier-free guidance weight w"),
        "sampler": Spec((str,), choices=("ddim", "ddpm")),
        "ddim_steps": Spec(_INT, min=1, max=50, help="DDIM steps (<= 50; and <= the model's T)"),
        "ddim_eta": Spec(_NUM, min=0.0, max=1.0),
        "reverse_frames": Spec(_INT, min=2, max=20),
        "bn_mode": Spec((str,), choices=BN_MODES, required=False,
                        help="BatchNorm while sampling: eval (running statistics) | train (batch statistics)"),
    }


class _CondEntry:
    """`cond_gens.<name>`: ``method`` (defaults to the name when the name is a method) + overrides of `cond`."""

    required = True

    def __init__(self) -> None:
        self.section = Section({"method": Spec((str,), choices=COND_METHODS), **_cond_fields()}, partial=True)

    def validate(self, value: Any, path: str) -> None:
        self.section.validate(value, path)
        name = path.rsplit(".", 1)[-1]
        if "method" not in value and name not in COND_METHODS:
            raise ConfigError(f"params: '{path}' needs a 'method' ({', '.join(COND_METHODS)}); only entries "
                              f"named after a method may leave it out")


COND_FIELDS.update({
    "classifier": Section(_classifier_fields()),
    "cond": Section(_cond_fields()),
    "cond_gens": MapOf(_CondEntry(), key_check=_check_name),
    "cond_sample": Section(_sample_fields()),
})
SCHEMA.fields.update(COND_FIELDS)


# --------------------------------------------------------------------------- effective settings
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
