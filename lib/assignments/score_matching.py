"""Checks of the gradable exercises of the chapter "Score matching" (book/score_matching.md).

* ``ex-sm-1``: the DSM minimum ``C_t = 1/s_t^2 - 1/(a_t^2 v + s_t^2)`` of a Gaussian
  ``q_0 = N(mu, v)`` on the line (Vincent 2011's objective; the chapter's theorem
  ``C_t = d/s_t^2 - E||grad log q_t||^2``), at several times at once.
* ``ex-sm-2``: Tweedie's denoiser ``E[x_0 | x_t = x] = a_t x + s_t^2 tanh(a_t mu . x) mu`` of
  ``q_0 = N(mu, I)/2 + N(-mu, I)/2`` (Robbins 1956, Efron 2011).

Both are closed forms in float64, so the tolerance is float64 rounding amplified by at most
a few operations: ``1e-9`` relative (and ``1e-10`` absolute where a denoised coordinate
crosses zero). Inputs cover the chapter's times, ``[1e-3, 3]``, log-uniformly.
"""

from __future__ import annotations

import torch

from ..forward import sigma2
from ..mixtures import GaussianMixture, symmetric_two
from .core import Check, allclose, log_uniform, register_check

T_RANGE = (1e-3, 3.0)


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (), generator=generator))


# ----------------------------------------------------------------------- ex-sm-1
def _gaussian_minimum(mu: float, v: float, t: torch.Tensor) -> torch.Tensor:
    """``d/s_t^2 - E||grad log q_t||^2`` with ``E||grad log q_t||^2 = 1/Var(q_t)`` for a
    Gaussian; ``Var(q_t)`` from lib's noised mixture."""
    q0 = GaussianMixture([1.0], [mu], v)
    var_t = torch.stack([q0.noised(float(s)).covariances.reshape(()) for s in t])
    return 1.0 / sigma2(t) - 1.0 / var_t


def _gaussian_inputs(generator: torch.Generator) -> dict:
    n = _randint(generator, 1, 8)
    t = torch.tensor([log_uniform(generator, *T_RANGE) for _ in range(n)], dtype=torch.float64)
    mu = 3.0 * torch.randn((), generator=generator, dtype=torch.float64).item()
    return {"mu": mu, "v": log_uniform(generator, 0.05, 5.0), "t": t}


register_check(Check(
    "ex-sm-1", _gaussian_minimum, _gaussian_inputs, allclose(1e-9),
    forbidden=("lib.metrics.dsm_minimum", "lib.metrics.dsm_objective",
               "lib.statistical.dsm_noise_variance_1d", "lib.statistical.score_second_moment_1d"),
    chapter="score_matching"))


# ----------------------------------------------------------------------- ex-sm-2
def _symmetric_denoiser(x: torch.Tensor, mu: torch.Tensor, t: float) -> torch.Tensor:
    return symmetric_two(mu).posterior_mean(x, t)


def _symmetric_inputs(generator: torch.Generator) -> dict:
    d, n = _randint(generator, 1, 4), _randint(generator, 1, 16)
    mu = torch.randn(d, generator=generator, dtype=torch.float64)
    mu = mu / mu.norm() * log_uniform(generator, 0.3, 3.0)
    t = log_uniform(generator, *T_RANGE)
    a, s = torch.exp(torch.tensor(-t, dtype=torch.float64)), sigma2(t).sqrt()
    sign = torch.where(torch.rand(n, 1, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
    x0 = sign * mu + torch.randn(n, d, generator=generator, dtype=torch.float64)
    x = a * x0 + s * torch.randn(n, d, generator=generator, dtype=torch.float64)
    x[: max(1, n // 4)] *= 4.0  # tail points, where tanh saturates
    return {"x": x, "mu": mu, "t": t}


register_check(Check(
    "ex-sm-2", _symmetric_denoiser, _symmetric_inputs, allclose(1e-9, 1e-10),
    forbidden=("lib.mixtures.GaussianMixture.posterior_mean", "lib.mixtures.GaussianMixture.score",
               "lib.mixtures.GaussianMixture.responsibilities", "lib.mixtures.GaussianMixture.log_prob"),
    chapter="score_matching"))
