"""Image-quality metrics FID / IS / KID, computed by torch-fidelity in a single call.

With Inception features ``f(x) in R^2048`` (pool3) and logits ``l(x) in R^1008``:

* FID (Heusel et al., 2017), Gaussians fitted to the two feature sets::

      FID = ||mu_g - mu_r||^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2))

* IS (Salimans et al., 2016), on the generated set only, ``p(y|x) = softmax(l(x))`` and
  ``p(y) = E_x p(y|x)`` estimated per split (``isc_splits`` = min(10, N) splits)::

      IS = exp(E_x KL(p(y|x) || p(y)))        (mean and std over the splits; IS >= 1)

* KID (Binkowski et al., 2018), unbiased MMD^2 with the cubic kernel
  ``k(a, b) = (a.b / d + 1)^3``, averaged over 100 random subsets of ``kid_subset_size``
  samples from each set (mean and std over the subsets; may be slightly negative).

Inputs are ``uint8`` tensors ``[N, 3, H, W]`` in ``[0, 255]`` (a 1-channel ``[N, 1, H, W]`` tensor is
repeated to 3 channels).  The extractor resizes them itself.

Choosing the feature extractor (:func:`choose_extractor`), first match wins:

1. ``inception_weights`` argument -> torch-fidelity's ``inception-v3-compat`` with that file;
2. environment variable ``GENDA_INCEPTION_WEIGHTS`` -> same;
3. the file torch-fidelity would download (``weights-inception-2015-12-05-6726825d.pth``), if it is
   already in ``torch.hub.get_dir()/checkpoints`` -> same;
4. otherwise (``allow_fallback=True``) the fallback ``genda-randcnn-v1`` (:class:`RandomCNNExtractor`).

The weights path is always passed explicitly to torch-fidelity, so it never tries to download anything.

.. warning::
   Scores computed with the fallback extractor are **only comparable with scores computed with the
   same fallback** (same name ``genda-randcnn-v1``), never with published Inception FID/IS/KID
   numbers.  The extractor name and weights are returned with every result so that logs say which
   one was used.
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torch_fidelity
from torch import Tensor, nn
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from genda.errors import ConfigError, DataError

__all__ = [
    "ENV_INCEPTION_WEIGHTS",
    "INCEPTION_NAME",
    "FALLBACK_NAME",
    "ExtractorChoice",
    "Features",
    "metric_layers",
    "extract_features",
    "RandomCNNExtractor",
    "register_extractor",
    "inception_cache_path",
    "choose_extractor",
    "compute_fidelity",
    "real_floor",
    "fidelity_with_floor",
]

ENV_INCEPTION_WEIGHTS = "GENDA_INCEPTION_WEIGHTS"
INCEPTION_NAME = "inception-v3-compat"
FALLBACK_NAME = "genda-randcnn-v1"
FALLBACK_SEED = 0


# --------------------------------------------------------------------------------------------------
# Fallback extractor
# --------------------------------------------------------------------------------------------------
class RandomCNNExtractor(FeatureExtractorBase):
    """Fixed-seed, randomly initialised CNN: the fallback when no Inception weights are available.

    Not trained on anything: its features are random (but fixed) non-linear image statistics, enough
    to rank models and to see progress, **not** comparable with Inception-based FID/IS/KID.

    Pipeline for ``x`` uint8 ``[B, 3, H, W]``::

        x -> float, bilinear resize to 64x64 (antialiased) -> (x - 128) / 128      [B, 3, 64, 64]
          -> 4 x (Conv3x3 stride 2, ReLU): 32, 64, 128, 256 channels                [B, 256, 4, 4]
          -> global average pool                                   = feature "256"  [B, 256]
          -> Conv1x1 256->2048, ReLU -> global average pool         = feature "2048" [B, 2048]
          -> standardise (f - m0) / s0, Linear 2048->1008 (no bias)  = "logits_unbiased" [B, 1008]

    All weights are drawn in the constructor from ``torch.Generator().manual_seed(0)`` (Kaiming-normal
    convs, zero biases, ``N(0, 1/2048)`` projection); ``m0, s0`` (per-dimension mean / std of the
    2048-d feature) come from a fixed calibration set of 32 noise images drawn from the same
    generator, so the logits have roughly unit scale.  Every instance is identical and the global
    RNG is untouched.  IS with these logits is 1 for a set of identical images and grows with
    diversity, but its values mean nothing outside this extractor.  Computation is float32; on CPU
    it is deterministic, CUDA results differ from CPU results by float rounding only.
    Defaults: FID/KID use ``"2048"``, IS uses ``"logits_unbiased"``; the cheaper ``"256"`` feature can
    be chosen with ``ExtractorChoice.extra_kwargs["feature_layer_fid"] = "256"`` (FID then needs the
    eigenvalues of a 256x256 instead of a 2048x2048 matrix).

    Args:
        name: registered name (``genda-randcnn-v1``).
        features_list: requested subset of :meth:`get_provided_features_list`.
        **kwargs: the other ``torch_fidelity.calculate_metrics`` kwargs, ignored.
    """

    INPUT_IMAGE_SIZE = 64
    WIDTHS = (32, 64, 128, 256)
    FEATURE_DIM = 2048
    NUM_LOGITS = 1008

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        gen = torch.Generator().manual_seed(FALLBACK_SEED)
        with torch.random.fork_rng(devices=[]):  # nn default inits draw from the global RNG: restore it
            layers, c_in = [], 3
            for c_out in self.WIDTHS:
                layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
                c_in = c_out
            self.body = nn.Sequential(*layers)
            self.head = nn.Conv2d(c_in, self.FEATURE_DIM, 1)
            self.proj = nn.Linear(self.FEATURE_DIM, self.NUM_LOGITS, bias=False)
        with torch.no_grad():
            for m in list(self.body) + [self.head]:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
                    m.bias.zero_()
            self.proj.weight.normal_(0.0, self.FEATURE_DIM ** -0.5, generator=gen)
            if "logits_unbiased" in self.features_list:  # the only user of the calibration statistics
                f = self._features(self._calibration_images(gen))[1]
                mean, scale = f.mean(dim=0), 1.0 / (f.std(dim=0) + 1e-6)
            else:
                mean, scale = torch.zeros(self.FEATURE_DIM), torch.ones(self.FEATURE_DIM)
            self.register_buffer("logit_mean", mean)
            self.register_buffer("logit_scale", scale)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def _calibration_images(cls, gen: torch.Generator, n: int = 32) -> Tensor:
        """Fixed uint8 ``[n, 3, 64, 64]`` calibration set: uniform noise at 4, 8, 16 and 64 px,
        bilinearly upsampled and averaged (smooth blobs plus texture), drawn from ``gen``."""
        s = cls.INPUT_IMAGE_SIZE
        x = torch.zeros(n, 3, s, s)
        for r in (4, 8, 16, 64):
            x += F.interpolate(torch.rand(n, 3, r, r, generator=gen), size=(s, s), mode="bilinear",
                               align_corners=False)
        return (x / 4 * 255).round().to(torch.uint8)

    def _features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.INPUT_IMAGE_SIZE
        x = x.float()
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        x = (x - 128.0) / 128.0
        h = self.body(x)                                              # [B, 256, 4, 4]
        f = F.relu(self.head(h)).mean(dim=(2, 3))                     # [B, 2048]
        return h.mean(dim=(2, 3)), f                                  # [B, 256], [B, 2048]

    @staticmethod
    def get_provided_features_list():
        return "256", "2048", "logits_unbiased"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits_unbiased", "fid": "2048", "kid": "2048", "prc": "2048"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, RandomCNNExtractor.INPUT_IMAGE_SIZE, RandomCNNExtractor.INPUT_IMAGE_SIZE,
                           dtype=torch.uint8)

    def forward(self, x: Tensor):
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3):
            raise ValueError(f"{self.name}: expects uint8 [B, 3, H, W], got "
                             f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
        f256, f = self._features(x)
        out = {"256": f256, "2048": f}
        if "logits_unbiased" in self.features_list:
            out["logits_unbiased"] = self.proj((f - self.logit_mean) * self.logit_scale)  # [B, 1008]
        return tuple(out[k].float() for k in self.features_list)


def register_extractor(name: str, cls: type) -> str:
    """Register ``cls`` with torch-fidelity under ``name``; idempotent.

    Registering the same class again (or a re-import of it: same module and qualified name) is a
    no-op / replacement; a *different* class under an already used name raises :class:`ConfigError`.
    Returns ``name``.
    """
    have = FEATURE_EXTRACTORS_REGISTRY.get(name)
    if have is cls:
        return name
    if have is None:
        torch_fidelity.register_feature_extractor(name, cls)
    elif (have.__module__, have.__qualname__) == (cls.__module__, cls.__qualname__):
        FEATURE_EXTRACTORS_REGISTRY[name] = cls  # module reloaded: keep the newest class object
    else:
        raise ConfigError(f"feature extractor name {name!r} is already registered for "
                          f"{have.__module__}.{have.__qualname__}")
    return name


# --------------------------------------------------------------------------------------------------
# Choosing the extractor
# --------------------------------------------------------------------------------------------------
@dataclass
class ExtractorChoice:
    """Which feature extractor torch-fidelity should use.

    Attributes:
        name: torch-fidelity ``feature_extractor`` name (must be registered).
        weights: path of the weights file, or a description such as ``"random-init(seed=0)"``.
        is_fallback: True for the random-CNN fallback (scores not comparable with Inception ones).
        extra_kwargs: further kwargs for ``torch_fidelity.calculate_metrics``
            (e.g. ``feature_extractor_weights_path``, ``feature_layer_fid``).
    """

    name: str
    weights: str
    is_fallback: bool
    extra_kwargs: dict = field(default_factory=dict)

    def kwargs(self) -> dict:
        """Extra kwargs for ``torch_fidelity.calculate_metrics``."""
        return {"feature_extractor": self.name, **self.extra_kwargs}


def inception_cache_path() -> str:
    """Where torch-fidelity's own download of the Inception weights would be cached:
    ``torch.hub.get_dir()/checkpoints/weights-inception-2015-12-05-6726825d.pth``
    (honours ``TORCH_HOME`` at call time)."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    fname = os.path.basename(urlparse(URL_INCEPTION_V3).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", fname)


