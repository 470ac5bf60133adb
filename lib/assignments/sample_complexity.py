"""Checks of the gradable exercises of chapter "How many samples?" (book/sample_complexity.md).

* ``ex-sc-5``: the predicted statistical error ``tr(G^{-1} Omega) / m`` of least squares,
  estimated from ``n`` feature-label pairs (the plug-in sandwich); compared in float64 with
  :func:`lib.statistical.sandwich_estimate` on heteroscedastic, misspecified inputs.
* ``ex-sc-6``: the empirical optimal score, the score of ``(1/m) sum_i N(a_t x_i, s_t^2 I)``;
  compared with :class:`lib.statistical.EmpiricalScore` at points near the training set and in
  the tails, where a naive (non log-sum-exp) softmax underflows.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..statistical import EmpiricalScore, sandwich_estimate
from .core import Check, allclose, log_uniform, register_check

CHAPTER = "sample_complexity"
T_RANGE = (1e-3, 5.0)  # the book's times, from the early-stopping time to the prior


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (), generator=gen).item())


# ---------------------------------------------------------------- ex-sc-5: the sandwich from pairs
def _sandwich_reference(phi: torch.Tensor, y: torch.Tensor, m: int) -> torch.Tensor:
    """``tr(G_hat^{-1} Omega_hat) / m`` as a float64 scalar tensor."""
    return torch.tensor(sandwich_estimate(phi, y) / m, dtype=torch.float64)


def _sandwich_inputs(gen: torch.Generator) -> dict[str, Any]:
    """Features with an intercept, labels with a misfit and noise whose variance grows
    ``e^2``-fold across the inputs (so a constant-noise ``k sigma^2 / m`` is far off)."""
    n, k = _randint(gen, 200, 2000), _randint(gen, 2, 6)
    kw = dict(generator=gen, dtype=torch.float64)
    x = torch.randn(n, **kw)
    phi = torch.cat([torch.ones(n, 1, dtype=torch.float64), x[:, None],
                     torch.randn(n, k - 2, **kw) + 0.5 * x[:, None]], dim=1)
    y = phi @ torch.randn(k, **kw) + torch.sin(2 * x) + torch.exp(x) * torch.randn(n, **kw)
    return {"phi": phi, "y": y, "m": int(log_uniform(gen, 10, 1e5))}


register_check(Check(
    "ex-sc-5", _sandwich_reference, _sandwich_inputs, allclose(1e-8),  # float64 k x k linear algebra
    forbidden=("lib.statistical.sandwich_estimate", "lib.statistical.linear_theory_1d",
               "lib.statistical.LinearTheory.predicted_stat_error"),
    chapter=CHAPTER))


# ---------------------------------------------------------------- ex-sc-6: empirical optimal score
def _empirical_reference(x: torch.Tensor, t: float, train: torch.Tensor) -> torch.Tensor:
    return EmpiricalScore(train)(x, t)


def _empirical_inputs(gen: torch.Generator) -> dict[str, Any]:
    d, m, t = _randint(gen, 1, 3), _randint(gen, 1, 40), log_uniform(gen, *T_RANGE)
    kw = dict(generator=gen, dtype=torch.float64)
    train = 2.0 * torch.randn(m, d, **kw)
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2.0 * t))
    near = a * train[torch.randint(0, m, (40,), generator=gen)] + s * torch.randn(40, d, **kw)
    tails = torch.randn(10, d, **kw) * 20.0  # far from every training point: log-sum-exp needed
    return {"x": torch.cat([near, tails]), "t": t, "train": train}


def _empirical_close(expected: Any, returned: Any, kw: dict[str, Any]) -> bool:
    # float64 rounding of softmax weights and of a_t x_i - x, divided by s_t^2
    s2 = -math.expm1(-2.0 * kw["t"])
    scale = 1.0 + kw["x"].abs().max().item() + kw["train"].abs().max().item()
    return allclose(1e-8, 1e-10 * scale / s2)(expected, returned, kw)


register_check(Check(
    "ex-sc-6", _empirical_reference, _empirical_inputs, _empirical_close,
    # a mixture with near-point components at the training points would give the answer
    # through its posterior mean or responsibilities: those are the reference too
    forbidden=("lib.statistical.EmpiricalScore.__call__", "lib.statistical.EmpiricalScore._chunk",
               "lib.mixtures.GaussianMixture.score", "lib.mixtures.GaussianMixture.posterior_mean",
               "lib.mixtures.GaussianMixture.responsibilities", "lib.mixtures.GaussianMixture.log_prob"),
    chapter=CHAPTER))
