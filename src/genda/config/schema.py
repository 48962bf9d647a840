"""params.yaml as one typed schema: a pydantic model per section, :class:`Params` the whole file.

Defaults live in ``params.yaml`` itself (the file a user edits is the single source of truth), so a field here has no
default: it says what is allowed. A field with ``= None`` may be left out (its consumer has a default) but, unless
its type says ``| None``, not set to null. The models are strict (``2`` is no ``"2"``, ``true`` no ``1``; an int is a
fine float) and forbid unknown keys. Checks that need several keys at once, or the file system, are in
:mod:`genda.config.load` (``validate``) and :mod:`genda.config.resolve`.

A failed check becomes one :class:`~genda.errors.ConfigError` naming the dotted key (:mod:`genda.config.messages`);
custom checks here raise :class:`Invalid`, whose message says ``{path}`` where that key goes.

Sections::

    lr_d, lr_g, label_smoothing, seed   the face GANs' most-turned knobs and the global seed (top level)
    compute      numerics of every trainer and sampler (Compute); training families may override any subset
    data         which datasets are prepared, and how (Data)
    gan          face-GAN training settings (Gan); face_gans.<name> overrides any of them (GanOverride)
    sample       the face-GAN sampler (Sample)
    evaluate     FID / KID settings (Evaluate)
    da           domain adaptation: pairs x settings x seeds, shared training settings, da.methods.<setting> (DA)
    classifier   the digit classifier that scores generated digits (Classifier)
    cond         shared settings of the conditional generators (Cond); cond_gens.<name> overrides them (CondEntry)
    cond_sample  the conditional sampler (CondSample)
    style        style transfer: MSG-Net training, stylizer, Gatys baseline (Style)
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from genda.choices import (
    BN_MODES, COND_METHODS, DA_SETTINGS, DATA_SOURCES, DDPM_LOSS_WEIGHTS, DDPM_PREDICTIONS, DDPM_T_SAMPLINGS,
    DIFFAUG_OPS, DIGIT_DOMAINS, GAN_ARCHS, GAN_D_NORMS, GAN_LOSSES, GAN_OPTIMIZERS, LR_SCHEDULES, PRECISIONS,
    STYLES, USPS_FRAMES, Z_PRIORS)


class Invalid(ValueError):
    """A custom check failed; ``{path}`` in the message stands for the dotted key path."""


class Section(BaseModel):
    """A mapping with a fixed set of keys: strict types, no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid")


# --------------------------------------------------------------------------- leaf types
PosInt = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]  # 0 = off / none
NonNeg = Annotated[float, Field(ge=0.0)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]


def _check_pair(value: str) -> str:
    parts = value.split("-")
    if len(parts) != 2 or any(p not in DIGIT_DOMAINS for p in parts) or parts[0] == parts[1]:
        raise Invalid(f"'{{path}}' = {value!r} is not a domain pair 'source-target' with two different domains "
                      f"from: {', '.join(DIGIT_DOMAINS)} (e.g. 'mnistm-usps')")
    return value


def _check_range2(value: list) -> list:
    if (len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or value[0] > value[1]):
        raise Invalid(f"'{{path}}' = {value!r} must be a [low, high] pair of numbers with low <= high")
    return value


def _check_betas(value: list) -> list:
    if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0
                                  for v in value):
        raise Invalid(f"'{{path}}' = {value!r} must be Adam's [beta1, beta2], two numbers in [0, 1)")
    return value


def _check_diffaug(value: str) -> str:
    bad = [p for p in value.split(",") if p and p not in DIFFAUG_OPS]
    if bad:
        raise Invalid(f"'{{path}}' has unknown DiffAugment op(s) {bad}; valid: {', '.join(sorted(DIFFAUG_OPS))}")
    return value


def _check_name(value: str) -> str:
    if not value.replace("_", "").isalnum():
        raise Invalid("'{path}': names may use letters, digits and '_' only")
    return value


def _named_entries(value: Any) -> Any:
    """``face_gans`` / ``cond_gens``: a mapping name -> settings; a null entry is an empty one."""
    if not isinstance(value, dict):
        raise Invalid("'{path}' must be a mapping name -> settings")
    return {k: {} if v is None else v for k, v in value.items()}


