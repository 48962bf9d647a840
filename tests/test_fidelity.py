"""Tests for genda.metrics.fidelity (FID/IS/KID via torch-fidelity) and genda.metrics.facedetect."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from genda.errors import ConfigError, DataError
from genda.metrics import fidelity
from genda.metrics.fidelity import (
    ENV_INCEPTION_WEIGHTS,
    FALLBACK_NAME,
    INCEPTION_NAME,
    ExtractorChoice,
    RandomCNNExtractor,
    choose_extractor,
    compute_fidelity,
    inception_cache_path,
    fidelity_with_floor,
    real_floor,
    register_extractor,
)

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def blobs(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """uint8 [n, 3, size, size] smooth random images with values in [40, 172] (room to shift by 60)."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=size, mode="bilinear", align_corners=False)
    x = x + 0.1 * torch.rand(n, 3, size, size, generator=g)
    return (40 + 120 * x.clamp(0, 1)).round().to(torch.uint8)


def shift(x: torch.Tensor, s: int) -> torch.Tensor:
    return (x.int() + s).clamp(0, 255).to(torch.uint8)


@pytest.fixture(autouse=True)
def _one_thread():
    """The matrices here are small: one BLAS / torch thread is faster and far more stable in time on a
    shared 2-core machine (multi-threaded OpenBLAS eigvals under CPU contention: 0.1 s -> 5 s)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)
    except ImportError:  # only a speed-up
        limits = contextlib.nullcontext()
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(n)


def no_download(*args, **kwargs):
    raise AssertionError("a download was attempted")


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """No Inception weights anywhere: empty TORCH_HOME / hub dir, no env var, downloads forbidden."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.delenv(ENV_INCEPTION_WEIGHTS, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", no_download)
    return tmp_path


def fallback_layer(layer: str) -> ExtractorChoice:
    """The fallback extractor with FID/KID on another feature layer ("256" is 10x faster for FID)."""
    choice = choose_extractor(allow_fallback=True)
    assert choice.is_fallback
    choice.extra_kwargs.update(feature_layer_fid=layer, feature_layer_kid=layer)
    return choice


