"""Does an attribute pair keep the identity? attr_acgan renders each noise vector z twice, attribute off and on
(files ``0_nnn.png`` / ``1_nnn.png``, the same ``nnn`` = the same z). If the generator changed only the attribute,
the two images of a pair are far closer to each other than two unrelated samples are.

    identity_ratio = mean_i d(f(off_i), f(on_i)) / mean_i d(f(off_i), f(on_{i+1}))        (d: Euclidean)

over the N pairs, ``on_{i+1}`` the next pair's image (a fixed derangement: an unrelated face with the attribute
on, so both terms cross the attribute). 0: the pair differs only where the features ignore; 1: the pair is no
closer than strangers. ``f`` is named with the number: the FID extractor's features (Inception when its weights
are present, else the random-CNN fallback) and the raw pixels.
"""
from __future__ import annotations

import re
from typing import Callable

import torch

_PAIR = re.compile(r"^([01])_(\d+)$")


def pairs_from_stems(stems: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(off [P], on [P])`` of the complete off/on pairs among file stems ``{0|1}_{nnn}``, by nnn."""
    by = {}
    for i, s in enumerate(stems):
        m = _PAIR.match(s)
        if m:
            by.setdefault(m.group(2), {})[m.group(1)] = i
    keys = sorted(k for k, v in by.items() if len(v) == 2)
    return torch.tensor([by[k]["0"] for k in keys], dtype=torch.long), torch.tensor([by[k]["1"] for k in keys],
                                                                                     dtype=torch.long)


def identity_ratio(feats: torch.Tensor, off: torch.Tensor, on: torch.Tensor) -> dict:
    """``{"ratio", "pair_dist", "unrelated_dist", "n_pairs"}`` for features ``feats [N, D]`` (any float) and the
    pair indices ``off`` / ``on`` [P] (P >= 2)."""
    if len(off) < 2:
        raise ValueError(f"identity_ratio needs at least 2 off/on pairs, got {len(off)}")
    f = feats.reshape(len(feats), -1).double()
    pair = (f[off] - f[on]).norm(dim=1).mean().item()
    unrelated = (f[off] - f[on.roll(-1)]).norm(dim=1).mean().item()
    return {"ratio": pair / unrelated, "pair_dist": pair, "unrelated_dist": unrelated, "n_pairs": len(off)}


def pair_identity(images: torch.Tensor, stems: list[str], features: Callable[[torch.Tensor], torch.Tensor],
                  feature_space: str) -> dict:
    """The identity measure of the off/on pairs among ``images`` (uint8 [N, 3, H, W], file ``stems``) in the
    feature space ``features`` (images -> [N, D]; its name ``feature_space``) and in pixels: ``{"identity_ratio",
    "identity_ratio_pixels", "identity_pair_dist", "identity_unrelated_dist", "identity_n_pairs",
    "identity_feature_space"}``."""
    off, on = pairs_from_stems(stems)
    feat = identity_ratio(features(images), off, on)
    pix = identity_ratio(images.float() / 255.0, off, on)
    return {"identity_ratio": feat["ratio"], "identity_ratio_pixels": pix["ratio"],
            "identity_pair_dist": feat["pair_dist"], "identity_unrelated_dist": feat["unrelated_dist"],
            "identity_n_pairs": feat["n_pairs"], "identity_feature_space": feature_space}
