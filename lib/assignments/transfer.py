"""Checks of the transfer chapter's gradable exercises (book/transfer.md).

Both answers are closed forms in float64 (a Gaussian-mixture prior, the linear observation
``y = G x + noise_sd * eps`` with ``G^T G = I``), so the tolerance is rounding: 1e-9 relative
with an absolute floor of 1e-9 for coordinates near zero. The references are
:class:`lib.transfer.LinearInverseTask`'s exact posterior and conditional score (Lemma
lem-tr-posterior; Cheng, Xie, Zhang and Zhang 2025 for the setting).
"""

from __future__ import annotations

import math

import torch

from ..mixtures import GaussianMixture
from ..transfer import LinearInverseTask, orthonormal_columns
from .core import Check, allclose, log_uniform, register_check

_FORBIDDEN = (
    "lib.transfer.LinearInverseTask.posterior",
    "lib.transfer.LinearInverseTask.posterior_mean",
    "lib.transfer.LinearInverseTask.joint_at",
    "lib.transfer.LinearInverseTask.score",
    "lib.mixtures.GaussianMixture.score",
    "lib.mixtures.GaussianMixture.log_prob",
    "lib.mixtures.GaussianMixture.posterior_mean",
    "lib.mixtures.GaussianMixture.responsibilities",
)


def _task(weights, means, variances, G, noise_sd) -> LinearInverseTask:
    return LinearInverseTask(GaussianMixture(weights, means, variances), G, noise_sd)


def _problem(gen: torch.Generator) -> dict:
    """A random prior (1 to 4 components in R^1..3, diagonal covariances), G and noise level, and
    5 observations drawn from the task; every other draw scales them by a factor log-uniform in
    [3, 30], far enough from every component that N(w; mu_l, S_l + sigma^2 I) underflows to 0 for
    all l in a good share of the inputs (the exercises ask for answers that stay finite there)."""
    d = int(torch.randint(1, 4, (), generator=gen))
    D = d + int(torch.randint(0, 7, (), generator=gen))
    L = int(torch.randint(1, 5, (), generator=gen))
    weights = torch.rand(L, generator=gen, dtype=torch.float64) + 0.1
    kw = {"weights": weights / weights.sum(),
          "means": 2.0 * torch.randn(L, d, generator=gen, dtype=torch.float64),
          "variances": torch.exp(math.log(0.05) + math.log(40.0) * torch.rand(L, d, generator=gen,
                                                                             dtype=torch.float64)),
          "G": orthonormal_columns(D, d, gen), "noise_sd": log_uniform(gen, 0.1, 2.0)}
    x, y = _task(**kw).sample(5, gen)
    tail = log_uniform(gen, 3.0, 30.0) if torch.rand((), generator=gen) < 0.5 else 1.0
    return {"y": tail * y, **kw}, x


def _posterior_inputs(gen: torch.Generator) -> dict:
    return _problem(gen)[0]


def _posterior_reference(y, weights, means, variances, G, noise_sd):
    return _task(weights, means, variances, G, noise_sd).posterior_mean(y)


def _score_inputs(gen: torch.Generator) -> dict:
    """Points x_t near the noised posterior (a x + s z) and, every other draw, far from it."""
    kw, x = _problem(gen)
    t = log_uniform(gen, 0.01, 2.0)
    z = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    spread = 4.0 if torch.rand((), generator=gen) < 0.5 else 1.0
    return {"x": math.exp(-t) * x + spread * math.sqrt(-math.expm1(-2 * t)) * z, "t": t, **kw}


def _score_reference(x, y, t, weights, means, variances, G, noise_sd):
    return _task(weights, means, variances, G, noise_sd).score(x, y, t)


register_check(Check("ex-tr-4", _posterior_reference, _posterior_inputs, allclose(1e-9, 1e-9),
                     forbidden=_FORBIDDEN, chapter="transfer"))
register_check(Check("ex-tr-5", _score_reference, _score_inputs, allclose(1e-9, 1e-9),
                     forbidden=_FORBIDDEN, chapter="transfer"))