def _method_options(value: Any) -> Any:
    """``da.methods``: setting -> options, checked later by the method itself (it knows its options)."""
    if not isinstance(value, dict):
        raise Invalid("'{path}' must be a mapping setting -> options")
    for k, v in value.items():
        if k not in DA_SETTINGS:
            raise Invalid(f"unknown key '{{path}}.{k}'; valid keys here: {', '.join(DA_SETTINGS)}")
        if v is not None and not isinstance(v, dict):
            raise Invalid(f"'{{path}}.{k}' must be a mapping of method options")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Range2 = Annotated[list, AfterValidator(_check_range2)]
Betas = Annotated[list, AfterValidator(_check_betas)]
DiffAugment = Annotated[str, AfterValidator(_check_diffaug)]
DomainPair = Annotated[str, AfterValidator(_check_pair)]
LrSchedule = Literal[LR_SCHEDULES]


def partial(model: type[Section], name: str, doc: str, first: dict | None = None, **extra: Any) -> type[Section]:
    """``model`` with every key optional (an override section), after the ``first`` and before the ``extra`` fields
    (name -> (type, default)); the order of the fields is the order in which their mistakes are reported."""
    fields = {k: (f.rebuild_annotation(), Field(None, description=f.description))
              for k, f in model.model_fields.items()}
    return create_model(name, __base__=Section, __doc__=doc, **(first or {}), **fields, **extra)


# --------------------------------------------------------------------------- sections
class Compute(Section):
    """``compute``: numerics of every trainer and sampler (genda.runtime.precision)."""

    precision: Literal[PRECISIONS] = Field(description="auto (bf16 where the hardware has it natively, else fp32)")
    channels_last: bool


ComputeOverride = partial(
    Compute, "ComputeOverride",
    "``compute`` of a training family (da, gan, face_gans.<name>, cond, cond_gens.<name>): any subset of the "
    "top-level keys, which replace those for that family's training (genda.config.resolve.effective_compute).")


class Data(Section):
    """``data``: the datasets the prepare stage writes."""

    source: Literal[DATA_SOURCES]
    root: str = Field(description="dataset folder of npz / course / torchvision, relative to the project")
    domains: Annotated[list[Literal[DIGIT_DOMAINS]], Field(min_length=1)]
    digit_size: Annotated[int, Field(ge=8, le=128)]
    face_size: Annotated[int, Field(ge=16, le=256)]
    face_crop: Annotated[int, Field(ge=16)]
    face_test_fraction: Annotated[float, Field(ge=0.01, le=0.9)]
    max_train: PosInt | None
    max_test: PosInt | None
    max_faces: Annotated[int, Field(ge=2)] | None
    faces: bool
    usps_frame: Literal[USPS_FRAMES] = None
    face_attrs: str | None = Field(None, description="attribute table of the npz faces (CelebA's list_attr_celeba.txt "
                                                     "format or a CSV), relative to the project; null: a table beside "
                                                     "the faces if any")


class Gan(Section):
    """``gan``: face-GAN training settings shared by every ``face_gans`` entry."""

    arch: Literal[GAN_ARCHS]
    loss: Literal[GAN_LOSSES]
    steps: PosInt
    batch_size: PosInt
    z_dim: PosInt
    z_prior: Literal[Z_PRIORS]
    ngf: PosInt
    ndf: PosInt
    d_norm: Literal[GAN_D_NORMS]
    spectral_norm: bool
    noisy_real: Range2 | None
    noisy_fake: Range2 | None
    d_steps: PosInt
    g_steps: PosInt
    d_skip_threshold: NonNeg | None
    hflip: bool
    diffaugment: DiffAugment
    ema_decay: Unit | None
    ema_bn_batches: Count = Field(None, description="noise batches that recompute the EMA generator's BatchNorm "
                                                    "statistics after training (default 32; 0 = keep the trained G's)")
    lr_schedule: LrSchedule
    opt_d: Literal[GAN_OPTIMIZERS]
    opt_g: Literal[GAN_OPTIMIZERS]
    beta1: Unit
    beta2: Unit
    gp_weight: NonNeg
    r1_gamma: NonNeg = Field(None, description="R1 penalty weight gamma on real images, (gamma/2) E||grad_x D||^2 "
                                               "(genda.gan.losses.r1_penalty; default 0 = off)")
    r1_every: PosInt = Field(None, description="lazy regularisation: R1 on every this many-th D step, scaled by it "
                                               "(default 16)")
    mixing_prob: Unit = Field(None, description="style mixing probability of a training forward of G (arch "
                                                "stylegan2_lite only; default 0 = off)")
    checkpoint_every: PosInt
    log_every: PosInt
    compute: ComputeOverride = Field(None, description="the face GANs' training numerics (default: top level)")