def _inception(path: str) -> ExtractorChoice:
    path = os.path.abspath(path)
    return ExtractorChoice(INCEPTION_NAME, path, False, {"feature_extractor_weights_path": path})


def choose_extractor(inception_weights: str | None = None, *, allow_fallback: bool = True) -> ExtractorChoice:
    """Pick the feature extractor (see the module docstring for the order). Never downloads.

    Raises:
        DataError: ``inception_weights`` or ``$GENDA_INCEPTION_WEIGHTS`` names a missing file, or no
            weights are found and ``allow_fallback`` is False (the message lists where to put them).
    """
    if inception_weights is not None:
        p = os.fspath(inception_weights)
        if not os.path.isfile(p):
            raise DataError(f"Inception weights file not found: {p}")
        return _inception(p)
    env = os.environ.get(ENV_INCEPTION_WEIGHTS)
    if env:
        if not os.path.isfile(env):
            raise DataError(f"Inception weights file not found: {env} (from ${ENV_INCEPTION_WEIGHTS})")
        return _inception(env)
    cached = inception_cache_path()
    if os.path.isfile(cached):
        return _inception(cached)
    if not allow_fallback:
        raise DataError(
            "No Inception weights for FID/IS/KID and the fallback extractor is disabled. Put the file "
            f"weights-inception-2015-12-05-6726825d.pth (torch-fidelity's InceptionV3) at {cached}, or "
            f"set ${ENV_INCEPTION_WEIGHTS} to its path, or pass inception_weights=<path>.")
    register_extractor(FALLBACK_NAME, RandomCNNExtractor)
    return ExtractorChoice(FALLBACK_NAME, f"random-init(seed={FALLBACK_SEED})", True)