class ChannelMeanExtractor(FeatureExtractorBase):
    """Tiny test extractor: feature "mean3" = per-channel mean pixel value in [0, 255], [B, 3]."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    @staticmethod
    def get_provided_features_list():
        return ("mean3",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "mean3"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

    def forward(self, x):
        assert x.dtype == torch.uint8
        return (x.double().mean(dim=(2, 3)).float(),)


TINY = "genda-test-chanmean"


@pytest.fixture
def tiny():
    register_extractor(TINY, ChannelMeanExtractor)
    return ExtractorChoice(TINY, "none", False)


# ----------------------------------------------------------------------------------------------
# choosing the extractor
# ----------------------------------------------------------------------------------------------
def test_fallback_chosen_without_weights_and_recorded(empty_hub):
    choice = choose_extractor()
    assert (choice.name, choice.weights, choice.is_fallback) == (FALLBACK_NAME, "random-init(seed=0)", True)
    assert choice.kwargs() == {"feature_extractor": FALLBACK_NAME}
    assert FEATURE_EXTRACTORS_REGISTRY[FALLBACK_NAME] is RandomCNNExtractor

    x = blobs(40, seed=1)
    r = compute_fidelity(x, shift(x, 40), isc=False, fid=False)  # default "2048" feature
    assert set(r) == {"kid_mean", "kid_std", "kid_subset_size", "n_generated", "n_reference", "extractor",
                      "extractor_weights", "extractor_is_fallback"}
    assert r["extractor"] == FALLBACK_NAME and r["extractor_is_fallback"] is True
    assert r["extractor_weights"] == "random-init(seed=0)"
    assert (r["n_generated"], r["n_reference"], r["kid_subset_size"]) == (40, 40, 40)
    assert r["kid_mean"] > 1e-3


@pytest.mark.slow  # eigenvalues of a 2048x2048 matrix: ~6 s idle, much more on a loaded 2-core box
def test_fallback_default_layer_fid_of_identical_sets_is_zero(empty_hub):
    x = blobs(64, seed=1)
    r = compute_fidelity(x, x, isc=False, kid=False)
    assert r["extractor"] == FALLBACK_NAME and abs(r["fid"]) < 1e-3


def test_no_fallback_without_weights_explains_where(empty_hub):
    with pytest.raises(DataError) as e:
        choose_extractor(allow_fallback=False)
    msg = str(e.value)
    assert ENV_INCEPTION_WEIGHTS in msg and inception_cache_path() in msg and "inception_weights" in msg
    with pytest.raises(DataError):
        compute_fidelity(blobs(4, 0), blobs(4, 1), allow_fallback=False)


def test_missing_explicit_weights_path_names_it(empty_hub):
    bad = str(empty_hub / "nowhere" / "inception.pth")
    with pytest.raises(DataError, match="nowhere/inception.pth"):
        choose_extractor(bad)
    with pytest.raises(DataError, match="nowhere/inception.pth"):
        compute_fidelity(blobs(4, 0), blobs(4, 1), inception_weights=bad)


def test_env_var_weights(empty_hub, monkeypatch):
    missing = str(empty_hub / "missing.pth")
    monkeypatch.setenv(ENV_INCEPTION_WEIGHTS, missing)
    with pytest.raises(DataError, match="missing.pth"):
        choose_extractor()
    present = empty_hub / "inc.pth"
    present.write_bytes(b"x")
    monkeypatch.setenv(ENV_INCEPTION_WEIGHTS, str(present))
    c = choose_extractor(allow_fallback=False)
    assert (c.name, c.weights, c.is_fallback) == (INCEPTION_NAME, str(present), False)
    assert c.kwargs() == {"feature_extractor": INCEPTION_NAME, "feature_extractor_weights_path": str(present)}
    # the explicit argument wins over the env var
    other = empty_hub / "other.pth"
    other.write_bytes(b"x")
    assert choose_extractor(str(other)).weights == str(other)


def test_hub_cache_weights_used_only_when_present(empty_hub):
    path = inception_cache_path()
    assert path == f"{torch.hub.get_dir()}/checkpoints/{INCEPTION_FILE}"
    assert path.startswith(str(empty_hub / "torch_home"))
    assert tf_inception.URL_INCEPTION_V3.endswith("/" + INCEPTION_FILE)
    assert choose_extractor().is_fallback
    (empty_hub / "torch_home" / "hub" / "checkpoints").mkdir(parents=True)
    open(path, "wb").close()
    c = choose_extractor(allow_fallback=False)
    assert (c.name, c.weights, c.is_fallback) == (INCEPTION_NAME, path, False)
    assert c.kwargs()["feature_extractor_weights_path"] == path  # explicit path: never a download


def test_registration_idempotent_and_conflict():
    assert register_extractor(FALLBACK_NAME, RandomCNNExtractor) == FALLBACK_NAME
    assert register_extractor(FALLBACK_NAME, RandomCNNExtractor) == FALLBACK_NAME
    assert FEATURE_EXTRACTORS_REGISTRY[FALLBACK_NAME] is RandomCNNExtractor

    class Other(ChannelMeanExtractor):
        pass

    with pytest.raises(ConfigError, match=FALLBACK_NAME):
        register_extractor(FALLBACK_NAME, Other)
    assert FEATURE_EXTRACTORS_REGISTRY[FALLBACK_NAME] is RandomCNNExtractor


# ----------------------------------------------------------------------------------------------
# the fallback extractor
# ----------------------------------------------------------------------------------------------
def test_fallback_extractor_deterministic_shapes_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    a = RandomCNNExtractor(FALLBACK_NAME, ["256", "2048", "logits_unbiased"])
    b = RandomCNNExtractor(FALLBACK_NAME, ["256", "2048", "logits_unbiased"])
    assert torch.equal(torch.random.get_rng_state(), state)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    x = blobs(5, seed=3, size=28)  # any size: resized to 64x64 inside
    f256, f2048, logits = a(x)
    assert f256.shape == (5, 256) and f2048.shape == (5, 2048) and logits.shape == (5, 1008)
    assert f2048.dtype == torch.float32 and (f2048 >= 0).all()
    for u, v in zip((f256, f2048, logits), b(x)):
        assert torch.equal(u, v)
    assert not any(p.requires_grad for p in a.parameters())
    with pytest.raises(ValueError):
        a(x.float())


def test_fid_kid_grow_with_perturbation(empty_hub):
    x = blobs(48, seed=0)
    choice = fallback_layer("256")
    res = [compute_fidelity(shift(x, s), x, isc=False, extractor=choice) for s in (0, 20, 60)]
    fids = [r["fid"] for r in res]
    kids = [r["kid_mean"] for r in res]
    assert abs(fids[0]) < 1e-3
    assert fids[0] < fids[1] < fids[2] and fids[1] > 0.1
    assert abs(kids[0]) < 1e-3 and kids[0] < kids[1] < kids[2] and kids[2] > 10 * abs(kids[0])
    # a different sample of the same distribution sits between x and the shifted sets
    other = compute_fidelity(blobs(48, seed=5), x, isc=False, kid=False, extractor=choice)["fid"]
    assert fids[0] < other < fids[2]


def test_determinism_two_calls_identical(empty_hub):
    a, b = blobs(40, seed=1), blobs(32, seed=2)
    r1 = compute_fidelity(a, b, extractor=fallback_layer("256"))
    r2 = compute_fidelity(a, b, extractor=fallback_layer("256"))
    assert r1 == r2
    assert r1["kid_subset_size"] == 32  # clipped to min(N, M)
    assert (r1["n_generated"], r1["n_reference"]) == (40, 32)


def test_inception_score_properties(empty_hub):
    diverse = compute_fidelity(blobs(60, seed=4), None, fid=False, kid=False)
    assert set(diverse) == {"is_mean", "is_std", "n_generated", "n_reference", "extractor",
                            "extractor_weights", "extractor_is_fallback"}
    assert np.isfinite(diverse["is_mean"]) and np.isfinite(diverse["is_std"])
    assert diverse["is_mean"] >= 1.0 and diverse["is_std"] >= 0.0
    same = compute_fidelity(blobs(1, seed=4).expand(60, -1, -1, -1), None, fid=False, kid=False)
    assert same["is_mean"] == pytest.approx(1.0, abs=1e-9)  # p(y|x) = p(y): KL = 0
    assert diverse["is_mean"] > same["is_mean"] + 0.2


# ----------------------------------------------------------------------------------------------
# a custom registered extractor: exact numbers
# ----------------------------------------------------------------------------------------------
def test_custom_extractor_fid_is_exact_mean_shift(tiny):
    x = blobs(64, seed=7)
    r = compute_fidelity(shift(x, 20), x, isc=False, extractor=tiny)
    assert r["extractor"] == TINY and r["extractor_is_fallback"] is False and r["extractor_weights"] == "none"
    # features shift by exactly 20 in each of 3 channels, covariances identical: FID = 3 * 20^2
    assert r["fid"] == pytest.approx(1200.0, rel=1e-5)
    assert r["kid_mean"] > 0
    assert abs(compute_fidelity(x, x, isc=False, kid=False, extractor=tiny)["fid"]) < 1e-6


def test_gray_input_is_repeated_to_rgb(tiny):
    g = blobs(16, seed=8)[:, :1]
    r_gray = compute_fidelity(g, shift(g, 10), isc=False, kid=False, extractor=tiny)
    r_rgb = compute_fidelity(g.repeat(1, 3, 1, 1), shift(g, 10).repeat(1, 3, 1, 1), isc=False, kid=False,
                             extractor=tiny)
    assert r_gray["fid"] == pytest.approx(r_rgb["fid"]) and r_gray["fid"] == pytest.approx(300.0, rel=1e-5)


def test_real_floor_is_compute_fidelity_of_two_real_sets(tiny):
    a, b = blobs(40, seed=9), blobs(40, seed=10)
    floor = real_floor(a, b, isc=False, extractor=tiny)
    assert floor == compute_fidelity(a, b, isc=False, extractor=tiny)
    assert floor["fid"] > 0


def test_fidelity_with_floor_uses_as_many_held_out_images(tiny):
    gen, ref, held = blobs(16, seed=11), blobs(40, seed=12), blobs(50, seed=13)
    m = fidelity_with_floor(shift(gen, 10), ref, held, isc=False, extractor=tiny, kid_subset_size=16)
    assert m["n_real_floor"] == 16 and m["n_generated"] == 16
    floor = compute_fidelity(held[:16], ref, isc=False, extractor=tiny, kid_subset_size=16)
    assert m["fid_real_floor"] == floor["fid"] and m["kid_real_floor"] == floor["kid_mean"]
    assert m["fid"] == compute_fidelity(shift(gen, 10), ref, isc=False, extractor=tiny, kid_subset_size=16)["fid"]
    assert m["fid"] > m["fid_real_floor"]  # a shifted set is further from the reference than real images


def test_bad_inputs(tiny):
    x = blobs(8, seed=0)
    with pytest.raises(DataError, match="uint8"):
        compute_fidelity(x.float(), x, extractor=tiny)
    with pytest.raises(DataError, match="reference"):
        compute_fidelity(x, x[:, 0], extractor=tiny)
    with pytest.raises(DataError, match="reference"):
        compute_fidelity(x, None, extractor=tiny)
    with pytest.raises(DataError, match="at least 2"):
        compute_fidelity(x[:1], x, extractor=tiny)
    with pytest.raises(ConfigError):
        compute_fidelity(x, x, fid=False, isc=False, kid=False, extractor=tiny)
    with pytest.raises(ConfigError):
        compute_fidelity(x, x, device="tpu", extractor=tiny)


def _random_inception_weights(path) -> str:
    """A randomly initialised torch-fidelity InceptionV3 state dict saved at ``path`` (no download)."""
    class NoLoad(tf_inception.FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):
            return None

    empty = str(path) + ".empty"
    torch.save({}, empty)
    torch.manual_seed(0)
    torch.save(NoLoad(INCEPTION_NAME, ["2048"], feature_extractor_weights_path=empty).state_dict(), path)
    return str(path)


@pytest.mark.slow
def test_inception_path_with_explicit_weights_never_downloads(empty_hub):
    weights = _random_inception_weights(empty_hub / "inception.pth")
    x = blobs(12, seed=11)
    r = compute_fidelity(x, shift(x, 30), fid=False, inception_weights=weights, batch_size=12)
    assert r["extractor"] == INCEPTION_NAME and r["extractor_weights"] == weights
    assert r["extractor_is_fallback"] is False
    assert np.isfinite(r["is_mean"]) and r["is_mean"] >= 1.0 - 1e-9 and np.isfinite(r["kid_mean"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(empty_hub):
    a, b = blobs(64, seed=1), blobs(64, seed=2)
    cpu = compute_fidelity(a, b, extractor=fallback_layer("256"))
    gpu = compute_fidelity(a.cuda(), b.cuda(), device="cuda", extractor=fallback_layer("256"))
    assert gpu["fid"] == pytest.approx(cpu["fid"], rel=1e-2, abs=1e-3)
    assert gpu["is_mean"] == pytest.approx(cpu["is_mean"], rel=1e-3)
    assert gpu["kid_mean"] == pytest.approx(cpu["kid_mean"], rel=1e-2, abs=1e-5)


# ----------------------------------------------------------------------------------------------
# face detection
# ----------------------------------------------------------------------------------------------
# OpenCV is a dependency (opencv-python-headless>=4.5,<5 in pyproject.toml): without it, or without the Haar cascade
# that OpenCV 5 dropped, these tests fail; they never skip.
import cv2  # noqa: E402

from genda.metrics.facedetect import detect_faces, face_detection_rate  # noqa: E402


def test_opencv_has_the_haar_cascade_the_face_rate_needs():
    assert hasattr(cv2, "CascadeClassifier"), f"OpenCV {cv2.__version__}: needs opencv-python-headless<5"
    assert int(cv2.__version__.split(".")[0]) == 4


@pytest.fixture(scope="module")
def hopper64() -> torch.Tensor:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = Image.open(f).convert("RGB").resize((64, 64), Image.BILINEAR)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0).contiguous()  # [1, 3, 64, 64]


def test_face_detected_in_portrait(hopper64):
    r = face_detection_rate(hopper64.expand(3, -1, -1, -1))
    assert r == {"face_rate": 1.0, "n": 3,
                 "detector": f"opencv-haar-frontalface-default {cv2.__version__} border 0.0625 minNeighbors 6"}
    # a 64x64 face is too small for the 24x24 cascade without upscaling
    assert detect_faces(hopper64, upscale=1) == [0]


def test_border_finds_a_face_that_fills_the_frame():
    """A crop tight around the face (forehead to chin, 64x64): the cascade has no window that fits without a
    border, with one it finds the face; a looser crop is found either way."""
    from matplotlib import cbook
    from PIL import Image

    def crop(box):
        with cbook.get_sample_data("grace_hopper.jpg") as f:
            img = Image.open(f).convert("RGB").crop(box).resize((64, 64), Image.BILINEAR)
        return torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0).contiguous()

    tight, loose = crop((160, 120, 360, 320)), crop((100, 60, 420, 380))
    assert detect_faces(tight, border=0.0, min_neighbors=3) == [0]
    assert detect_faces(tight)[0] >= 1
    assert detect_faces(loose, border=0.0)[0] >= 1 and detect_faces(loose)[0] >= 1
    with pytest.raises(ConfigError):
        detect_faces(tight, border=0.75)


def test_no_face_in_noise_or_flat_gray():
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (16, 3, 64, 64), generator=g, dtype=torch.uint8)
    gray = torch.full((4, 3, 64, 64), 128, dtype=torch.uint8)
    assert face_detection_rate(noise)["face_rate"] == 0.0
    assert face_detection_rate(gray)["face_rate"] == 0.0


def test_face_rate_is_fraction(hopper64):
    gray = torch.full((1, 3, 64, 64), 128, dtype=torch.uint8)
    batch = torch.cat([hopper64, gray, gray, hopper64])
    r = face_detection_rate(batch)
    assert r["face_rate"] == 0.5 and r["n"] == 4


def test_face_counts_keep_image_order_across_threads(hopper64):
    """Detection runs one image per core: counts must still line up with the images (here 40 images, a
    face at the multiples of 7, more than two chunks of work)."""
    gray = torch.full((1, 3, 64, 64), 128, dtype=torch.uint8)
    batch = torch.cat([hopper64 if i % 7 == 0 else gray for i in range(40)])
    counts = detect_faces(batch)
    assert [c >= 1 for c in counts] == [i % 7 == 0 for i in range(40)]


def test_face_detection_bad_args(hopper64):
    with pytest.raises(DataError):
        face_detection_rate(hopper64.float())
    with pytest.raises(ConfigError):
        face_detection_rate(hopper64, upscale=0)
    with pytest.raises(DataError):
        face_detection_rate(hopper64[:0])


# ----------------------------------------------------------------------------------------------
# the Fréchet distance without torch-fidelity's non-symmetric eigensolve
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_a, n_b, d", [(30, 50, 64),    # N_a <= D: the N_a x N_a route
                                         (90, 20, 64),    # N_b <= D: the N_b x N_b route
                                         (300, 200, 16)])  # N > D: eigh(S_b) square root, D x D
def test_frechet_distance_equals_torch_fidelity(n_a, n_b, d):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    from genda.metrics.frechet import FeatureStats, frechet_distance

    g = torch.Generator().manual_seed(n_a)
    a = torch.randn(n_a, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)
    b = 1.5 * torch.randn(n_b, d, generator=g, dtype=torch.float64) + 0.3
    want = fid_statistics_to_metric(fid_features_to_statistics(a), fid_features_to_statistics(b), False)
    want = float(want["frechet_inception_distance"])
    # rel 1e-7: for a rank-deficient S_a (N_a <= D) torch-fidelity takes square roots of round-off eigenvalues
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-7)
    assert frechet_distance(FeatureStats(b), a) == pytest.approx(frechet_distance(a, b), rel=1e-12)  # symmetric
    assert abs(frechet_distance(a, a)) < 1e-8 * want
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(a, b[:, :-1])
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(a[:1], b)


def test_precomputed_features_give_the_same_metrics_as_images(empty_hub):
    """Features (e.g. the fid_reference stage's cache) in place of images: identical IS / KID, FID to round-off;
    features of another extractor are refused."""
    from genda.metrics.fidelity import extract_features, metric_layers

    choice = fallback_layer("256")
    gen, ref = blobs(24, seed=21), shift(blobs(30, seed=22), 15)
    direct = compute_fidelity(gen, ref, extractor=choice, kid_subset_size=12)
    layers = set(metric_layers(choice).values())
    assert layers == {"256", "logits_unbiased"}
    fg, fr = (extract_features(x, choice, layers) for x in (gen, ref))
    assert len(fg) == 24 and fg.features["256"].shape == (24, 256) and fg.head(5).features["256"].shape == (5, 256)
    cached = compute_fidelity(fg, fr, extractor=choice, kid_subset_size=12)
    assert cached.pop("fid") == pytest.approx(direct.pop("fid"), rel=1e-9)
    assert cached == direct
    with pytest.raises(ConfigError, match=r"lack layer\(s\) \['2048'\]"):  # the default FID layer
        compute_fidelity(gen, fr, extractor=choose_extractor(), kid_subset_size=12)
    with pytest.raises(ConfigError, match="rerun the fid_reference stage"):
        compute_fidelity(fg, fr, extractor=ExtractorChoice(TINY, "none", False))
