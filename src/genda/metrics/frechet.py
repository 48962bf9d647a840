"""The Fréchet distance between two feature sets (FID's formula), exact and without a non-symmetric eigensolve.

For features ``X_a [N_a, D]``, ``X_b [N_b, D]`` with means ``mu`` and unbiased covariances ``S``::

    FID = ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2))

torch-fidelity computes ``Tr((S_a S_b)^(1/2))`` as the sum of square roots of ``eigvals(S_a @ S_b)``: a general
(non-symmetric) ``D x D`` eigenproblem, ~3 s for D = 2048 on one CPU core, paid once per FID.  The same
eigenvalues come from a *symmetric* positive semi-definite matrix, and often a much smaller one.  With the
centred, scaled data matrices ``A = (X_a - mu_a) / sqrt(N_a - 1)`` (so ``S_a = A^T A``) and likewise ``B``:

* ``N_a <= D``: the non-zero eigenvalues of ``S_a S_b = A^T A S_b`` are those of ``A S_b A^T``  (``N_a x N_a``);
* ``N_b <= D``: symmetrically those of ``B S_a B^T``                                             (``N_b x N_b``);
* otherwise: those of ``S_b^(1/2) S_a S_b^(1/2)`` with the symmetric square root from ``eigh(S_b)`` (``D x D``).

The smallest applicable matrix is used; ``eigvalsh`` of it, clipped at 0 (round-off), gives the trace term.
All arithmetic is float64.  The result equals torch-fidelity's ``fid_statistics_to_metric`` to ~1e-8 relative
(``tests/test_fidelity.py``) at a fraction of the cost (D = 2048, 1,000 vs 500 samples: 0.15 s instead of 4 s).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["FeatureStats", "frechet_distance"]


class FeatureStats:
    """Mean, covariance and centred data matrix of one feature set ``[N, D]`` (N >= 2), in float64.

    Build it once for a reference set that many generated sets are compared with."""

    def __init__(self, features: Tensor | np.ndarray):
        x = np.asarray(features.detach().cpu().double().numpy() if torch.is_tensor(features) else features,
                       dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"Fréchet distance: need features [N >= 2, D], got shape {tuple(x.shape)}")
        self.n, self.dim = x.shape
        self.mu = x.mean(axis=0)
        self.centred = (x - self.mu) / np.sqrt(self.n - 1)      # A: S = A^T A
        self.sigma = self.centred.T @ self.centred               # unbiased covariance [D, D]
        self._sqrt_sigma = None

    @property
    def trace(self) -> float:
        return float(np.einsum("ij,ij->", self.centred, self.centred))

    def sqrt_sigma(self) -> np.ndarray:
        """Symmetric PSD square root of the covariance (cached)."""
        if self._sqrt_sigma is None:
            w, v = np.linalg.eigh(self.sigma)
            self._sqrt_sigma = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        return self._sqrt_sigma


def _trace_sqrt_product(a: FeatureStats, b: FeatureStats) -> float:
    """``Tr((S_a S_b)^(1/2))`` from the smallest symmetric matrix with the same non-zero eigenvalues."""
    if min(a.n, b.n) <= a.dim:
        small, other = (a, b) if a.n <= b.n else (b, a)
        m = small.centred @ other.sigma @ small.centred.T
    else:
        r = b.sqrt_sigma()
        m = r @ a.sigma @ r
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def frechet_distance(a: FeatureStats | Tensor, b: FeatureStats | Tensor) -> float:
    """FID between two feature sets (each a ``[N, D]`` tensor / array or a :class:`FeatureStats`)."""
    a = a if isinstance(a, FeatureStats) else FeatureStats(a)
    b = b if isinstance(b, FeatureStats) else FeatureStats(b)
    if a.dim != b.dim:
        raise ValueError(f"Fréchet distance: feature dimensions differ ({a.dim} vs {b.dim})")
    diff = a.mu - b.mu
    return float(diff @ diff + a.trace + b.trace - 2.0 * _trace_sqrt_product(a, b))