# --------------------------------------------------------------------------------------------------
# Computing the metrics
# --------------------------------------------------------------------------------------------------
class _ImageTensorDataset(Dataset):
    """Wraps a uint8 ``[N, 3, H, W]`` CPU tensor; item ``i`` is the ``[3, H, W]`` image."""

    def __init__(self, images: Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


def _check_images(x, what: str) -> Tensor:
    if not torch.is_tensor(x):
        raise DataError(f"{what} images: expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise DataError(f"{what} images: expected dtype uint8 in [0, 255], got {x.dtype} "
                        "(convert e.g. with ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))")
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"{what} images: expected shape [N, 3, H, W], got {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise DataError(f"{what} images: need at least 2 images, got {x.shape[0]}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.detach().cpu().contiguous()


def _device_context(device) -> tuple[bool, object]:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from e
    if dev.type == "cpu":
        return False, nullcontext()
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} requested but CUDA is not available")
        return True, (torch.cuda.device(dev.index) if dev.index is not None else nullcontext())
    raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")


@dataclass
class Features:
    """Features of one image set, as torch-fidelity's extractor gives them: ``{layer: Tensor [N, D]}`` (float32,
    CPU), with the extractor that made them (``name``, ``weights``).  Pass one in place of an image tensor to
    :func:`compute_fidelity` / :func:`fidelity_with_floor` to skip re-extracting a reference set that many
    evaluations share (the ``fid_reference`` stage caches them, :mod:`genda.metrics.fid_reference`)."""

    features: dict
    extractor: str
    weights: str

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def head(self, n: int) -> "Features":
        """The first ``n`` images' features."""
        return Features({k: v[:n] for k, v in self.features.items()}, self.extractor, self.weights)

    def matches(self, choice: ExtractorChoice) -> bool:
        return (self.extractor, self.weights) == (choice.name, choice.weights)


