"""Gradient reversal layer (GRL) and the DANN schedules for λ and the learning rate.

Ganin & Lempitsky (2015), "Unsupervised Domain Adaptation by Backpropagation"; Ganin et al. (2016), JMLR.

The GRL :math:`R_\\lambda` is the identity in the forward pass and multiplies the incoming gradient by
:math:`-\\lambda` in the backward pass:

.. math::
    R_\\lambda(x) = x, \\qquad \\frac{\\partial R_\\lambda}{\\partial x} = -\\lambda I.

Placed between a feature extractor :math:`G_f` and a domain discriminator :math:`G_d`, a single
minimisation of the domain loss :math:`L_d` trains :math:`G_d` to *minimise* :math:`L_d` while
:math:`G_f` receives :math:`-\\lambda \\nabla L_d` and so *maximises* it (the min-max game of DANN).

Schedules (``p`` = training progress in [0, 1]):

* :func:`grl_lambda`: :math:`\\lambda_p = \\frac{2}{1+\\exp(-\\gamma p)} - 1` (0 → ≈1, γ = 10 in the paper);
* :func:`annealed_lr`: :math:`\\mu_p = \\frac{\\mu_0}{(1+\\alpha p)^{\\beta}}` (α = 10, β = 0.75 in the paper);
* :class:`WarmStartGradientReverseLayer`: the generalised
  :math:`\\lambda(p) = \\frac{2(hi-lo)}{1+\\exp(-\\alpha p)} - (hi-lo) + lo` driven by an internal step counter.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "GradientReverseFunction",
    "GradientReverseLayer",
    "WarmStartGradientReverseLayer",
    "grl_lambda",
    "annealed_lr",
]


def _clip01(p: float) -> float:
    return min(max(float(p), 0.0), 1.0)


class GradientReverseFunction(torch.autograd.Function):
    """Autograd function: forward ``y = x`` (any shape), backward ``dx = -λ · dy`` (same shape).

    Call as ``GradientReverseFunction.apply(x, lambd)``; ``lambd`` is a Python float and gets no gradient.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, lambd: float = 1.0) -> Tensor:  # noqa: D401 - autograd API
        ctx.lambd = float(lambd)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output * (-ctx.lambd), None


class GradientReverseLayer(nn.Module):
    """Module form of the GRL with λ given per call.

    Shapes: ``x`` [*] -> [*] (identity). ``forward(x, lambd)`` reverses and scales the gradient by ``-lambd``.
    """

    def forward(self, x: Tensor, lambd: float = 1.0) -> Tensor:
        return GradientReverseFunction.apply(x, lambd)


class WarmStartGradientReverseLayer(nn.Module):
    """GRL whose coefficient rises smoothly from ``lo`` to ``hi`` with an internal iteration counter.

    .. math::
        \\lambda(p) = \\frac{2(hi-lo)}{1+\\exp(-\\alpha p)} - (hi-lo) + lo,
        \\qquad p = \\min(\\text{iter}/\\text{max\\_iters}, 1)

    so :math:`\\lambda(0) = lo` and :math:`\\lambda(1) = lo + (hi-lo)\\tanh(\\alpha/2) \\approx hi`.
    DANN uses α = 10, lo = 0, hi = 1.

    Args:
        alpha: steepness α.
        lo, hi: start and (asymptotic) end values of λ.
        max_iters: number of :meth:`step` calls that corresponds to p = 1.
        auto_step: if True, every :meth:`forward` call advances the counter *after* using the current λ.

    Shapes: ``x`` [*] -> [*]. The counter is saved in ``state_dict`` (extra state) so resuming continues
    the schedule.
    """

    def __init__(
        self,
        alpha: float = 10.0,
        lo: float = 0.0,
        hi: float = 1.0,
        max_iters: int = 1000,
        auto_step: bool = False,
    ) -> None:
        super().__init__()
        if max_iters <= 0:
            raise ValueError(f"max_iters must be positive, got {max_iters}")
        self.alpha = float(alpha)
        self.lo = float(lo)
        self.hi = float(hi)
        self.max_iters = int(max_iters)
        self.auto_step = bool(auto_step)
        self.iter_num = 0

    @property
    def coeff(self) -> float:
        """Current λ."""
        p = min(self.iter_num / self.max_iters, 1.0)
        span = self.hi - self.lo
        return 2.0 * span / (1.0 + math.exp(-self.alpha * p)) - span + self.lo

    def step(self) -> None:
        """Advance the iteration counter by one."""
        self.iter_num += 1

    def forward(self, x: Tensor) -> Tensor:
        y = GradientReverseFunction.apply(x, self.coeff)
        if self.auto_step:
            self.step()
        return y

    def get_extra_state(self) -> dict[str, int]:
        return {"iter_num": self.iter_num}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.iter_num = int(state["iter_num"])

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, lo={self.lo}, hi={self.hi}, max_iters={self.max_iters}, "
            f"auto_step={self.auto_step}"
        )


def grl_lambda(p: float, gamma: float = 10.0) -> float:
    """DANN schedule :math:`\\lambda_p = 2/(1+\\exp(-\\gamma p)) - 1`; ``p`` is clipped to [0, 1].

    λ(0) = 0, λ(1) = tanh(γ/2) ≈ 0.99991 for γ = 10.
    """
    return 2.0 / (1.0 + math.exp(-gamma * _clip01(p))) - 1.0


def annealed_lr(mu0: float, p: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """DANN learning-rate annealing :math:`\\mu_p = \\mu_0 / (1+\\alpha p)^{\\beta}`; ``p`` clipped to [0, 1].

    With the paper's values (μ0 = 0.01, α = 10, β = 0.75) the rate ends at μ0 · 11^-0.75 ≈ 0.00166.
    """
    return mu0 / (1.0 + alpha * _clip01(p)) ** beta