LabelSmoothing = Annotated[float, Field(ge=0.0, le=0.5)]

GanOverride = partial(
    Gan, "GanOverride",
    "``face_gans.<name>``: one face-GAN method (one DVC foreach branch); any ``gan`` key and the top-level lrs / "
    "label smoothing, overriding them for this method (genda.config.resolve.face_gan_config).",
    lr_d=(NonNeg, None), lr_g=(NonNeg, None), label_smoothing=(LabelSmoothing, None))


class Sample(Section):
    """``sample``: the face-GAN sampler (course format: n_images fixed-seed PNGs)."""

    n_images: PosInt
    seed: Count
    grid: PosInt
    bn_mode: Literal[BN_MODES] = Field(None, description="BatchNorm while sampling: eval (running statistics) | "
                                                         "train (batch statistics)")


class Evaluate(Section):
    """``evaluate``: FID / KID of generated images."""

    inception_weights: str | None
    allow_fallback_extractor: bool
    fid_reference: Literal["test", "train"]
    kid_subset_size: PosInt
    batch_size: PosInt


class DA(Section):
    """``da``: domain adaptation, one training per pair x setting (x seed), shared settings, per-method options."""

    pairs: Annotated[list[DomainPair], Field(min_length=1)]
    settings: Annotated[list[Literal[DA_SETTINGS]], Field(min_length=1)]
    seeds: Annotated[list[Count], Field(min_length=1)]
    steps: PosInt
    batch_size: PosInt
    optimizer: Literal["sgd", "adam"]
    lr: NonNeg
    momentum: Unit
    weight_decay: NonNeg
    lr_anneal: bool
    anneal_alpha: NonNeg
    anneal_beta: NonNeg
    color_jitter: Unit
    methods: Annotated[dict[Literal[DA_SETTINGS], dict[str, Any] | None], BeforeValidator(_method_options)] = \
        Field(description="setting -> the method's options ({} = its defaults); genda.da.methods checks them")
    checkpoint_every: PosInt
    log_every: PosInt
    eval_every: Count = Field(description="test accuracy on both domains every this many steps (0 = off)")
    tsne_points: PosInt
    compute: ComputeOverride = Field(description="the DA trainings' numerics ({}: the top level); required, as "
                                                 "train_da tracks it")


# keys of the shared ``da`` section that one setting may override in ``da.methods.<setting>.train`` (e.g. a longer
# training for the mean teacher): its trainer settings, not its pairs, seeds or outputs
DA_TRAIN_KEYS = ("steps", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "lr_anneal", "anneal_alpha",
                 "anneal_beta", "color_jitter", "checkpoint_every", "log_every", "eval_every")
DATrainOverride = create_model(
    "DATrainOverride", __base__=Section,
    __doc__="``da.methods.<setting>.train``: shared ``da`` trainer keys this setting overrides "
            "(genda.config.resolve.da_setting_config).",
    **{k: (DA.model_fields[k].rebuild_annotation(), Field(None, description=DA.model_fields[k].description))
       for k in DA_TRAIN_KEYS})