def metric_layers(choice: ExtractorChoice, *, fid: bool = True, isc: bool = True, kid: bool = True) -> dict:
    """``{metric: feature layer}`` for the requested metrics: torch-fidelity's choice for this extractor (its
    default, or ``feature_layer_<metric>`` in ``choice.extra_kwargs``)."""
    from torch_fidelity.utils import resolve_feature_layer_for_metric

    kw = choice.kwargs()
    return {m: resolve_feature_layer_for_metric(m, **kw) for m, on in (("fid", fid), ("isc", isc), ("kid", kid))
            if on}


def extract_features(images: Tensor, choice: ExtractorChoice, layers, *, batch_size: int = 64,
                     device: str = "cpu", what: str = "images") -> Features:
    """torch-fidelity's feature extraction of uint8 ``images [N, 3|1, H, W]`` for the given ``layers``."""
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    x = _check_images(images, what)
    cuda, ctx = _device_context(device)
    kw = {k: v for k, v in choice.kwargs().items() if not k.startswith("feature_layer_")}
    kw.pop("feature_extractor")
    with ctx:
        fe = create_feature_extractor(choice.name, sorted(set(layers)), cuda=cuda, verbose=False, **kw)
        fd = get_featuresdict_from_dataset(_ImageTensorDataset(x), fe, batch_size, cuda, True, False)
    return Features({k: v.cpu() for k, v in fd.items()}, choice.name, choice.weights)


def _features_of(x, what: str, choice: ExtractorChoice, layers: set, batch_size: int, device: str) -> Features:
    if isinstance(x, Features):
        if not x.matches(choice):
            raise ConfigError(f"{what} features were extracted with {x.extractor} ({x.weights}), this evaluation "
                              f"uses {choice.name} ({choice.weights}): rerun the fid_reference stage")
        missing = layers - set(x.features)
        if missing:
            raise ConfigError(f"{what} features lack layer(s) {sorted(missing)} (have {sorted(x.features)})")
        if len(x) < 2:
            raise DataError(f"{what} images: need at least 2 images, got {len(x)}")
        return x
    return extract_features(x, choice, layers, batch_size=batch_size, device=device, what=what)


