"""Digit FID: the Fréchet distance in the feature space of the pipeline's own digit classifier.

Inception features (torch-fidelity) are the field's convention for natural images, but offline genda falls
back to a random CNN that cannot tell a readable digit from a digit-coloured blob (an untrained DDPM at
chance accuracy scored FID 19.8 there, a far better ACGAN 5.8). The classifier trained by the
``train_classifier`` stage on the real digits of the domain knows digit shape; its penultimate layer (the
global-average-pooled last conv block, ``[N, 4·width]``, see
:class:`~genda.metrics.digit_classifier.DigitClassifier`) is the feature space here, as in the
"FID with a domain classifier" protocols of digit-generation papers.

.. math::  \\mathrm{FID} = \\|\\mu_g - \\mu_r\\|^2 + \\mathrm{Tr}\\big(\\Sigma_g + \\Sigma_r - 2(\\Sigma_g\\Sigma_r)^{1/2}\\big)

computed by :func:`genda.metrics.frechet.frechet_distance` from features ``[N, D]`` (float64 statistics; the
same number as torch-fidelity's ``fid_statistics_to_metric``).
The number only means something beside its *real-vs-real floor*: as many held-out real train digits against
the same real test split, in the same feature space (finite-sample bias keeps it > 0).
"""
from __future__ import annotations

import torch
from torch import Tensor

from genda.metrics.frechet import FeatureStats, frechet_distance
from genda.data.tensors import to_float_images

__all__ = ["classifier_features", "frechet_distance", "digit_fid_with_floor"]


@torch.no_grad()
def classifier_features(model, x_uint8: Tensor, device: torch.device, batch: int = 500) -> Tensor:
    """Penultimate features ``[N, D]`` (float64, CPU) of uint8 images ``[N, 3, H, W]``; eval mode."""
    model.eval()
    return torch.cat([model.features(to_float_images(x_uint8[i:i + batch].to(device))).mean(dim=(2, 3))
                      .double().cpu() for i in range(0, len(x_uint8), batch)])


def digit_fid_with_floor(model, generated: Tensor, reference: Tensor, held_out: Tensor, device: torch.device) -> dict:
    """``digit_fid`` of ``generated`` against ``reference`` (real test digits) and ``digit_fid_real_floor`` of the
    first ``len(generated)`` ``held_out`` real digits against the same reference; all uint8 ``[N, 3, H, W]``."""
    ref = FeatureStats(classifier_features(model, reference, device))
    gen = classifier_features(model, generated, device)
    real = classifier_features(model, held_out[: len(generated)], device)
    return {"digit_fid": frechet_distance(gen, ref), "digit_fid_real_floor": frechet_distance(real, ref),
            "digit_fid_features": f"digit classifier penultimate layer ({ref.dim}-d)"}