class Classifier(Section):
    """``classifier``: the digit classifier that scores generated digits (stage train_classifier)."""

    domain: Literal[DIGIT_DOMAINS]
    steps: PosInt
    batch_size: PosInt
    lr: NonNeg
    weight_decay: NonNeg
    width: Annotated[int, Field(ge=4)] = Field(description="channels of the first conv block (x2, x4 after)")
    max_shift: Annotated[float, Field(ge=0.0, le=0.5)] = Field(description="translation, fraction of the side")
    max_rotate: Annotated[float, Field(ge=0.0, le=45.0)] = Field(description="rotation, degrees")
    max_scale: Annotated[float, Field(ge=0.0, le=0.5)] = Field(description="zoom factor in [1-s, 1+s]")
    color_jitter: Unit
    checkpoint_every: PosInt
    log_every: PosInt
    attr_steps: Count = Field(description="steps of each face-attribute classifier that scores attr_acgan / "
                                          "tag_cdcgan (0 = skip the scoring)")
    # the face-attribute classifiers' own settings (genda.metrics.cond_eval.score_groups); unset: the digit
    # classifier's (width, batch_size, color_jitter above) at the faces' own size
    attr_image_size: Annotated[int, Field(ge=8)] = Field(None, description="side the faces are resized to for them")
    attr_width: Annotated[int, Field(ge=4)] = Field(None, description="channels of their first conv block")
    attr_batch_size: PosInt = None
    attr_color_jitter: Unit = Field(None, description="their colour jitter (0: hair colour is a label)")


class Cond(Section):
    """``cond``: settings shared by every conditional generator (acgan, ddpm, attr_acgan, tag_cdcgan)."""

    # every method
    domain: Literal[DIGIT_DOMAINS]
    steps: PosInt
    batch_size: PosInt
    checkpoint_every: PosInt
    log_every: PosInt
    lr_schedule: LrSchedule
    curve_every: Count = Field(None, description="acgan / ddpm: sample curve_per_class digits per class every this "
                                                 "many steps for the accuracy curve (0 = off)")
    curve_per_class: PosInt = None
    curve_ddim_steps: Annotated[int, Field(ge=1, le=50)] = Field(None, description="ddpm: DDIM steps of the curve")
    curve_guide_w: NonNeg = Field(None, description="ddpm: guidance weight of the curve's snapshots")
    ema_decay: Unit | None
    ema_bn_batches: Count = None
    # the GANs (acgan, attr_acgan, tag_cdcgan)
    loss: Literal["bce", "wgan_gp"]
    lr_d: NonNeg
    lr_g: NonNeg
    betas: Betas
    z_dim: PosInt
    ngf: PosInt
    ndf: PosInt
    d_norm: Literal["batch", "layer", "none"]
    dropout: Annotated[float, Field(ge=0.0, le=0.9)]
    d_steps: PosInt
    gp_weight: NonNeg
    aux_weight: NonNeg
    aux_fake_d: bool
    attribute: str = Field(description="attr_acgan: the binary face attribute to condition on")
    label_input: Literal["product", "concat"] = Field(
        None, description="acgan / attr_acgan: G's input, Embed(y) * z (product, unset) or [z, onehot(y)] (concat: "
                          "the same z keeps the face when the attribute flips)")
    embed_dim: PosInt
    tag_aux_weight: NonNeg = Field(None, description="tag_cdcgan: weight of D's auxiliary tag classifier (AC-GAN's "
                                                     "CE on real faces for D, on fakes for G); unset / 0: GAN-CLS only")
    tag_balance: str = Field(None, description="tag_cdcgan: a tag group whose values the training batches draw "
                                               "equally often (with replacement; e.g. hair, where gray is 7 % of the "
                                               "faces); unset: batches as in the data")
    tag_source: Literal["faces", "synthetic"]
    synthetic_tag_dims: Annotated[list[Annotated[int, Field(ge=2)]], Field(min_length=1)]
    tag_groups: dict[str, Annotated[list[str], Field(min_length=1)]] | None = Field(
        None, description="tag_cdcgan, tag_source faces: group name -> attributes (one: off/on; several: which one "
                          "is on, e.g. hair: [Black_Hair, Blond_Hair, Brown_Hair, Gray_Hair]); null: each attribute")
    # DDPM
    lr: NonNeg
    denoiser: Literal["context_unet", "film_unet"]
    prediction: Literal[DDPM_PREDICTIONS]
    n_feat: Annotated[int, Field(ge=8)]
    T: Annotated[int, Field(ge=2)]
    beta_start: Unit
    beta_end: Unit
    p_uncond: Unit
    loss_weight: Literal[DDPM_LOSS_WEIGHTS] = None
    min_snr_gamma: Annotated[float, Field(ge=0.1)] = None
    t_sampling: Literal[DDPM_T_SAMPLINGS] = None
    t_logit_mean: float = None
    t_logit_std: Annotated[float, Field(ge=0.01)] = None
    compute: ComputeOverride = None