def compute_fidelity(generated, reference, *, fid: bool = True, isc: bool = True,
                     kid: bool = True, inception_weights: str | None = None, allow_fallback: bool = True,
                     batch_size: int = 64, device: str = "cpu", kid_subset_size: int = 1000,
                     extractor: ExtractorChoice | None = None, rng_seed: int = 2020) -> dict:
    """FID / IS / KID of ``generated`` against ``reference``: torch-fidelity's extractor and its IS / KID
    estimators (``isc_splits`` = min(10, N), ``rng_seed`` for the IS shuffle and KID subsets, as
    ``torch_fidelity.calculate_metrics``), FID by :func:`genda.metrics.frechet.frechet_distance` (the same
    number as torch-fidelity's, without its 2048x2048 non-symmetric eigensolve).

    Args:
        generated: uint8 ``[N, 3, H, W]`` (IS is computed on these), or their :class:`Features`.
        reference: uint8 ``[M, 3, H', W']`` real images or their :class:`Features` (e.g. the cached ones of
            the ``fid_reference`` stage); may be None when only ``isc`` is requested.
        fid, isc, kid: which metrics to compute.
        inception_weights, allow_fallback: passed to :func:`choose_extractor` (ignored if ``extractor``).
        batch_size: feature-extraction batch size.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        kid_subset_size: KID subset size, clipped to ``min(N, M)``.
        extractor: an explicit :class:`ExtractorChoice` (skips :func:`choose_extractor`).
        rng_seed: seed of torch-fidelity's IS shuffling and KID subset sampling.

    Returns:
        dict with, for the requested metrics only, ``fid``; ``is_mean``, ``is_std``; ``kid_mean``,
        ``kid_std``, ``kid_subset_size``; always ``n_generated``, ``n_reference`` (0 if None),
        ``extractor`` (name), ``extractor_weights`` (str), ``extractor_is_fallback`` (bool).
    """
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric
    from torch_fidelity.metric_kid import kid_featuresdict_to_metric

    from genda.metrics.frechet import frechet_distance

    if not (fid or isc or kid):
        raise ConfigError("compute_fidelity: at least one of fid, isc, kid must be True")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"compute_fidelity: batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(kid_subset_size, int) or kid_subset_size < 2:
        raise ConfigError(f"compute_fidelity: kid_subset_size must be an int >= 2, got {kid_subset_size!r}")
    if not isinstance(generated, Features):
        generated = _check_images(generated, "generated")
    if reference is None:
        if fid or kid:
            raise DataError("reference images are required for FID/KID, got None")
    elif not isinstance(reference, Features):
        reference = _check_images(reference, "reference")
    _device_context(device)
    choice = extractor if extractor is not None else choose_extractor(inception_weights,
                                                                      allow_fallback=allow_fallback)
    layers = metric_layers(choice, fid=fid, isc=isc, kid=kid)
    gen = _features_of(generated, "generated", choice, set(layers.values()), batch_size, device)
    ref = None
    if fid or kid:
        ref_layers = {layers[m] for m in ("fid", "kid") if m in layers}
        ref = _features_of(reference, "reference", choice, ref_layers, batch_size, device)
    n, m = len(gen), (len(ref) if ref is not None else len(reference) if reference is not None else 0)

    out: dict = {}
    if fid:
        out["fid"] = frechet_distance(gen.features[layers["fid"]], ref.features[layers["fid"]])
    if isc:
        r = isc_featuresdict_to_metric(gen.features, layers["isc"], isc_splits=min(10, n), samples_shuffle=True,
                                       rng_seed=rng_seed, verbose=False)
        out["is_mean"] = float(r[torch_fidelity.KEY_METRIC_ISC_MEAN])
        out["is_std"] = float(r[torch_fidelity.KEY_METRIC_ISC_STD])
    if kid:
        size = min(kid_subset_size, n, m)
        r = kid_featuresdict_to_metric(gen.features, ref.features, layers["kid"], kid_subset_size=size,
                                       rng_seed=rng_seed, verbose=False)
        out["kid_mean"] = float(r[torch_fidelity.KEY_METRIC_KID_MEAN])
        out["kid_std"] = float(r[torch_fidelity.KEY_METRIC_KID_STD])
        out["kid_subset_size"] = size
    out.update(n_generated=n, n_reference=m, extractor=choice.name, extractor_weights=choice.weights,
               extractor_is_fallback=bool(choice.is_fallback))
    return out


def real_floor(reference_a, reference_b, **kw) -> dict:
    """The real-vs-real floor: :func:`compute_fidelity` of held-out real images ``reference_a``
    against real test images ``reference_b`` (same kwargs).  A generator's FID/KID is only meaningful
    relative to this floor, which is > 0 because of finite-sample noise (and, for FID, bias)."""
    return compute_fidelity(reference_a, reference_b, **kw)


def fidelity_with_floor(generated, reference, held_out, *, isc: bool = True, **kw) -> dict:
    """:func:`compute_fidelity` of ``generated`` against ``reference``, plus the real-vs-real floor of the
    first ``len(generated)`` ``held_out`` real images against the same reference (same extractor, sample
    size and KID subset), as ``fid_real_floor``, ``kid_real_floor`` and ``n_real_floor``.  ``reference`` and
    ``held_out`` may be :class:`Features` (cached by the ``fid_reference`` stage): the floor is then a few
    matrix products instead of two more feature extractions."""
    out = compute_fidelity(generated, reference, isc=isc, **kw)
    n = len(generated)
    first = held_out.head(n) if isinstance(held_out, Features) else held_out[:n]
    floor = real_floor(first, reference, isc=False, **kw)
    out.update(fid_real_floor=floor["fid"], kid_real_floor=floor["kid_mean"], n_real_floor=floor["n_generated"])
    return out