CondEntry = partial(
    Cond, "CondEntry",
    "``cond_gens.<name>``: one conditional generator (one DVC foreach branch): its ``method`` (may be left out when "
    "the name is a method) and any ``cond`` key, overriding it (genda.config.resolve.cond_config).",
    first={"method": (Literal[COND_METHODS], None)})


def _entries_have_methods(value: dict) -> dict:
    for name, entry in value.items():
        if entry.method is None and name not in COND_METHODS:
            raise Invalid(f"'{{path}}.{name}' needs a 'method' ({', '.join(COND_METHODS)}); only entries "
                          f"named after a method may leave it out")
    return value


class CondSample(Section):
    """``cond_sample``: the conditional sampler (stage sample_cond)."""

    n_per_class: PosInt
    n_images: PosInt
    seed: Count
    grid_per_class: PosInt
    batch_size: PosInt
    guide_w: NonNeg = Field(description="ddpm: classifier-free guidance weight w")
    sampler: Literal["ddim", "ddpm"]
    ddim_steps: Annotated[int, Field(ge=1, le=50)] = Field(description="DDIM steps (<= 50; and <= the model's T)")
    ddim_eta: Unit
    reverse_frames: Annotated[int, Field(ge=2, le=20)]
    bn_mode: Literal[BN_MODES] = None


NamedGans = Annotated[dict[Name, GanOverride], BeforeValidator(_named_entries)]
NamedConds = Annotated[dict[Name, CondEntry], BeforeValidator(_named_entries), AfterValidator(_entries_have_methods)]


def _check_ngf(value: int) -> int:
    if value % 8:
        raise Invalid(f"'{{path}}' = {value} must be a multiple of 8 (MSG-Net's widths are ngf/8 ... 4 ngf)")
    return value


def _check_side(value: int) -> int:
    if value % 4:
        raise Invalid(f"'{{path}}' = {value} must be a multiple of 4 (MSG-Net downsamples twice by 2)")
    return value


Side = Annotated[int, Field(ge=16, le=1024), AfterValidator(_check_side)]


class Style(Section):
    """``style``: MSG-Net style transfer (genda.style): training, the stylizer, the Gatys baseline."""

    styles: Annotated[list[Literal[STYLES]], Field(min_length=1)]
    vgg_weights: str | None = Field(description="VGG-16 weights file; missing or null: torchvision's cache, else a "
                                                "random-weight VGG-16 (one warning, named in the metrics)")
    vgg_seed: Count
    steps: PosInt
    batch_size: PosInt
    image_size: Side
    photo_crops: Count
    style_size: Side
    ngf: Annotated[int, Field(ge=8), AfterValidator(_check_ngf)]
    n_blocks: Count
    lr: NonNeg
    content_weight: NonNeg
    style_weight: NonNeg
    tv_weight: NonNeg
    checkpoint_every: PosInt
    log_every: PosInt
    eval_size: Side
    n_faces: Count
    speed_images: PosInt
    gatys_images: PosInt
    gatys_steps: PosInt
    gatys_lr: NonNeg
    compute: ComputeOverride = None


class Summary(Section):
    """``summary``: the results table of the stage ``summary`` (genda.pipeline.summary)."""

    targets: dict[str, NonNeg | str] = Field(
        description="result row (e.g. da/mnistm-usps/dann) -> its target: accuracies and rates at least this, FIDs "
                    "and identity ratios at most; or another row's name (e.g. faces/dcgan/fid): that row's value")


class Params(Section):
    """The whole params file."""

    lr_d: NonNeg = Field(description="face-GAN discriminator learning rate")
    lr_g: NonNeg = Field(description="face-GAN generator learning rate")
    label_smoothing: LabelSmoothing = Field(description="one-sided: real target = 1 - s")
    seed: Count
    compute: Compute = None
    data: Data
    gan: Gan
    face_gans: NamedGans
    sample: Sample
    evaluate: Evaluate
    da: DA
    classifier: Classifier
    cond: Cond
    cond_gens: NamedConds
    cond_sample: CondSample
    style: Style = None
    summary: Summary = None


SCHEMA = Params
# the sections of conditional generation (issue 3)
COND_FIELDS = {name: Params.model_fields[name] for name in ("classifier", "cond", "cond_gens", "cond_sample")}
